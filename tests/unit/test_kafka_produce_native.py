"""sinks.kafka._produce (C) against its reference: Message against MessagePy,
produce_all against produce_all_py, on the same inputs, refusals and errors."""

from __future__ import annotations

import gc
import random
import sys
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from sinks.kafka import message, producer
from sinks.kafka.message import Framing, MessagePy

pytestmark = pytest.mark.skipif(not (message.NATIVE and producer.NATIVE),
                                reason="sinks.kafka._produce is not built")
if message.NATIVE:
    from sinks.kafka._produce import Message as CMessage
    from sinks.kafka._produce import produce_all as produce_all_c

HEADERS = Framing("json").headers()
TYPES = sorted(HEADERS)


def test_the_message_is_the_c_one_when_built() -> None:
    assert message.Message is CMessage and producer.produce_all is produce_all_c


def test_message_fields_len_and_equality_as_the_dataclass() -> None:
    rng = random.Random(7)
    for _ in range(500):
        value, key = rng.randbytes(rng.randrange(0, 3000)), rng.randbytes(rng.randrange(0, 64))
        kind = rng.choice(TYPES)
        c, py = CMessage(value, key, kind), MessagePy(value, key, kind)
        assert (c.value, c.key, c.event_type, len(c)) == (py.value, py.key, py.event_type, len(py))
        assert c == CMessage(value, key, kind) and not c != CMessage(value, key, kind)
        assert c != CMessage(value + b"x", key, kind) and c != CMessage(value, key, kind + "x")
        assert (c == CMessage(value, key + b"k", kind)) is (py == MessagePy(value, key + b"k", kind))
        assert repr(c) == repr(py).replace("MessagePy(", "Message(", 1)
    assert CMessage(value=b"v", key=b"k", event_type="process_exec") == CMessage(b"v", b"k",
                                                                               "process_exec")
    assert CMessage(b"v", event_type="t", key=b"k").key == b"k"


def test_message_refuses_what_it_cannot_hold() -> None:
    for args in [("v", b"k", "t"), (b"v", None, "t"), (b"v", b"k", b"t"), (b"v", b"k")]:
        with pytest.raises(TypeError):
            CMessage(*args)
    m = CMessage(b"v", b"k", "t")
    with pytest.raises(AttributeError):
        m.value = b"w"  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(m)  # as the dataclass (eq without frozen): unhashable
    with pytest.raises(TypeError):
        hash(MessagePy(b"v", b"k", "t"))


class Produce:
    """A produce() that records its calls; raises what `plan` says at given calls."""

    def __init__(self, plan: dict[int, BaseException]) -> None:
        self.plan = plan
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        assert not kwargs  # by position only
        n = len(self.calls)
        self.calls.append(args)
        if n in self.plan:
            raise self.plan[n]


def drive(impl: Callable[..., Any], items: list[Any], plan: dict[int, BaseException],
          callbacks: list[Any], start: int = 0) -> tuple[list[Any], list[Any]]:
    """Call impl as Rounds does, resuming after each refusal; (returns, calls)."""
    produce = Produce(plan)
    returns: list[Any] = []
    while True:
        try:
            refused = impl(produce, "topic", items, start, callbacks, HEADERS, producer.REFUSALS)
        except Exception as exc:  # compared, not hidden
            returns.append((type(exc), str(exc)))
            break
        returns.append(refused if refused is None else (refused[0], refused[1]))
        if refused is None:
            break
        start = refused[0] + 1
    return returns, produce.calls


def test_produce_all_calls_and_refusals_as_the_reference() -> None:
    rng = random.Random(11)
    for trial in range(300):
        n = rng.randrange(0, 40)
        make = [CMessage, MessagePy]
        items = [rng.choice(make)(rng.randbytes(rng.randrange(0, 50)), rng.randbytes(8),
                                  rng.choice(TYPES)) for _ in range(n)]
        callbacks = [lambda err, msg: None for _ in range(n)]
        plan: dict[int, BaseException] = {}
        for _ in range(rng.randrange(0, 4)):
            plan[rng.randrange(0, max(1, n))] = rng.choice(
                [BufferError("queue full"), KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)),
                 ValueError("not a refusal")])
        start = rng.randrange(0, n + 1) if trial % 5 == 0 else 0
        c_returns, c_calls = drive(produce_all_c, items, plan, callbacks, start)
        py_returns, py_calls = drive(producer.produce_all_py, items, plan, callbacks, start)
        assert c_calls == py_calls
        assert [r if r is None or isinstance(r[0], type) else (r[0], r[1]) for r in c_returns] \
            == [r if r is None or isinstance(r[0], type) else (r[0], r[1]) for r in py_returns]
        for call in c_calls:  # topic, value, key, partition, callback, None, timestamp, headers
            assert len(call) == len(producer.PRODUCE_BY_POSITION)
            assert call[0] == "topic" and call[3] == -1 and call[5] is None and call[6] == 0
        for i, call in zip(range(start, n), c_calls, strict=False):
            assert call[1:3] == (items[i].value, items[i].key) and call[4] is callbacks[i]
            assert call[7] is HEADERS[items[i].event_type]


def test_produce_all_errors_as_the_reference() -> None:
    good = [CMessage(b"v", b"k", "process_exec")]
    cases: list[tuple[list[Any], list[Any]]] = [
        ([CMessage(b"v", b"k", "no_such_type")], [None]),  # no headers: KeyError
        (good, []),  # no callback: IndexError
        ([CMessage(b"v", b"k", "no_such_type")], []),  # both: the callback's first
        ([object()], [None]),  # not a message: AttributeError
    ]
    for items, callbacks in cases:
        c = drive(produce_all_c, items, {}, callbacks)
        py = drive(producer.produce_all_py, items, {}, callbacks)
        assert c[0][0][0] is py[0][0][0], (c, py)
        assert c[1] == py[1] == []


def test_produce_all_keeps_no_reference() -> None:
    value, key, kind = b"v" * 100, b"k" * 10, "process_exec"
    items = [CMessage(value, key, kind) for _ in range(10)] + [MessagePy(value, key, kind)]
    callbacks = [lambda err, msg: None for _ in items]
    before = [sys.getrefcount(x) for x in (value, key, kind, *callbacks, *items)]
    for _ in range(200):
        produce_all_c(lambda *a: None, "t", items, 0, callbacks, HEADERS, producer.REFUSALS)
        produce_all_c(Produce({3: BufferError()}), "t", items, 0, callbacks, HEADERS,
                      producer.REFUSALS)
    gc.collect()  # the refusal's traceback and the plan that raised it form a cycle
    assert [sys.getrefcount(x) for x in (value, key, kind, *callbacks, *items)] == before
