"""Inline writes (collector.pipeline.inline): the reader's thread writes a poll
itself when the sink says that cannot wait and the worker holds nothing;
otherwise the worker does, as before. Real worker threads, real clocks; the
sink is the in-memory MemorySink (RecordingSink notes batch sizes)."""

from __future__ import annotations

import threading
import time

from collector.errors import SinkError
from collector.pipeline.worker import SinkWorker
from tests.unit.test_pipeline_worker import RecordingSink, ev, settings

READER = threading.current_thread().name  # the test plays the reader


def wait_until(cond, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_poll_is_written_on_the_readers_thread_in_batches() -> None:
    sink = RecordingSink(inline=True)
    w = SinkWorker(sink, settings(batch_events=100))
    w.start()
    w.put_many([ev(i) for i in range(250)])
    # written before put_many returned, by the caller, in batches of batch_events
    assert sink.numbers() == list(range(250))
    assert sink.sizes == [100, 100, 50]
    assert sink.writers == [READER] * 3
    assert (w.stats.queued, w.stats.written, w.stats.batches) == (250, 250, 3)
    assert w.drain(3.0)
    assert w.stats.undelivered == 0 and w.stats.dropped_total == 0


def test_a_sink_that_could_wait_is_written_by_its_worker() -> None:
    sink = RecordingSink(inline=False)
    w = SinkWorker(sink, settings())
    w.start()
    w.put_many([ev(i) for i in range(10)])
    wait_until(lambda: len(sink.events) == 10)
    assert set(sink.writers) == {"sink-memory"}
    assert w.drain(3.0)


def test_a_drop_policy_keeps_the_reader_from_ever_writing() -> None:
    """drop-newest / drop-oldest promise the reader never waits: only the queue keeps it."""
    for policy in ("drop-newest", "drop-oldest"):
        sink = RecordingSink(inline=True)
        w = SinkWorker(sink, settings(when_full=policy))
        w.start()
        w.put_many([ev(i) for i in range(10)])
        wait_until(lambda: len(sink.events) == 10)  # noqa: B023 - used at once
        assert set(sink.writers) == {"sink-memory"}
        assert w.drain(3.0)


def test_events_never_overtake_a_batch_the_worker_holds() -> None:
    sink = RecordingSink(inline=False, delay_s=0.3)
    w = SinkWorker(sink, settings())
    w.start()
    w.put_many([ev(i) for i in range(10)])
    wait_until(lambda: sink.calls == 1)  # the worker is inside its slow write
    sink.inline = True
    w.put_many([ev(i) for i in range(10, 20)])  # must queue behind it, not jump ahead
    assert w.drain(5.0)
    assert sink.numbers() == list(range(20))
    assert sink.writers == ["sink-memory", "sink-memory"]


def test_a_failed_inline_write_is_retried_by_the_worker_and_counted() -> None:
    sink = RecordingSink(inline=True, fail_times=1)
    w = SinkWorker(sink, settings())
    w.start()
    w.put_many([ev(i) for i in range(5)])
    wait_until(lambda: len(sink.events) == 5)
    assert sink.writers == [READER, "sink-memory"]  # failed here, then the worker's retry
    assert sink.numbers() == list(range(5))
    assert (w.stats.queued, w.stats.written, w.stats.retries) == (5, 5, 1)
    w.put_many([ev(5)])  # and the next poll is written inline again
    assert sink.writers[-1] == READER
    assert w.drain(3.0)
    assert w.stats.dropped_total == 0


def test_a_fatal_inline_error_fails_the_sink_with_its_events_counted() -> None:
    failed: list[str] = []
    sink = RecordingSink(inline=True, fail_times=-1, error=SinkError("the disk is gone"))
    w = SinkWorker(sink, settings(), on_fatal=lambda _w, why: failed.append(why))
    w.start()
    w.put_many([ev(i) for i in range(5)])
    assert failed == ["the disk is gone"]
    assert w.stats.failed == "the disk is gone"
    w.put_many([ev(5), ev(6)])  # refused by the failed sink, counted
    assert w.stats.dropped == {"sink_failed": 7}
    assert not w.drain(3.0)


def test_encode_errors_inline_are_counted_not_fatal() -> None:
    sink = RecordingSink(inline=True, bad=3)
    w = SinkWorker(sink, settings())
    w.start()
    w.put_many([ev(i) for i in range(6)])
    assert sink.numbers() == [0, 1, 2, 4, 5]
    assert w.stats.dropped == {"encode_error": 1}
    assert w.stats.failed is None
    assert w.drain(3.0)


def test_events_never_overtake_a_batch_the_worker_is_still_filling() -> None:
    """The worker took events and waits for its batch timeout (outside the sink)."""
    sink = RecordingSink(inline=False)
    w = SinkWorker(sink, settings(batch_events=1000, batch_timeout_ms=400))
    w.start()
    w.put_many([ev(i) for i in range(10)])
    wait_until(lambda: w.queue.empty)  # taken, not written: the batch is filling
    assert sink.calls == 0
    sink.inline = True
    w.put_many([ev(i) for i in range(10, 20)])
    assert w.drain(5.0)
    assert sink.numbers() == list(range(20))
    assert sink.writers == ["sink-memory"] and sink.sizes == [20]


class CountingSink(RecordingSink):
    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.encoded = 0

    def encode(self, event: dict) -> object:  # type: ignore[type-arg]
        self.encoded += 1
        return super().encode(event)


def test_every_event_is_encoded_once_whoever_writes_it() -> None:
    """A "no" is asked before encoding: the worker does not encode a poll again."""
    for inline in (False, True):
        sink = CountingSink(inline=inline)
        w = SinkWorker(sink, settings())
        w.start()
        for start in range(0, 300, 30):
            w.put_many([ev(i) for i in range(start, start + 30)])
        assert w.drain(3.0)
        assert sink.numbers() == list(range(300))
        assert sink.encoded == 300


def test_a_sink_without_the_hook_is_never_written_inline() -> None:
    from collector.export.contract import Sink

    class Plain(Sink):
        name = "plain"

        def encode(self, event: dict) -> object:  # type: ignore[type-arg]
            return event

        def write_batch(self, batch: object) -> None:
            pass

    assert not SinkWorker(Plain(), settings()).inline.enabled
    assert SinkWorker(RecordingSink(), settings()).inline.enabled


def test_a_partly_written_inline_batch_leaves_only_the_rest_to_the_worker() -> None:
    from collector.export import PartialWriteError

    class Partly(RecordingSink):
        def write_batch(self, batch):  # type: ignore[no-untyped-def]
            if not self.events and len(batch) > 2:  # the first write: 2 of them go through
                super().write_batch(batch[:2])
                raise PartialWriteError("2 written", batch[2:])
            super().write_batch(batch)

    sink = Partly(inline=True)
    w = SinkWorker(sink, settings())
    w.start()
    w.put_many([ev(i) for i in range(5)])
    wait_until(lambda: len(sink.events) == 5)
    assert sink.numbers() == list(range(5))  # nothing twice, nothing lost, in order
    assert sink.writers == [READER, "sink-memory"]
    assert (w.stats.queued, w.stats.written, w.stats.retries) == (5, 5, 1)
    assert w.drain(3.0)
    assert w.stats.undelivered == 0


class ManyBadSink(RecordingSink):
    """Refuses to encode the events whose number is in `refuse`; counts each encode."""

    def __init__(self, refuse: set[int], **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.refuse = refuse
        self.encoded: list[int] = []

    def encode(self, event: dict) -> object:  # type: ignore[type-arg]
        self.encoded.append(event["n"])
        if event["n"] in self.refuse:
            raise ValueError("cannot encode this one")
        return super().encode(event)


def test_bad_events_anywhere_in_a_poll_drop_only_themselves_each_encoded_once() -> None:
    for refuse in ({0}, {9}, {3, 4, 5}, {0, 2, 9}, set(range(10))):
        sink = ManyBadSink(refuse, inline=True)
        w = SinkWorker(sink, settings())
        w.start()
        w.put_many([ev(i) for i in range(10)])
        assert sink.numbers() == [i for i in range(10) if i not in refuse]
        assert sink.encoded == list(range(10))  # none twice, none skipped
        assert w.stats.dropped.get("encode_error", 0) == len(refuse)
        assert sink.writers == ([READER] if len(refuse) < 10 else [])
        assert w.drain(3.0)


def test_inline_batches_follow_the_byte_limit_as_the_batcher_does() -> None:
    """Items are taken while the batch has fewer than batch_bytes: 100-byte items
    under a 250-byte limit go three to a batch (the third crosses it)."""
    sink = RecordingSink(inline=True, encode_bytes=100)
    w = SinkWorker(sink, settings(batch_events=1000, batch_bytes=250))
    w.start()
    w.put_many([ev(i) for i in range(10)])
    assert sink.sizes == [3, 3, 3, 1]
    assert sink.writers == [READER] * 4
    assert w.drain(3.0)
