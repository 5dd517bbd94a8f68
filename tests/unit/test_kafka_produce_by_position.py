"""The sink calls confluent-kafka's produce() by position (keywords cost 0.4 µs a
message): this holds sinks.kafka.producer.PRODUCE_BY_POSITION to the real
library. No broker: a producer pointed at a closed port times its message out,
and only a callback in the delivery report's place hears of it. With
delivery.report.only.error a callback in the wrong place would make that
message count as delivered, so the first test is the one that matters."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer

from sinks.kafka.message import Framing, Message
from sinks.kafka.producer import PRODUCE_BY_POSITION, Rounds


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config() -> dict[str, Any]:
    return {"bootstrap.servers": f"127.0.0.1:{closed_port()}", "message.timeout.ms": 300,
            "delivery.report.only.error": True, "log_level": 0}


def test_a_message_that_times_out_is_reported_through_the_positional_callback() -> None:
    r = Rounds(config(), "t", Framing("json").headers(), [])
    out = r.send([Message(b"{}", b"exec-id", "process_exec")])
    assert out.delivered == 0 and r.acked == 0
    assert out.retry == [0]
    assert out.errors == {"_MSG_TIMED_OUT": 1}


def test_the_positions_are_the_librarys() -> None:
    assert PRODUCE_BY_POSITION == ("topic", "value", "key", "partition", "callback",
                                   "on_delivery", "timestamp", "headers")
    p = Producer(config())
    reports: list[KafkaError | None] = []
    headers = Framing("json").headers()["process_exec"]
    p.produce("t", b"v", b"k", -1, lambda err, _msg: reports.append(err), None, 0, headers)
    with pytest.raises(TypeError, match=r"[Hh]eaders"):  # the eighth is parsed as headers
        p.produce("t", b"v", b"k", -1, None, None, 0, 42)
    with pytest.raises(TypeError):  # the seventh is the timestamp, an integer
        p.produce("t", b"v", b"k", -1, None, None, "now", headers)
    assert p.flush(5) == 0
    assert [e.code() for e in reports if e is not None] == [KafkaError._MSG_TIMED_OUT]
