"""Broker outages and collector crashes: nothing accepted is lost, nothing is doubled.

Each test drives the real collector against the session broker, stops or
kills the broker (or the collector) in the middle of a burst of real
processes, and then reads the whole topic back.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.helpers import stat_value, wait_for
from tests.kafka_fixtures import Burst, new_topic, no_duplicates, read_topic
from tests.support.kafka_broker import KafkaBroker
from tests.test_kafka_delivery import decode_single_object, run_kafka

pytestmark = pytest.mark.kafka


@pytest.mark.slow
def test_broker_down_30s_mid_burst_loses_and_doubles_nothing(kafka: KafkaBroker) -> None:
    topic = new_topic("outage")
    burst = Burst()
    # a queue larger than the outage needs: this test is about the sink, not the queue
    env = {"COLLECTOR_KAFKA_QUEUE_EVENTS": "200000"}
    with run_kafka(kafka, topic, env=env) as col:
        burst.spawn(100, rate=50)
        kafka.kill()  # no goodbye: produce requests in flight get no answer
        down = time.monotonic()
        while time.monotonic() - down < 30:
            burst.spawn(10, rate=50)  # the burst goes on while the broker is away
        kafka.start()
        burst.spawn(100, rate=50)
        read_topic(kafka.bootstrap, topic, timeout=90, decode=decode_single_object,
                   until=lambda m: burst.complete([x.record for x in m]))
        assert col.stop() == 0, col.stderr
    assert "unreachable" in col.stderr and "delivering again after" in col.stderr
    line = col.stats_line()
    written = stat_value(line, "written", "kafka")
    assert stat_value(line, "queued", "kafka") == written
    assert stat_value(line, "dropped", "kafka") == 0
    msgs = read_topic(kafka.bootstrap, topic, until=lambda m: len(m) >= written,
                      decode=decode_single_object)
    assert len(msgs) == written
    records = [m.record for m in msgs]
    assert len(burst.pids) >= 500
    assert stat_value(line, "drops") == 0, line  # the kernel lost nothing either
    burst.assert_exactly_once(records)
    assert no_duplicates(records) == []


def test_broker_unreachable_at_start_then_delivered(kafka: KafkaBroker) -> None:
    kafka.stop()
    topic = new_topic("late")
    burst = Burst()
    with run_kafka(kafka, topic, "--kafka-format", "json") as col:
        burst.spawn(50)
        wait_for(lambda: "not reachable at start" in col.stderr, timeout=20)
        kafka.start()
        read_topic(kafka.bootstrap, topic, timeout=60, decode=json.loads,
                   until=lambda m: burst.complete([x.record for x in m]))
        assert col.stop() == 0, col.stderr
    line = next(s for s in col.stderr_lines if "not reachable at start" in s)
    assert line.startswith(f"collector: WARNING kafka: broker {kafka.bootstrap} not reachable at start")
    assert "events wait in the memory queue (when_full=block)" in line
    written = stat_value(col.stats_line(), "written", "kafka")
    assert written == stat_value(col.stats_line(), "queued", "kafka")
    events = [json.loads(m.value) for m in read_topic(kafka.bootstrap, topic,
                                                         until=lambda m: len(m) >= written)]
    assert len(events) == written
    burst.assert_exactly_once(events)
    assert no_duplicates(events) == []


def buffered(path: Path, marker: str) -> int:
    """Rows of the disk buffer that hold this burst's events (read-only look)."""
    conn = sqlite3.connect(f"file:{path / 'kafka-buffer.sqlite3'}?mode=ro", uri=True)
    try:
        (n,) = conn.execute("SELECT COUNT(*) FROM messages WHERE instr(value, ?) > 0",
                            (marker.encode(),)).fetchone()
        return int(n)
    finally:
        conn.close()


@pytest.mark.slow
def test_disk_buffer_survives_sigkill_while_broker_down(kafka: KafkaBroker, tmp_path: Path) -> None:
    topic = new_topic("disk")
    buf = tmp_path / "buffer"
    args = ("--buffer", "disk", "--buffer-path", str(buf))
    warmup, burst, after = Burst(), Burst(), Burst()
    with run_kafka(kafka, topic, *args) as first:
        warmup.spawn(10)  # the sender works while the broker is up
        read_topic(kafka.bootstrap, topic, decode=decode_single_object,
                   until=lambda m: warmup.complete([x.record for x in m]))
        kafka.stop()
        burst.spawn(100)
        # accepted = committed to the buffer, exec and exit of every process
        wait_for(lambda: buffered(buf, burst.marker) == 200, timeout=30)
        first.proc.send_signal(signal.SIGKILL)
        first.wait()
    kafka.start()
    with run_kafka(kafka, topic, *args) as second:
        assert any("left in the disk buffer" in s for s in second.stderr_lines), second.stderr
        after.spawn(10)
        read_topic(kafka.bootstrap, topic, timeout=60, decode=decode_single_object,
                   until=lambda m: after.complete([x.record for x in m]))
        assert second.stop() == 0, second.stderr
    assert buffered(buf, burst.marker) == 0
    msgs = read_topic(kafka.bootstrap, topic, decode=decode_single_object,
                      until=lambda m: burst.complete([x.record for x in m]))
    records = [m.record for m in msgs]
    for b in (warmup, burst, after):
        b.assert_exactly_once(records)
    assert no_duplicates(records, runs=2) == []
    # the backlog went out before anything the second run captured
    offset = {id(r): m.offset for m, r in zip(msgs, records, strict=True)}
    assert max(offset[id(r)] for r in burst.mine(records)) < \
        min(offset[id(r)] for r in after.mine(records))
    line = second.stats_line()
    assert stat_value(line, "written", "kafka") == stat_value(line, "queued", "kafka")
    assert stat_value(line, "dropped", "kafka") == 0
    assert "backlog=" not in line  # empty at the end (zero counters are not shown)
