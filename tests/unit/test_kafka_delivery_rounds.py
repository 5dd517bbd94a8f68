"""The Kafka sink's delivery layers without a broker: delivery.classify on
report codes, and producer.Rounds against a fake producer that answers each
message with a scripted report (the real broker's behaviour is tested in
tests/test_kafka_*.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError

from sinks.kafka.delivery import PENDING, classify
from sinks.kafka.message import Framing, Message
from sinks.kafka.producer import Rounds

TOO_LARGE = KafkaError.MSG_SIZE_TOO_LARGE
TIMED_OUT = KafkaError._MSG_TIMED_OUT


def test_classify_sorts_every_report() -> None:
    out = classify([None, KafkaError(TIMED_OUT), KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART),
                    PENDING, KafkaError(TOO_LARGE), None])
    assert out.delivered == 2
    assert out.retry == [1, 3]
    assert out.drops == {"unknown_topic": [2]}
    assert out.alone == [4]  # a size error on a batch: tried by itself first
    assert out.errors == {"_MSG_TIMED_OUT": 1}


def test_classify_a_size_error_alone_or_refused_is_final() -> None:
    assert classify([KafkaError(TOO_LARGE)]).drops == {"too_large": [0]}
    assert classify([None, KafkaError(TOO_LARGE)], refused={1}).drops == {"too_large": [1]}


class FakeProducer:
    """produce/poll/flush/purge; `answer(value)` is the report's error code (or None);
    the first `full` produce() calls raise BufferError (librdkafka's queue full)."""

    def __init__(self, conf: dict[str, Any], answer: Callable[[bytes], int | None],
                 full: int = 0) -> None:
        self.conf = conf
        self.answer = answer
        self.full = full
        self.pending: list[tuple[bytes, Callable[..., None]]] = []
        self.produced: list[bytes] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                partition: int = -1, callback: Callable[..., None] | None = None,
                on_delivery: Callable[..., None] | None = None, timestamp: int = 0,
                headers: Any = None) -> None:  # confluent-kafka's signature
        on_delivery = callback or on_delivery
        assert on_delivery is not None
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        self.produced.append(value)
        self.pending.append((value, on_delivery))

    def poll(self, timeout: float) -> int:
        return self.flush(timeout)

    def flush(self, timeout: float = 0) -> int:
        batch_size = len(self.pending)
        pending, self.pending = self.pending, []
        for value, report in pending:
            code = self.answer(value)
            # the broker refuses a whole batch with a big one in it, and the big one alone
            if code is None and batch_size > 1 and any(self.answer(v) == TOO_LARGE
                                                       for v, _ in pending):
                code = TOO_LARGE
            report(None if code is None else KafkaError(code), None)
        return 0

    def purge(self, **kw: Any) -> None:
        self.pending = []


def rounds(answer: Callable[[bytes], int | None], full: int = 0) -> tuple[Rounds, list[FakeProducer]]:
    made: list[FakeProducer] = []

    def factory(conf: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(conf, answer, full))
        return made[-1]

    headers = Framing("json").headers()
    r = Rounds({"bootstrap.servers": "fake:9092"}, "t", headers, [], producer_factory=factory)
    return r, made


def messages(*values: bytes) -> list[Message]:
    return [Message(v, b"key", "process_exec") for v in values]


def test_one_too_large_message_is_dropped_alone_and_the_rest_delivered() -> None:
    r, _ = rounds(lambda v: TOO_LARGE if v == b"big" else None)
    out = r.send(messages(b"a", b"big", b"c"))
    # the batch round fails whole; each is then tried alone: two deliver, one is too large
    assert out.drops == {"too_large": [1]}
    assert out.delivered == 2 and out.retry == [] and r.acked == 2


def test_a_full_local_queue_is_waited_out_not_dropped() -> None:
    r, made = rounds(lambda v: None, full=3)
    out = r.send(messages(b"a", b"b"))
    assert out.delivered == 2 and not out.drops and not out.retry
    assert r.queue_full_waits == 3
    assert made[0].produced == [b"a", b"b"]


