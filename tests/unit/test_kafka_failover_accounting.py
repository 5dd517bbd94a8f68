"""What a failover leaves on the Kafka sink's stats and log, without a broker:
librdkafka's statistics reach producer.Rounds through the stats_cb it sets
(and survive a producer restart), and a lost broker among several is named in
its own line. The real failover is tested in tests/test_kafka_cluster.py."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError

from sinks.kafka.message import Framing
from sinks.kafka.options import PRODUCER_DEFAULTS, RESERVED_OPTIONS
from sinks.kafka.producer import Rounds
from tests.unit.test_kafka_delivery_rounds import FakeProducer, messages


def stats(msgs: int, txmsgs: int, leader: int) -> str:
    """A librdkafka statistics document with one partition of topic t."""
    return orjson.dumps({"topics": {"t": {"partitions": {
        "0": {"partition": 0, "msgs": msgs, "txmsgs": txmsgs, "leader": leader},
        "-1": {"partition": -1, "msgs": 0, "txmsgs": 9, "leader": -1}}}}}).decode()


def make(bootstrap: str) -> tuple[Rounds, list[FakeProducer]]:
    made: list[FakeProducer] = []

    def factory(conf: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(conf, lambda v: None))
        return made[-1]

    r = Rounds({"bootstrap.servers": bootstrap}, "t", Framing("json").headers(), [],
               producer_factory=factory)
    return r, made


def test_statistics_are_asked_for_and_cannot_be_overridden_as_a_callback() -> None:
    assert PRODUCER_DEFAULTS["statistics.interval.ms"] == "1000"
    assert "set by the sink" in RESERVED_OPTIONS["stats_cb"]


def test_resends_and_leader_changes_add_up_across_a_producer_restart() -> None:
    r, made = make("a:1,b:2")
    made[0].conf["stats_cb"](stats(10, 10, leader=1))
    made[0].conf["stats_cb"](stats(20, 27, leader=2))  # leader 1 died: 7 re-sent to 2
    assert (r.producer_retries, r.leader_changes) == (7, 1)
    r.on_error(KafkaError(KafkaError._FATAL, "fenced", fatal=True))
    assert r.send(messages(b"a")).delivered == 1  # a new producer took over
    assert len(made) == 2 and made[1].conf["stats_cb"] is not made[0].conf["stats_cb"]
    made[1].conf["stats_cb"](stats(5, 8, leader=3))  # its counters start at 0 again
    assert (r.producer_retries, r.leader_changes) == (10, 1)


def test_one_lost_broker_of_several_is_named_once_until_delivery_resumes(
        caplog: pytest.LogCaptureFixture) -> None:
    r, _ = make("127.0.0.1:9092,127.0.0.1:9093")
    lost = KafkaError(KafkaError._TRANSPORT, "127.0.0.1:9093/2: Connect to ipv4#127.0.0.1:9093 "
                      "failed: Connection refused")
    with caplog.at_level(logging.WARNING, logger="collector.kafka"):
        r.on_error(lost)
        r.on_error(lost)  # within 30 s: said once
        r.on_error(KafkaError(KafkaError._TRANSPORT, "127.0.0.1:9092/1: Disconnected"))
    lines = [rec.getMessage() for rec in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("kafka: broker 127.0.0.1:9093/2 unreachable")
    assert "wait for a new leader (counted as producer_retries, not drops)" in lines[0]
    assert lines[1].startswith("kafka: broker 127.0.0.1:9092/1 unreachable")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="collector.kafka"):
        r.send(messages(b"a"))
        r.on_error(lost)  # after "delivering again", a new loss is said again
    lines = [rec.getMessage() for rec in caplog.records]
    assert lines[0].startswith("kafka: delivering again after")
    assert lines[1].startswith("kafka: broker 127.0.0.1:9093/2 unreachable")


def test_a_single_broker_or_all_down_keeps_the_bootstrap_line(
        caplog: pytest.LogCaptureFixture) -> None:
    one, _ = make("127.0.0.1:9092")
    several, _ = make("127.0.0.1:9092,127.0.0.1:9093")
    with caplog.at_level(logging.WARNING, logger="collector.kafka"):
        one.on_error(KafkaError(KafkaError._TRANSPORT, "127.0.0.1:9092/1: Disconnected"))
        several.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "2/2 brokers are down"))
    assert [rec.getMessage() for rec in caplog.records] == [
        "kafka: broker 127.0.0.1:9092 unreachable (127.0.0.1:9092/1: Disconnected); events wait "
        "and are sent when it answers",
        "kafka: broker 127.0.0.1:9092,127.0.0.1:9093 unreachable (2/2 brokers are down); events "
        "wait and are sent when it answers"]
