"""Unsynced appends (collector.pipeline.inline, Sink.appends_without_waiting): a
sink whose write waits only to make the events durable is appended to on the
reader's thread, and its worker makes the appends durable within
batch_timeout; they count as written only then, a failed sync writes them
again (once each, in order), and nothing queued after them overtakes them.
Real worker threads, real clocks; the sink keeps appended and durable events
apart, as a file's page cache and its device do."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from collector.errors import SinkError
from collector.export import TransientSinkError
from collector.pipeline.worker import SinkWorker
from tests.unit.test_pipeline_inline import READER, wait_until
from tests.unit.test_pipeline_worker import RecordingSink, ev, settings

WORKER = "sink-memory"


class DeferringSink(RecordingSink):
    """write_batch writes durably (the worker's); append_unsynced only appends, and
    sync() moves what was appended to `events` (durable), or, told to fail, drops
    it (the undo) and raises."""

    def __init__(self, *args: Any, sync_fail_times: int = 0,
                 sync_error: Exception | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.defer = True  # what appends_without_waiting answers
        self.appended: list[Any] = []  # not durable yet
        self.appenders: list[str] = []
        self.syncs: list[tuple[str, float]] = []  # (thread, time) of every sync()
        self.sync_fail_times = sync_fail_times
        self.sync_error = sync_error or TransientSinkError("injected fsync failure")

    def appends_without_waiting(self, nbytes: int) -> bool:
        return self.defer

    def append_unsynced(self, batch: Sequence[Any]) -> None:
        self.appenders.append(threading.current_thread().name)
        self.appended.extend(batch)

    def sync(self) -> None:
        self.syncs.append((threading.current_thread().name, time.monotonic()))
        if self.sync_fail_times:
            self.sync_fail_times -= 1
            self.appended.clear()  # undone, as the file sink cuts its file back
            raise self.sync_error
        self.events.extend(self.appended)
        self.appended.clear()


def numbers(items: list[Any]) -> list[int]:
    return [e["n"] for e in items]


def test_appended_by_the_reader_and_counted_written_once_the_worker_synced() -> None:
    sink = DeferringSink()
    w = SinkWorker(sink, settings(batch_events=100, batch_timeout_ms=300))
    w.start()
    put_at = time.monotonic()
    w.put_many([ev(i) for i in range(250)])
    # appended before put_many returned, by the caller, in batches; not durable yet
    assert numbers(sink.appended) == list(range(250))
    assert sink.appenders == [READER] * 3 and sink.calls == 0
    assert (w.stats.queued, w.stats.written, w.stats.batches) == (250, 0, 3)
    wait_until(lambda: w.stats.written == 250)
    assert numbers(sink.events) == list(range(250))
    (thread, synced_at), = sink.syncs
    assert thread == WORKER
    # made durable a batch_timeout after the append, as a batch the worker gathered
    assert 0.25 <= synced_at - put_at < 1.5
    assert w.drain(3.0)
    assert w.stats.undelivered == 0 and w.stats.dropped_total == 0


def test_polls_within_one_batch_timeout_share_one_sync() -> None:
    sink = DeferringSink()
    w = SinkWorker(sink, settings(batch_timeout_ms=400))
    w.start()
    for poll in range(5):
        w.put_many([ev(poll * 10 + i) for i in range(10)])
        time.sleep(0.02)
    wait_until(lambda: w.stats.written == 50)
    assert len(sink.syncs) == 1
    assert sink.appenders == [READER] * 5
    assert numbers(sink.events) == list(range(50))
    assert w.drain(3.0)


def test_a_failed_sync_writes_the_events_again_once_each_in_order() -> None:
    sink = DeferringSink(sync_fail_times=1)
    w = SinkWorker(sink, settings(batch_timeout_ms=50))
    w.start()
    w.put_many([ev(i) for i in range(10)])
    wait_until(lambda: w.stats.written == 10)
    # undone by the failed sync, then written durably by the worker's write_batch
    assert numbers(sink.events) == list(range(10))
    assert sink.writers == [WORKER] and len(sink.syncs) == 1
    assert (w.stats.queued, w.stats.written, w.stats.retries) == (10, 10, 1)
    w.put_many([ev(10)])  # the next poll is appended by the reader again
    assert sink.appenders == [READER, READER]
    assert w.drain(3.0)
    assert numbers(sink.events) == list(range(11))
    assert w.stats.dropped_total == 0


def test_events_queued_behind_unsynced_ones_never_overtake_them() -> None:
    for fail in (0, 1):
        sink = DeferringSink(sync_fail_times=fail)
        w = SinkWorker(sink, settings(batch_timeout_ms=5000))
        w.start()
        w.put_many([ev(i) for i in range(10)])  # appended, sync due in 5 s
        sink.defer = False  # the reader now queues: the worker must sync first
        w.put_many([ev(i) for i in range(10, 20)])
        # synced at once, not 5 s later (the queued ones then gather for their batch)
        wait_until(lambda: len(sink.syncs) == 1)  # noqa: B023 - used at once
        assert w.drain(3.0)
        assert numbers(sink.events) == list(range(20)), fail
        assert (w.stats.written, w.stats.retries) == (20, fail)


def test_drain_makes_the_readers_appends_durable_before_it_returns() -> None:
    sink = DeferringSink()
    w = SinkWorker(sink, settings(batch_timeout_ms=10_000))
    w.start()
    w.put_many([ev(i) for i in range(30)])
    started = time.monotonic()
    assert w.drain(3.0)
    assert time.monotonic() - started < 2.0  # not the 10 s batch_timeout
    assert numbers(sink.events) == list(range(30))
    assert (w.stats.written, w.stats.undelivered) == (30, 0)
    assert [t for t, _ in sink.syncs] == [WORKER]


def test_a_fatal_sync_error_fails_the_sink_with_its_events_counted() -> None:
    failed: list[str] = []
    sink = DeferringSink(sync_fail_times=1, sync_error=SinkError("the disk is gone"))
    w = SinkWorker(sink, settings(batch_timeout_ms=20),
                   on_fatal=lambda _w, why: failed.append(why))
    w.start()
    w.put_many([ev(i) for i in range(5)])
    wait_until(lambda: bool(failed))
    assert failed == ["the disk is gone"]
    assert w.stats.written == 0
    assert w.stats.dropped == {"sink_failed": 5}
    assert not w.drain(3.0)


def test_a_drop_policy_never_appends_on_the_readers_thread() -> None:
    sink = DeferringSink()
    w = SinkWorker(sink, settings(when_full="drop-newest"))
    w.start()
    w.put_many([ev(i) for i in range(10)])
    wait_until(lambda: w.stats.written == 10)
    assert sink.appenders == [] and sink.writers == [WORKER]
    assert w.drain(3.0)
