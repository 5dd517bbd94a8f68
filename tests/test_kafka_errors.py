"""Errors that re-sending cannot fix: one clear line, counted, and the sink goes on."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import pytest

from tests.helpers import stat_value, wait_for
from tests.kafka_fixtures import Burst, new_topic, no_duplicates, read_topic
from tests.support.kafka_broker import KafkaBroker
from tests.test_kafka_delivery import decode_single_object, run_kafka

pytestmark = pytest.mark.kafka

NO_SCAN = {"COLLECTOR_ENRICH_PROCFS_EVENTS": "false"}  # only the events these tests make


def test_unknown_topic_is_counted_and_the_sink_recovers_once_it_exists(
        strict_kafka: KafkaBroker) -> None:
    topic = new_topic("missing")
    before, after = Burst(), Burst()
    with run_kafka(strict_kafka, topic, "--kafka-option", "topic.metadata.propagation.max.ms=1000",
                   env=NO_SCAN) as col:
        before.spawn(5)
        wait_for(lambda: "does not exist" in col.stderr, timeout=30)
        strict_kafka.create_topic(topic)
        # Until the producer's metadata shows the new topic (a second or more on a
        # loaded host), events are still rightly refused: spawn one process at a
        # time until one of them arrives, then the five that must all arrive.
        bridge = Burst()
        wait_for(lambda: bridge.spawn(1) or topic_has(strict_kafka, topic, bridge.marker),
                 timeout=60, interval=0.5)
        after.spawn(5)
        read_topic(strict_kafka.bootstrap, topic, timeout=60,
                   until=lambda m: after.complete([decode_single_object(x.value) for x in m]))
        assert col.stop() == 0, col.stderr
    line = col.stats_line()
    # everything written by the stop, the host's other processes' events included
    msgs = read_topic(strict_kafka.bootstrap, topic, decode=decode_single_object,
                      until=lambda m: len(m) >= stat_value(line, "written", "kafka"))
    assert "FAILED" not in line
    drop_lines = [s for s in col.stderr_lines if "kafka: dropped" in s]
    assert drop_lines and all(
        s.startswith("collector: ERROR kafka: dropped ") and s.endswith(
            f"events: topic '{topic}' does not exist and the broker does not create it; "
            "create the topic or fix kafka.topic") for s in drop_lines), drop_lines
    records = [m.record for m in msgs]
    assert before.mine(records) == []
    after.assert_exactly_once(records)
    assert no_duplicates(records) == []
    queued, written = stat_value(line, "queued", "kafka"), stat_value(line, "written", "kafka")
    assert written == len(msgs)
    assert line.count("dropped=unknown_topic:") == 1
    assert stat_value(line, "dropped", "kafka") == queued - written >= 10  # before's exec+exit


def topic_has(broker: KafkaBroker, topic: str, marker: str) -> bool:
    """Some message on the topic is an event of a process started with marker."""
    try:
        read_topic(broker.bootstrap, topic, timeout=2, until=lambda m: any(
            decode_single_object(x.value)["process"]["args"][1:2] == [marker] for x in m))
    except AssertionError:
        return False
    return True


def test_message_over_the_size_limit_is_dropped_and_counted(kafka: KafkaBroker,
                                                           tmp_path: Path) -> None:
    topic = new_topic("sized")
    kafka.create_topic(topic, config={"max.message.bytes": 16384})
    # ~32 KB of incompressible argv: over the topic's limit even after lz4
    huge = base64.b64encode(os.urandom(24000)).decode()
    run = uuid.uuid4().hex[:10]
    small, big, later = Burst(f"{run}-small"), Burst(f"{run}-big"), Burst(f"{run}-later")
    # only this test's processes: the drop counts are exact even when another process on
    # the host (a JVM with a long class path) has an argv over the limit too
    cfg = tmp_path / "only-mine.toml"
    cfg.write_text(f'[[filter.allow]]\nargs = "^/bin/true {run}-"\n')
    with run_kafka(kafka, topic, "--config", str(cfg), "--args-max", "32767",
                   env=NO_SCAN) as col:
        small.spawn(20)
        big.spawn(1, extra_args=(huge,))
        later.spawn(20)
        msgs = read_topic(kafka.bootstrap, topic, timeout=60, decode=decode_single_object,
                          until=lambda m: later.complete([x.record for x in m]))
        assert col.stop() == 0, col.stderr
    line = col.stats_line()
    assert "dropped=too_large:2 " in line  # the big process's exec and exit
    assert "FAILED" not in line
    assert stat_value(line, "written", "kafka") == stat_value(line, "queued", "kafka") - 2
    drop_lines = [s for s in col.stderr_lines if "kafka: dropped" in s]
    assert len(drop_lines) in (1, 2)  # exec and exit, in one batch or two
    assert all("larger than the broker accepts" in s and "max.message.bytes" in s
               for s in drop_lines)
    assert huge not in col.stderr
    records = [m.record for m in msgs]
    small.assert_exactly_once(records)
    later.assert_exactly_once(records)
    assert big.mine(records) == []
    assert no_duplicates(records) == []
