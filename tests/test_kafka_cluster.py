"""Kafka as the fleet's engine: broker failures of a real three-node cluster.

The real collector (real kernel, real BPF probes) writes the processes these
tests start (markers) into a topic replicated three times
(min.insync.replicas=2, no unclean leader election) while nodes of the
cluster are killed, stopped and restarted. Afterwards the whole topic is read
back and, for every marker process: its exec and its exit are there exactly
once (by pid and exec_id), nothing else of ours is, and the exec comes before
the exit in their partition (the key is the exec_id). The collector's stats
line must show the failover as retries, never as drops.

One cluster serves the whole session (`kafka_cluster` heals it before each
test); every test leaves it with all three nodes up and in sync.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import CollectorProcess, stat_value, wait_for
from tests.kafka_fixtures import Burst, Message, new_topic, no_duplicates, read_topic
from tests.support.kafka_cluster import KafkaCluster
from tests.test_kafka_delivery import decode_single_object

pytestmark = [pytest.mark.kafka, pytest.mark.kafka_cluster]


#: every marker of this module starts so; the collectors keep only those processes
#: (a filter.allow rule), so other work on the machine does not load the tests
PREFIX = "kc-"


def marked() -> Burst:
    return Burst(PREFIX + uuid.uuid4().hex[:10])


class Spawner:
    """A Burst that goes on starting processes in a background thread, so a node
    can be killed while processes keep starting."""

    def __init__(self, rate: float, burst: Burst | None = None) -> None:
        self.burst = burst or marked()
        self.rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.burst.spawn(1, rate=self.rate)

    def __enter__(self) -> Spawner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def wait_more(self, n: int, timeout: float = 60.0) -> None:
        """Until n more processes than now have been started (and waited for)."""
        target = len(self.burst.pids) + n
        wait_for(lambda: len(self.burst.pids) >= target, timeout=timeout, interval=0.02)


def filter_config(workdir: Path, prefix: str = PREFIX) -> Path:
    """A config file that keeps only `/bin/true <prefix>...` processes."""
    path = workdir / f"filter-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(f'[[filter.allow]]\nargs = "^/bin/true {prefix}"\n')
    return path


def run_collector(cluster: KafkaCluster, topic: str, workdir: Path, *args: str,
                  env: dict[str, str] | None = None, prefix: str = PREFIX) -> CollectorProcess:
    """`collector run --sink kafka` with every node in --kafka-bootstrap and the
    default producer settings (idempotent, acks=all), a stats line every second. Values are
    single-object Avro, which these tests decode with the schema they hold."""
    return CollectorProcess("--config", str(filter_config(workdir, prefix)), "--sink", "kafka",
                            "--kafka-bootstrap", cluster.bootstrap, "--kafka-topic", topic,
                            "--kafka-format", "avro-single-object",
                            "--no-procfs-events", "--stats-interval", "1", *args,
                            env=env).wait_attached()


QUIET = {"log_level": "0"}  # the reader's librdkafka: a node down is what the test does


def stats_lines(col: CollectorProcess) -> list[str]:
    return [s for s in col.stderr_lines if s.startswith("stats:")]


def assert_delivered_once(cluster: KafkaCluster, topic: str, col: CollectorProcess,
                          bursts: list[Burst], *, node: str | None = None) -> list[Message]:
    """The collector stopped cleanly having delivered all it queued, dropped
    nothing, and the topic holds each marker process's exec and exit once, the
    exec first in its partition. Returns the topic's messages (of `node`)."""
    line = col.stats_line()
    written = stat_value(line, "written", "kafka")
    assert stat_value(line, "queued", "kafka") == written, line
    assert stat_value(line, "dropped", "kafka") == 0, line
    assert stat_value(line, "drops") == 0, line  # nor did the kernel ring buffer
    msgs = read_topic(cluster.bootstrap, topic, decode=decode_single_object, timeout=60,
                      options=QUIET,
                      until=lambda m: sum(node is None or x.record["node"] == node
                                          for x in m) >= written)
    if node is not None:
        msgs = [m for m in msgs if m.record["node"] == node]
    assert len(msgs) == written, f"{len(msgs)} messages on the topic, {written} acknowledged"
    records = [m.record for m in msgs]
    for burst in bursts:
        burst.assert_exactly_once(records)
    assert no_duplicates(records) == []
    assert_exec_before_exit(msgs, bursts)
    return msgs