def test_retriable_reports_come_back_by_index_with_their_names() -> None:
    r, _ = rounds(lambda v: TIMED_OUT if v in (b"b", b"d") else None)
    out = r.send(messages(b"a", b"b", b"c", b"d"))
    assert out.retry == [1, 3] and out.delivered == 2
    assert dict(out.errors) == {"_MSG_TIMED_OUT": 2}


def test_message_len_is_what_batch_bytes_counts() -> None:
    m = Message(b"x" * 100, b"k" * 10, "process_exit")
    assert len(m) == 110


@pytest.mark.parametrize("fmt", ["json", "avro"])
def test_headers_name_the_event_type_and_content_type(fmt: str) -> None:
    h = Framing(fmt).headers()
    assert set(h) == {"process_exec", "process_exit"}
    assert h["process_exit"][0] == ("event-type", b"process_exit")
    assert dict(h["process_exec"])["content-type"].startswith(b"application/")


class OnlyErrorsProducer(FakeProducer):
    """librdkafka with delivery.report.only.error: a delivered message gets no
    report; `stalled` values stay in flight (flush returns how many are left)."""

    def __init__(self, conf: dict[str, Any], answer: Callable[[bytes], int | None],
                 stalled: frozenset[bytes] = frozenset()) -> None:
        super().__init__(conf, answer)
        self.stalled = stalled

    def flush(self, timeout: float = 0) -> int:
        pending, self.pending = self.pending, []
        for value, report in pending:
            if value in self.stalled:
                self.pending.append((value, report))
                continue
            code = self.answer(value)
            if code is not None:
                report(KafkaError(code), None)
        return len(self.pending)


def only_errors(answer: Callable[[bytes], int | None],
                stalled: frozenset[bytes] = frozenset()) -> Rounds:
    def factory(conf: dict[str, Any]) -> OnlyErrorsProducer:
        return OnlyErrorsProducer(conf, answer, stalled)

    return Rounds({"bootstrap.servers": "fake:9092"}, "t", Framing("json").headers(), [],
                  producer_factory=factory)


def test_the_producer_reports_failures_only() -> None:
    from sinks.kafka.options import producer_config

    assert producer_config({"bootstrap": "b:9092"})["delivery.report.only.error"] is True


def test_no_report_and_an_empty_queue_means_delivered() -> None:
    r = only_errors(lambda v: TIMED_OUT if v == b"b" else None)
    out = r.send(messages(b"a", b"b", b"c"))
    assert out.delivered == 2 and out.retry == [1] and r.acked == 2
    assert dict(out.errors) == {"_MSG_TIMED_OUT": 1}


def test_a_cancelled_round_counts_nothing_it_was_not_told() -> None:
    import threading

    cancel = threading.Event()
    cancel.set()
    # "a" left the queue with no report (delivered), "b" is still in flight: with
    # failure-only reports the two cannot be told apart, so neither counts as delivered
    r = only_errors(lambda v: None, stalled=frozenset({b"b"}))
    out = r.send(messages(b"a", b"b"), cancel=cancel)
    assert out.delivered == 0 and out.retry == [0, 1] and r.acked == 0


def test_a_late_report_of_a_cancelled_round_does_not_reach_the_next_round() -> None:
    import threading

    made: list[OnlyErrorsProducer] = []

    def factory(conf: dict[str, Any]) -> OnlyErrorsProducer:
        made.append(OnlyErrorsProducer(conf, lambda v: TIMED_OUT if v == b"b" else None,
                                       stalled=frozenset({b"b"})))
        return made[-1]

    r = Rounds({"bootstrap.servers": "fake:9092"}, "t", Framing("json").headers(), [],
               producer_factory=factory)
    cancel = threading.Event()
    cancel.set()
    first = r.send(messages(b"a", b"b"), cancel=cancel)
    assert first.delivered == 0 and first.retry == [0, 1]
    made[0].stalled = frozenset()  # "b" (the first round's message 1) now fails, late
    second = r.send(messages(b"c", b"d"))
    assert second.delivered == 2 and second.retry == [] and not second.errors
    third = r.send(messages(b"b", b"e"))  # a settled round's callbacks are reused
    assert third.retry == [0] and third.delivered == 1
