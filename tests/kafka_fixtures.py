"""Kafka fixtures and helpers: one real broker for the whole session.

The session broker (`kafka`) has a PLAINTEXT and a SASL_SSL listener, so
the security tests need no second JVM. Fault tests stop and restart it;
the `kafka` fixture starts it again if an earlier test left it down. Tests
that need auto-creation off use `strict_kafka`, a second broker started
only when such a test runs.

Helpers read topics back with a plain confluent-kafka consumer (raw bytes,
for independent decoding) or with `collector consume` (what a user runs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.helpers import COLLECTOR
from tests.support.kafka_broker import KafkaBroker
from tests.support.kafka_cluster import KafkaCluster


@contextmanager
def _outside_basetemp(name: str) -> Iterator[Path]:
    """A working directory not under pytest's basetemp, removed afterwards: every
    pytest run on this machine (as the same user) prunes old basetemps at its
    start, which would delete the data of a broker still running in this one."""
    workdir = Path(tempfile.mkdtemp(prefix=f"process-collector-{name}-"))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _running_broker(name: str, **kwargs: Any) -> Iterator[KafkaBroker]:
    """A broker for the session in its own directory outside basetemp."""
    with _outside_basetemp(name) as workdir:
        broker = KafkaBroker(workdir, **kwargs)
        try:
            broker.start()
            yield broker
        finally:
            broker.stop()


@pytest.fixture(scope="session")
def _session_broker() -> Iterator[KafkaBroker]:
    with _running_broker("kafka", sasl_ssl=True) as broker:
        yield broker


@pytest.fixture
def kafka(_session_broker: KafkaBroker) -> KafkaBroker:
    """The session broker, running."""
    if not _session_broker.is_running():
        _session_broker.start()
    return _session_broker


@pytest.fixture(scope="session")
def strict_kafka() -> Iterator[KafkaBroker]:
    """A broker that does not create topics on first write."""
    with _running_broker("kafka-strict", auto_create_topics=False) as broker:
        yield broker


@pytest.fixture(scope="session")
def acl_kafka() -> Iterator[KafkaBroker]:
    """A broker with an authorizer: the PLAINTEXT listener (ANONYMOUS) is a super
    user, the SASL_SSL user may do only what a test grants it."""
    with _running_broker("kafka-acl", sasl_ssl=True, extra_config={
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS"}) as broker:
        yield broker


@pytest.fixture(scope="session")
def _session_cluster() -> Iterator[KafkaCluster]:
    """Not under pytest's basetemp (see _outside_basetemp)."""
    with _outside_basetemp("kafka-cluster") as workdir:
        cluster = KafkaCluster(workdir)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item, so a fixture can see that its test failed."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + report.when, report)


@pytest.fixture
def kafka_cluster(_session_cluster: KafkaCluster, request: pytest.FixtureRequest,
                  ) -> Iterator[KafkaCluster]:
    """The session's three-node cluster with every node up and every partition in
    sync (a fault test that left a node down is healed first). When the test fails,
    what the cluster looks like and where each node logs is printed with it."""
    _session_cluster.start()
    _session_cluster.wait_isr_full()
    yield _session_cluster
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("\n" + _session_cluster.describe())
        for i, node in _session_cluster.nodes.items():
            print(f"--- node {i} log tail ---\n{node.log_tail(40)}")


def new_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Message:
    """One message as it is on the topic."""

    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int
    record: Any = None  # the value decoded by read_topic's `decode`