def assert_exec_before_exit(msgs: list[Message], bursts: list[Burst]) -> None:
    """Keyed by exec_id, a process's exec and exit share a partition, exec first."""
    where: dict[tuple[str, str], Message] = {}
    for m in msgs:
        proc = m.record["process"]
        assert m.key == proc["exec_id"].encode()
        where[(m.record["event_type"], proc["exec_id"])] = m
    checked = 0
    for burst in bursts:
        for r in burst.mine([m.record for m in msgs]):
            if r["event_type"] != "process_exec":
                continue
            ex = where[("process_exec", r["process"]["exec_id"])]
            end = where[("process_exit", r["process"]["exec_id"])]
            assert ex.partition == end.partition, (ex, end)
            assert ex.offset < end.offset, (ex, end)
            checked += 1
    assert checked == sum(len(b.pids) for b in bursts)


def counter(line: str, name: str) -> int:
    """A Kafka counter of the stats line; the line leaves out those that are 0."""
    try:
        return stat_value(line, name, "kafka")
    except AssertionError:
        return 0


def assert_failover_not_drops(col: CollectorProcess, *, retries: bool = False) -> None:
    """What the producer met during the failover is on the stats line: partition
    leaders that moved (leader_changes), messages librdkafka re-sent
    (producer_retries; only certain when requests were in flight or refused, as
    with too few replicas in sync), and never a drop."""
    line = col.stats_line()
    assert counter(line, "leader_changes") > 0, f"no leader change on the stats line: {line}"
    if retries:
        assert counter(line, "producer_retries") > 0, f"no retry on the stats line: {line}"
    assert stat_value(line, "dropped", "kafka") == 0, line


def other_node(cluster: KafkaCluster, *not_these: int) -> int:
    return next(i for i in cluster.running() if i not in not_these)


@pytest.mark.slow
def test_partition_leader_killed_mid_burst_twice(kafka_cluster: KafkaCluster,
                                                 tmp_path: Path) -> None:
    cluster = kafka_cluster
    topic = new_topic("leader-kill")
    cluster.create_topic(topic, partitions=6)
    first, second = marked(), marked()
    with run_collector(cluster, topic, tmp_path) as col:
        with Spawner(rate=100, burst=first) as spawner:
            spawner.wait_more(100)
            busiest = cluster.busiest_partition(topic)
            victim = cluster.leader(topic, busiest)
            cluster.kill_node(victim)
            spawner.wait_more(200)  # the burst goes on through the election
        cluster.start_node(victim)
        cluster.wait_isr_full()
        with Spawner(rate=100, burst=second) as spawner:
            spawner.wait_more(100)
            busiest = cluster.busiest_partition(topic)
            leader = cluster.leader(topic, busiest)
            victim2 = leader if leader != victim else other_node(cluster, victim)
            cluster.kill_node(victim2)
            spawner.wait_more(200)
        read_topic(cluster.bootstrap, topic, timeout=90, decode=decode_single_object,
                   options=QUIET, until=lambda m: second.complete([x.record for x in m]))
        assert col.stop() == 0, col.stderr
    cluster.start_node(victim2)
    assert_delivered_once(cluster, topic, col, [first, second])
    assert_failover_not_drops(col)
    # one line per lost broker, naming it, not "the cluster is unreachable"
    for node in (victim, victim2):
        name = f"{cluster.node(node).bootstrap}/{node}"
        assert f"kafka: broker {name} unreachable" in col.stderr, col.stderr
    cluster.wait_isr_full()


