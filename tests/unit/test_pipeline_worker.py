"""SinkWorker: batching, retries with backoff, backpressure policies, counters.

The sink here is collector.export.testing.MemorySink (the in-memory stand-in), or a
small subclass of it that records what the worker did; the worker, its
threads, tenacity and the clocks are the real ones. Retry settings are
short so each test takes well under a second or two.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from collector.errors import SinkError
from collector.export import Event, TransientSinkError
from collector.export.testing import MemorySink
from collector.pipeline.queue import SinkQueue
from collector.pipeline.stats import ReaderStats, SinkStats, summary_line
from collector.pipeline.worker import SinkWorker


def settings(**over: Any) -> dict[str, Any]:
    base = {
        "queue_events": 10000,
        "batch_events": 100,
        "batch_bytes": 1 << 20,
        "batch_timeout_ms": 0,
        "when_full": "block",
        "retry_initial_ms": 10,
        "retry_max_ms": 50,
        "retry_max_elapsed_s": 5.0,
    }
    base.update(over)
    return base


def ev(i: int) -> Event:
    return {"n": i}


class RecordingSink(MemorySink):
    """MemorySink that also notes batch sizes, times, flushes, reopens and their threads."""

    def __init__(self, *args: Any, encode_bytes: int = 0, bad: int | set[int] | None = None,
                 open_error: Exception | None = None, open_fail_times: int = 0,
                 idle_flush_s: float | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.sizes: list[int] = []
        self.times: list[float] = []
        self.flushes = 0
        self.reopens: list[str] = []
        self.encode_calls: list[int] = []  # the event numbers encode() was called with, in order
        self.opens = 0
        self.encode_bytes = encode_bytes
        self.bad = {bad} if isinstance(bad, int) else bad or set()
        self.open_error = open_error
        self.open_fail_times = open_fail_times
        self.idle_flush_s = idle_flush_s

    def open(self) -> None:
        self.opens += 1
        if self.open_fail_times:
            self.open_fail_times -= 1
            assert self.open_error is not None
            raise self.open_error

    def encode(self, event: Event) -> Any:
        self.encode_calls.append(event["n"])
        if event["n"] in self.bad:
            raise ValueError("cannot encode this one")
        if self.encode_bytes:
            return event["n"].to_bytes(4, "big") + b"x" * (self.encode_bytes - 4)
        return event

    def write_batch(self, batch: Sequence[Any]) -> None:
        super().write_batch(batch)
        self.sizes.append(len(batch))
        self.times.append(time.monotonic())

    def flush(self) -> None:
        self.flushes += 1

    def reopen(self) -> None:
        self.reopens.append(threading.current_thread().name)

    def numbers(self) -> list[int]:
        return [int.from_bytes(x[:4], "big") if isinstance(x, bytes) else x["n"]
                for x in self.events]


def test_batches_by_event_count() -> None:
    sink = RecordingSink()
    w = SinkWorker(sink, settings(batch_events=10))
    for i in range(95):
        w.put(ev(i))
    w.start()
    assert w.drain(5.0)
    assert sink.sizes == [10] * 9 + [5]
    assert sink.numbers() == list(range(95))
    assert (w.stats.queued, w.stats.written, w.stats.batches) == (95, 95, 10)
    assert w.stats.dropped_total == 0 and w.stats.queue_depth == 0
    assert sink.closed


def thirty_through_a_bytes_limit(sink: RecordingSink) -> SinkWorker:
    """30 events of 100 bytes, batches of at most 50 events or 350 bytes, drained."""
    w = SinkWorker(sink, settings(batch_events=50, batch_bytes=350))
    for i in range(30):
        w.put(ev(i))
    w.start()
    assert w.drain(5.0)
    return w


def test_batches_by_bytes_keep_order() -> None:
    sink = RecordingSink(encode_bytes=100)
    thirty_through_a_bytes_limit(sink)
    # 4 x 100 bytes reach 350: the rest of the chunk goes back to the head of the queue
    assert sink.sizes == [4] * 7 + [2]
    assert sink.numbers() == list(range(30))


def test_events_that_cannot_be_encoded_around_a_bytes_cut_count_once() -> None:
    # 1 and 5 fail before the cut of the first chunk, 9 and 13 after it: those go back
    # to the queue with the rest and are counted when their own batch encodes them
    bad = {1, 5, 9, 13}
    sink = RecordingSink(encode_bytes=100, bad=bad)
    w = thirty_through_a_bytes_limit(sink)
    assert sink.numbers() == [i for i in range(30) if i not in bad]
    assert sink.sizes == [4] * 6 + [2]
    assert w.stats.dropped == {"encode_error": len(bad)}
    assert (w.stats.queued, w.stats.written) == (30, 26)


def test_a_bytes_cut_encodes_each_event_once_when_sizes_hold() -> None:
    # the batcher encodes about as many events as the mean item size says still fit,
    # so with items of one size no event is encoded, given back and encoded again
    sink = RecordingSink(encode_bytes=100)
    thirty_through_a_bytes_limit(sink)
    assert sink.sizes == [4] * 7 + [2]
    assert sink.numbers() == list(range(30))
    assert sink.encode_calls == list(range(30))


def test_batch_waits_for_its_timeout_to_fill() -> None:
    sink = RecordingSink()
    w = SinkWorker(sink, settings(batch_events=1000, batch_timeout_ms=300))
    w.start()
    t0 = time.monotonic()
    for i in range(3):
        w.put(ev(i))
    time.sleep(0.1)
    w.put(ev(3))
    deadline = time.monotonic() + 3
    while not sink.times and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.sizes == [4]
    assert 0.3 <= sink.times[0] - t0 < 1.0
    assert w.drain(5.0)


def test_transient_failures_are_retried_with_backoff_then_delivered() -> None:
    sink = RecordingSink(fail_times=3)
    w = SinkWorker(sink, settings(batch_events=1000, retry_initial_ms=20, retry_max_ms=1000))
    for i in range(50):
        w.put(ev(i))
    t0 = time.monotonic()
    w.start()
    assert w.drain(10.0)
    elapsed = time.monotonic() - t0
    assert sink.calls == 4
    assert sink.numbers() == list(range(50))  # once each, in order
    assert (w.stats.written, w.stats.retries, w.stats.batches, w.stats.dropped_total) == (50, 3, 1, 0)
    # exponential: at least 20 + 40 + 80 ms of waiting (jitter only adds)
    assert elapsed >= 0.14


def test_never_recovering_sink_drops_per_policy_with_counts() -> None:
    sink = RecordingSink(fail_times=-1)
    w = SinkWorker(sink, settings(when_full="drop-newest", queue_events=5, batch_events=5,
                                  retry_max_elapsed_s=0.2))
    w.start()
    for i in range(40):
        w.put(ev(i))
        time.sleep(0.01)
    assert w.drain(5.0)  # the drops were the policy's, counted: nothing is unaccounted for
    st = w.stats
    assert st.written == 0 and sink.events == []
    assert st.queued + st.dropped["queue_full"] == 40
    assert st.dropped["retries_exhausted"] == st.queued
    assert st.dropped["queue_full"] > 0 and st.dropped["retries_exhausted"] > 0
    assert st.retries > 0 and st.failed is None


def test_block_policy_waits_and_loses_nothing() -> None:
    sink = RecordingSink(fail_times=-1)
    w = SinkWorker(sink, settings(when_full="block", queue_events=5, batch_events=5,
                                  retry_max_elapsed_s=0.2, retry_max_ms=20))
    w.start()
    done = threading.Event()

    def producer() -> None:
        for i in range(30):
            w.put(ev(i))
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    time.sleep(0.8)
    assert not done.is_set()  # the reader side waits: a full queue is a wait, not a drop
    assert w.stats.queue_depth == 5 and w.stats.dropped_total == 0
    sink.fail_times = 0  # the sink recovers
    assert done.wait(5.0)
    t.join()
    assert w.drain(5.0)
    assert sink.numbers() == list(range(30))
    assert (w.stats.queued, w.stats.written, w.stats.dropped_total) == (30, 30, 0)


def test_drop_oldest_keeps_the_newest() -> None:
    sink = RecordingSink()
    w = SinkWorker(sink, settings(when_full="drop-oldest", queue_events=5))
    for i in range(12):
        w.put(ev(i))
    w.start()
    assert w.drain(5.0)
    assert sink.numbers() == [7, 8, 9, 10, 11]
    assert w.stats.dropped == {"queue_full": 7}
    assert w.stats.queued == 12 and w.stats.written == 5


def test_drop_newest_refuses_new_events() -> None:
    sink = RecordingSink()
    w = SinkWorker(sink, settings(when_full="drop-newest", queue_events=5))
    for i in range(12):
        w.put(ev(i))
    w.start()
    assert w.drain(5.0)
    assert sink.numbers() == [0, 1, 2, 3, 4]
    assert w.stats.dropped == {"queue_full": 7}
    assert w.stats.queued == 5


@pytest.mark.parametrize("policy, kept, queued", [
    ("drop-newest", [0, 1, 2, 3, 4], 5),
    ("drop-oldest", [7, 8, 9, 10, 11], 12),
])
def test_put_many_applies_the_policy_to_each_event_that_does_not_fit(
        policy: str, kept: list[int], queued: int) -> None:
    """A poll's events go in under one lock as far as there is room; the rest
    meet the policy one by one, exactly as put() would (see the put() tests)."""
    sink = RecordingSink()
    w = SinkWorker(sink, settings(when_full=policy, queue_events=5))
    w.put_many([ev(i) for i in range(3)])
    w.put_many([ev(i) for i in range(3, 7)])  # 2 fit, 2 meet the policy
    w.put_many([ev(i) for i in range(7, 12)])  # no room: all 5 meet it
    w.start()
    assert w.drain(5.0)
    assert sink.numbers() == kept
    assert w.stats.dropped == {"queue_full": 7}
    assert w.stats.queued == queued


def test_put_many_with_block_waits_and_keeps_order() -> None:
    sink = RecordingSink()
    w = SinkWorker(sink, settings(queue_events=50, batch_events=7))
    w.start()
    for start in range(0, 1000, 200):  # polls far larger than the queue
        w.put_many([ev(i) for i in range(start, start + 200)])
    assert w.drain(10.0)
    assert sink.numbers() == list(range(1000))
    assert w.stats.queued == w.stats.written == 1000 and not w.stats.dropped


def test_fatal_error_stops_only_that_sink() -> None:
    fatal: list[str] = []
    bad = RecordingSink("bad", fail_times=-1, error=SinkError("permission denied: fix it"))
    good = RecordingSink("good")
    wb = SinkWorker(bad, settings(batch_events=10), on_fatal=lambda w, why: fatal.append(why))
    wg = SinkWorker(good, settings(batch_events=10))
    wb.start()
    wg.start()
    for i in range(10):
        wb.put(ev(i))
        wg.put(ev(i))
    deadline = time.monotonic() + 5
    while wb.stats.failed is None and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(10, 20):
        wb.put(ev(i))
        wg.put(ev(i))
    assert fatal == ["permission denied: fix it"]
    assert bad.calls == 1  # fatal: not retried
    assert not wb.drain(2.0)
    assert wg.drain(2.0)
    assert wb.stats.failed == "permission denied: fix it"
    assert wb.stats.dropped["sink_failed"] == 20 and wb.stats.written == 0
    assert good.numbers() == list(range(20))


def test_fatal_open_error_raises_at_start() -> None:
    sink = RecordingSink(open_error=SinkError("directory /x does not exist"), open_fail_times=1)
    w = SinkWorker(sink, settings())
    with pytest.raises(SinkError, match="does not exist"):
        w.start()
    assert w.drain(1.0)  # never started: nothing to wait for


def test_transient_open_error_is_retried_and_events_wait() -> None:
    sink = RecordingSink(open_error=TransientSinkError("broker not up yet"), open_fail_times=3)
    w = SinkWorker(sink, settings())
    w.start()  # does not raise
    for i in range(10):
        w.put(ev(i))
    assert w.drain(5.0)
    assert sink.opens == 4
    assert sink.numbers() == list(range(10))


def test_shutdown_timeout_cuts_a_stuck_sink_and_reports_it() -> None:
    sink = RecordingSink(fail_times=-1)
    w = SinkWorker(sink, settings(batch_events=10, retry_max_elapsed_s=60))
    w.start()
    for i in range(25):
        w.put(ev(i))
    t0 = time.monotonic()
    assert not w.drain(0.5)
    assert time.monotonic() - t0 < 3.0
    assert w.stats.dropped["shutdown_timeout"] == 25 and w.stats.written == 0


def test_stop_blocking_releases_a_put_on_a_full_stuck_queue() -> None:
    sink = RecordingSink(fail_times=-1)
    w = SinkWorker(sink, settings(queue_events=3, batch_events=3, retry_max_elapsed_s=60))
    w.start()
    for i in range(6):  # 3 in the failing batch, 3 fill the queue
        w.put(ev(i))
    released = threading.Event()
    t = threading.Thread(target=lambda: (w.put(ev(6)), released.set()))
    t.start()
    assert not released.wait(0.5)
    w.stop_blocking(time.monotonic() + 0.2)
    assert released.wait(3.0)
    t.join()
    assert w.stats.dropped["shutdown_timeout"] == 1
    assert not w.drain(0.3)
    assert w.stats.queued == 6 and w.stats.dropped["shutdown_timeout"] == 7


def test_reopen_runs_on_the_worker_thread_between_batches() -> None:
    sink = RecordingSink()
    w = SinkWorker(sink, settings())
    w.start()
    w.put(ev(0))
    w.request_reopen()
    deadline = time.monotonic() + 3
    while not sink.reopens and time.monotonic() < deadline:
        time.sleep(0.01)
    w.put(ev(1))
    assert w.drain(3.0)
    assert sink.reopens == ["sink-memory"]
    assert sink.numbers() == [0, 1]


def test_an_event_that_cannot_be_encoded_is_counted_not_fatal() -> None:
    sink = RecordingSink(bad=3)
    w = SinkWorker(sink, settings())
    for i in range(6):
        w.put(ev(i))
    w.start()
    assert w.drain(3.0)
    assert sink.numbers() == [0, 1, 2, 4, 5]
    assert w.stats.dropped == {"encode_error": 1}
    assert w.stats.failed is None


def test_idle_flush_when_the_sink_asks_for_it() -> None:
    sink = RecordingSink(idle_flush_s=0.1)
    w = SinkWorker(sink, settings())
    w.start()
    w.put(ev(0))
    time.sleep(0.6)
    assert sink.flushes == 1  # once after the batch, not again while nothing new came
    w.put(ev(1))
    time.sleep(0.4)
    assert sink.flushes == 2
    assert w.drain(3.0)
    assert sink.flushes == 3  # and the final flush at drain


def test_no_idle_flush_unless_asked() -> None:
    sink = RecordingSink()
    w = SinkWorker(sink, settings())
    w.start()
    w.put(ev(0))
    time.sleep(0.7)
    assert sink.flushes == 0
    assert w.drain(3.0)
    assert sink.flushes == 1


def test_stats_line_shows_every_counter_and_the_sinks_own() -> None:
    sink = RecordingSink("file", fail_times=1)
    sink.health = lambda: {"rotations": 3, "gzip_failed": 0, "path": "/x"}  # type: ignore[method-assign]
    w = SinkWorker(sink, settings(when_full="drop-newest", queue_events=2))
    for i in range(3):
        w.put(ev(i))
    w.start()
    assert w.drain(3.0)
    line = summary_line(ReaderStats(records=5), [w.stats])
    assert line.endswith("| file queued=2 written=2 batches=1 retries=1 dropped=queue_full:1 "
                         "depth=0 rotations=3")


def _take_in_thread(q: SinkQueue, most: int, wake_at: int) -> tuple[threading.Thread, list]:
    got: list = []
    t = threading.Thread(target=lambda: got.append(q.take(most, 5.0, wake_at)))
    t.start()
    return t, got


def test_a_batch_being_gathered_is_woken_when_it_can_fill_not_by_every_poll() -> None:
    q = SinkQueue(10000, "block", SinkStats("s"))
    t, got = _take_in_thread(q, 10, 10)
    q.put_many([ev(i) for i in range(3)])  # a poll that does not fill the batch
    q.put(ev(3))
    t.join(0.3)
    assert t.is_alive() and not got
    q.put_many([ev(i) for i in range(4, 12)])  # the batch can fill now
    t.join(1.0)
    assert not t.is_alive()
    assert [e["n"] for e in got[0]] == list(range(10))


def test_a_gathering_wait_is_capped_at_half_the_queue() -> None:
    # a drop policy must not drop while the worker waits for more than fits
    q = SinkQueue(8, "drop-newest", SinkStats("s"))
    t, got = _take_in_thread(q, 100, 100)
    q.put_many([ev(i) for i in range(3)])
    t.join(0.3)
    assert t.is_alive()
    q.put(ev(3))
    t.join(1.0)
    assert not t.is_alive() and len(got[0]) == 4
    assert q.stats.dropped_total == 0


@pytest.mark.parametrize("encode_bytes, batch_bytes, first, rest", [
    (0, 1 << 20, 3, 7),  # filled by count: 10 events
    (100, 350, 1, 3),    # filled by bytes: 4 x 100 reach 350
])
def test_a_batch_that_fills_is_written_before_its_timeout(
        encode_bytes: int, batch_bytes: int, first: int, rest: int) -> None:
    sink = RecordingSink(encode_bytes=encode_bytes)
    w = SinkWorker(sink, settings(batch_events=10, batch_bytes=batch_bytes,
                                  batch_timeout_ms=5000))
    w.start()
    t0 = time.monotonic()
    w.put_many([ev(i) for i in range(first)])
    time.sleep(0.1)
    w.put_many([ev(i) for i in range(first, first + rest)])
    deadline = time.monotonic() + 3
    while not sink.times and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.sizes == [first + rest]
    assert sink.times[0] - t0 < 1.5  # not the 5 s timeout
    assert w.drain(5.0)