def read_topic(bootstrap: str, topic: str, until: Callable[[list[Message]], bool],
               timeout: float = 30.0, options: dict[str, str] | None = None,
               decode: Callable[[bytes], Any] | None = None) -> list[Message]:
    """Every message of the topic from the start, reading until `until(messages)`
    holds (then 1 s more, so that duplicates arriving late are seen too) or
    timeout; fails if the condition never held. Each value is decoded once, as
    it arrives, into `.record`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-" + uuid.uuid4().hex,
                         "enable.auto.commit": "false", **(options or {})})
    out: list[Message] = []
    try:
        deadline = time.monotonic() + timeout
        while True:
            meta = consumer.list_topics(topic, timeout=5)
            t = meta.topics.get(topic)
            if t is not None and t.error is None and t.partitions:
                break
            assert time.monotonic() < deadline, f"topic {topic} never appeared"
            time.sleep(0.2)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in t.partitions])
        done_at: float | None = None
        while True:
            for msg in consumer.consume(500, timeout=0.2):
                assert msg.error() is None, msg.error()
                value = msg.value()
                out.append(Message(msg.key(), value, dict(msg.headers() or []), msg.partition(),
                                   msg.offset(), decode(value) if decode else None))
            now = time.monotonic()
            if done_at is None and until(out):
                done_at = now
            if done_at is not None and now - done_at >= 1.0:
                return out
            if now > deadline:
                raise AssertionError(f"condition not met on {topic} within {timeout}s; "
                                     f"{len(out)} messages read")
    finally:
        consumer.close()


def consume_cli(bootstrap: str, topic: str, *args: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """`collector consume --from-beginning` until idle for `timeout` seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    proc = subprocess.run([COLLECTOR, "consume", "--kafka-bootstrap", bootstrap, "--kafka-topic",
                           topic, "--from-beginning", "--timeout", str(timeout), *args],
                          capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return [json.loads(line) for line in proc.stdout.splitlines()]


class Burst:
    """Real processes spawned from pytest (not from the collector, which ignores
    its own descendants): /bin/true MARKER i, each waited for."""

    def __init__(self, marker: str | None = None) -> None:
        self.marker = marker or "burst-" + uuid.uuid4().hex[:10]
        self.pids: list[int] = []

    def spawn(self, n: int, rate: float | None = None, extra_args: tuple[str, ...] = ()) -> None:
        for _ in range(n):
            start = time.monotonic()
            p = subprocess.Popen(["/bin/true", self.marker, str(len(self.pids)), *extra_args])
            p.wait()
            self.pids.append(p.pid)
            if rate:
                time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - start)))

    def mine(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e["process"]["args"][1:2] == [self.marker]
                and "procfs" not in e["process"]["flags"]]

    def complete(self, events: list[dict[str, Any]]) -> bool:
        """Every spawned process has its exec and its exit among events."""
        mine = self.mine(events)
        return (len({e["process"]["pid"] for e in mine if e["event_type"] == "process_exec"}) >=
                len(self.pids) and
                len({e["process"]["pid"] for e in mine if e["event_type"] == "process_exit"}) >=
                len(self.pids))

    def assert_exactly_once(self, events: list[dict[str, Any]]) -> None:
        """Each process once as exec and once as exit, with one exec_id."""
        mine = self.mine(events)
        execs = [e for e in mine if e["event_type"] == "process_exec"]
        exits = [e for e in mine if e["event_type"] == "process_exit"]
        assert sorted(e["process"]["pid"] for e in execs) == sorted(self.pids)
        assert sorted(e["process"]["pid"] for e in exits) == sorted(self.pids)
        exec_ids = Counter(e["process"]["exec_id"] for e in execs)
        assert len(exec_ids) == len(self.pids) and set(exec_ids.values()) == {1}
        assert Counter(e["process"]["exec_id"] for e in exits) == exec_ids
        for e in execs:
            assert e["process"]["binary"] == "/usr/bin/true"
            assert e["process"]["args"][:2] == ["/bin/true", self.marker]
        for e in exits:
            assert e["exit_code"] == 0 and e["signal"] is None


def no_duplicates(events: list[dict[str, Any]], *, runs: int = 1) -> list[tuple[str, str]]:
    """(event_type, exec_id) pairs seen more than once: must be empty. With runs > 1
    (the collector restarted), the start-up scan's events are left out: each run
    rightly reports the processes it finds running, with their stable exec_ids."""
    seen = Counter((e["event_type"], e["process"]["exec_id"]) for e in events
                   if runs == 1 or "procfs" not in e["process"]["flags"])
    return [k for k, n in seen.items() if n > 1]