@pytest.mark.slow
def test_rolling_restart_while_processes_start(kafka_cluster: KafkaCluster, tmp_path: Path) -> None:
    cluster = kafka_cluster
    topic = new_topic("rolling")
    cluster.create_topic(topic, partitions=6)
    t0 = time.monotonic()
    with run_collector(cluster, topic, tmp_path) as col:
        with Spawner(rate=20) as spawner:
            spawner.wait_more(20)
            for node in sorted(cluster.nodes):  # as for an upgrade: one node at a time
                cluster.stop_node(node)  # SIGTERM: controlled shutdown
                print(f"{time.monotonic() - t0:.1f}s node {node} stopped")
                spawner.wait_more(10)
                cluster.start_node(node)
                print(f"{time.monotonic() - t0:.1f}s node {node} started")
                cluster.wait_isr_full()  # back in every ISR before the next one goes
                print(f"{time.monotonic() - t0:.1f}s node {node} back in every ISR")
            spawner.wait_more(20)
        burst = spawner.burst
        print(f"{time.monotonic() - t0:.1f}s {len(burst.pids)} processes started")
        print("\n".join(stats_lines(col)[-3:]))
        read_topic(cluster.bootstrap, topic, timeout=90, decode=decode_single_object,
                   options=QUIET, until=lambda m: burst.complete([x.record for x in m]))
        assert col.stop() == 0, col.stderr
    assert len(burst.pids) >= 70
    assert_delivered_once(cluster, topic, col, [burst])
    assert_failover_not_drops(col)


@pytest.mark.slow
def test_active_controller_killed_mid_burst(kafka_cluster: KafkaCluster, tmp_path: Path) -> None:
    cluster = kafka_cluster
    topic = new_topic("controller")
    cluster.create_topic(topic, partitions=6)
    controller = cluster.active_controller()
    with run_collector(cluster, topic, tmp_path) as col:
        with Spawner(rate=100) as spawner:
            spawner.wait_more(100)
            cluster.kill_node(controller)
            spawner.wait_more(200)
        burst = spawner.burst
        read_topic(cluster.bootstrap, topic, timeout=90, decode=decode_single_object,
                   options=QUIET, until=lambda m: burst.complete([x.record for x in m]))
        assert col.stop() == 0, col.stderr
    cluster.start_node(controller)
    assert cluster.active_controller() != controller  # the quorum elected another one
    assert_delivered_once(cluster, topic, col, [burst])
    assert counter(col.stats_line(), "dropped") == 0
    cluster.wait_isr_full()


def waiting(col: CollectorProcess) -> int:
    """Events the collector accepted and has not delivered yet, by its last stats
    line: in the memory queue and librdkafka (queued - written), or in the disk
    buffer (backlog)."""
    lines = stats_lines(col)
    if not lines:
        return 0
    line = lines[-1]
    return (stat_value(line, "queued", "kafka") - stat_value(line, "written", "kafka")
            + counter(line, "backlog"))


@pytest.mark.slow
def test_two_nodes_down_events_wait_then_all_arrive(kafka_cluster: KafkaCluster,
                                                    tmp_path: Path) -> None:
    """Below min.insync.replicas (and without a controller quorum) nothing can be
    acknowledged: a collector with the memory buffer waits (backpressure, the
    events counted as queued and not written), one with the disk buffer keeps
    them in its buffer (backlog=); once one node is back, all arrive, once.

    Without a quorum the surviving leader's ISR cannot shrink, so it holds the
    produce requests rather than refusing them: they are re-sent by librdkafka
    (producer_retries) only once they time out. The memory collector's
    request.timeout.ms is 5 s, shorter than the outage (a node restart alone
    takes longer), so its re-sends are certain rather than a matter of timing."""
    cluster = kafka_cluster
    topic = new_topic("two-down")
    cluster.create_topic(topic, partitions=6)
    buffer_dir = tmp_path / "buffer"
    with run_collector(cluster, topic, tmp_path, "--node", "memory",
                       "--kafka-option", "request.timeout.ms=5000") as mem, \
            run_collector(cluster, topic, tmp_path, "--node", "disk", "--buffer", "disk",
                          "--buffer-path", str(buffer_dir)) as disk:
        with Spawner(rate=50) as spawner:
            spawner.wait_more(50)
            first, second = sorted(cluster.running())[:2]
            cluster.kill_node(first)
            cluster.kill_node(second)
            spawner.wait_more(200)  # ~4 s of processes while two of three are down
            # the events wait, and the stats line says how many
            wait_for(lambda: waiting(mem) >= 100 and waiting(disk) >= 100, timeout=30)
        burst = spawner.burst
        cluster.start_node(first)  # two of three: a quorum, two replicas in sync
        for node in ("memory", "disk"):
            read_topic(cluster.bootstrap, topic, timeout=120, decode=decode_single_object,
                       options=QUIET, until=lambda m, n=node: burst.complete(
                           [x.record for x in m if x.record["node"] == n]))
        assert mem.stop() == 0, mem.stderr
        assert disk.stop() == 0, disk.stderr
    assert second not in cluster.running()  # all of it arrived with one node still down
    cluster.start_node(second)
    for col, node in ((mem, "memory"), (disk, "disk")):
        assert_delivered_once(cluster, topic, col, [burst], node=node)
        assert counter(col.stats_line(), "dropped") == 0
    assert_failover_not_drops(mem, retries=True)
    assert counter(disk.stats_line(), "backlog") == 0
    cluster.wait_isr_full()


FLEET = 8


@pytest.mark.slow
def test_eight_collectors_one_topic_one_consumer_group(kafka_cluster: KafkaCluster,
                                                       tmp_path: Path) -> None:
    """Eight collectors (different --node names, each keeping only its own marker's
    processes) into one six-partition topic; a group of three `collector consume`
    reads it all: every event exactly once across the group, per-node counts exact."""
    cluster = kafka_cluster
    topic = new_topic("fleet")
    cluster.create_topic(topic, partitions=6)
    group = "siem-" + uuid.uuid4().hex[:8]
    readers = [CollectorProcess("--kafka-bootstrap", cluster.bootstrap, "--kafka-topic", topic,
                                "--group", group, "--from-beginning", command="consume")
               for _ in range(3)]
    cols: dict[str, CollectorProcess] = {}
    try:
        def assignments() -> list[set[int]] | None:
            got = []
            for r in readers:
                said = [s for s in r.stderr_lines if "assigned partitions" in s]
                if not said or "partitions none" in said[-1]:
                    return None
                ids = said[-1].split("assigned partitions ")[1].split(" ")[0]
                got.append({int(i) for i in ids.split(",")})
            if sum(len(g) for g in got) != 6 or set().union(*got) != set(range(6)):
                return None  # a rebalance is still going on
            return got

        shares = wait_for(assignments, timeout=60, interval=0.2)
        bursts = {f"node-{i}": Burst(f"{PREFIX}f{i}-{uuid.uuid4().hex[:8]}") for i in range(FLEET)}
        cols = {node: run_collector(cluster, topic, tmp_path, "--node", node,
                                    prefix=burst.marker) for node, burst in bursts.items()}
        for i, burst in enumerate(bursts.values()):
            burst.spawn(10 + 3 * i)  # a different count per node
        for col in cols.values():
            assert col.stop() == 0, col.stderr
        expected = sum(2 * len(b.pids) for b in bursts.values())

        def printed() -> int:
            return sum(len(r.stdout_lines) for r in readers)

        wait_for(lambda: printed() >= expected, timeout=60, interval=0.2)
        time.sleep(2)  # a duplicate arriving late would be seen
        for r in readers:
            assert r.stop() == 0, r.stderr
    finally:
        for proc in [*readers, *cols.values()]:
            proc.__exit__()
    for col in cols.values():
        line = col.stats_line()
        assert stat_value(line, "dropped", "kafka") == 0, line
        assert stat_value(line, "written", "kafka") == stat_value(line, "queued", "kafka"), line
    per_reader = [r.events() for r in readers]
    assert all(per_reader), [len(e) for e in per_reader]  # the group shared the work
    assert shares is not None and all(shares)
    events = [e for evs in per_reader for e in evs]
    assert len(events) == expected
    once = Counter((e["node"], e["event_type"], e["process"]["exec_id"]) for e in events)
    assert set(once.values()) == {1}
    for node, burst in bursts.items():
        mine = [e for e in events if e["node"] == node]
        assert len(mine) == 2 * len(burst.pids), node
        burst.assert_exactly_once(mine)
    assert Counter(e["node"] for e in events) == {n: 2 * len(b.pids) for n, b in bursts.items()}
