"""Write a poll's events from the reader thread, when that cannot wait.

Handing every poll to the sink's worker costs a wake-up of that thread and
turns of the GIL between the two, per poll; for a sink whose write returns at
once (a regular file, a pipe with room) that hand-off is most of the cost of
writing (bench/results/storm_profile.md). So the reader writes the events
itself, when all of these hold:
- the sink says a write of that many bytes would not wait
  (Sink.writes_without_waiting: never for Kafka, or a pipe without room);
- the policy is `block` (a drop policy promises the reader never waits, and
  only the worker's queue can keep that promise);
- the worker holds nothing: its queue is empty and no batch of it is on the
  way (SinkQueue.held), so no event can overtake an earlier one;
- nobody else is inside the sink (the sink lock: the worker takes it for every
  call into the sink: write, flush, reopen, close).
Otherwise the events go to the queue, exactly as before.

Counting is the worker's: the events count as queued, then as written (or
dropped for encode_error). The first write only is made here; a
TransientSinkError gives the unwritten events to the queue, where the worker
retries them with the RetryPolicy (counted as a retry, as a failed first
attempt of the worker is); a fatal SinkError fails the sink as the worker
would.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from collector.errors import SinkError
from collector.export.contract import Event, PartialWriteError, Sink, TransientSinkError
from collector.export.policy import PipelineSettings
from collector.pipeline.encoding import encode_run
from collector.pipeline.queue import SinkQueue
from collector.pipeline.stats import SinkStats

log = logging.getLogger("collector.pipeline")


class InlineWriter:
    """See the module docstring. `fail` is the worker's: it stops the sink."""

    def __init__(self, sink: Sink, settings: PipelineSettings, queue: SinkQueue,
                 stats: SinkStats, sink_lock: threading.Lock,
                 fail: Callable[[SinkError], None], on_written: Callable[[], None]) -> None:
        self.sink = sink
        self.settings = settings
        self.queue = queue
        self.stats = stats
        self.sink_lock = sink_lock
        self.fail = fail
        self.on_written = on_written  # tells the worker something was written here
        # a sink that never says yes is never asked (and nothing is encoded for it here)
        overrides = type(sink).writes_without_waiting is not Sink.writes_without_waiting
        self.enabled = settings.when_full == "block" and overrides
        self._item_bytes = 1024  # the mean item size of the last poll written here
        self.ready = False  # set by the worker while the sink is open

    def write(self, events: list[Event]) -> bool:
        """True when the events were taken care of here (written, or given to the
        queue after a failed write); False: the caller queues them."""
        queue = self.queue
        if not queue.idle or not self.ready or self.stats.failed is not None:
            return False
        if not self.sink_lock.acquire(blocking=False):
            return False
        try:
            if not queue.idle:  # the worker took a batch meanwhile
                return False
            # asked before encoding (with the last poll's mean size), so a "no" costs
            # nothing, and again with the real size (a pipe that has room for less)
            can_write = self.sink.writes_without_waiting
            if not can_write(len(events) * self._item_bytes):
                return False
            run = encode_run(self.sink.encode, events)
            size = sum(run.sizes)
            if run.items:
                self._item_bytes = max(1, size // len(run.items))
            if not can_write(size):
                return False  # e.g. a full pipe: the worker waits for it, not the reader
            if run.bad:  # counted here only: had the worker taken them, it would count them
                self.stats.dropped["encode_error"] += run.bad
                log.error("sink %s: could not encode %d event(s); dropped them",
                          self.sink.name, run.bad)
            self.stats.queued += len(events)  # before any is written: as the queue counts
            left, fatal = self._write(run.items, run.events, run.sizes)
        finally:
            self.sink_lock.release()
        # outside the lock: the worker needs it to make room in a full queue
        if fatal is not None:
            self.fail(fatal)
        elif left:
            self.stats.queued -= len(left)  # put_many counts them again
            self.queue.put_many(left)
        return True

    def _batch_end(self, sizes: list[int], start: int) -> int:
        """Where the batch from start ends within the batch limits: items are taken
        while fewer than batch_events and fewer than batch_bytes so far (the
        batcher's rule). One comparison when the rest fits, as a poll mostly does."""
        most, limit = self.settings.batch_events, self.settings.batch_bytes
        n = len(sizes)
        if n - start <= most and sum(sizes[start : n - 1]) < limit:
            return n
        end, size = start, 0
        while end < n and end - start < most and size < limit:
            size += sizes[end]
            end += 1
        return end

    def _write(self, items: list[Any], events: list[Event],
               sizes: list[int]) -> tuple[list[Event], SinkError | None]:
        """Write the items in batches within the batch limits; (the events for the
        worker to retry, a fatal error)."""
        stats = self.stats
        start = 0
        left: list[Event] = []
        fatal: SinkError | None = None
        while start < len(items):
            end = self._batch_end(sizes, start)
            batch = items[start:end]
            try:
                self.sink.write_batch(batch)
            except PartialWriteError as exc:
                remaining = {id(item) for item in exc.remaining}
                left = [e for item, e in zip(batch, events[start:end], strict=True)
                        if id(item) in remaining]
                stats.written += len(batch) - len(left)
                left += events[end:]
                self._retried(exc)
                break
            except TransientSinkError as exc:
                left = events[start:]
                self._retried(exc)
                break
            except SinkError as exc:
                stats.dropped["sink_failed"] += len(items) - start
                fatal = exc
                break
            stats.written += len(batch)
            stats.batches += 1
            stats.retrying = None
            start = end
        self.on_written()
        stats.take_give_ups(self.sink)
        stats.refresh_extra(self.sink)
        return left, fatal

    def _retried(self, exc: TransientSinkError) -> None:
        """The first write failed: the worker retries (counted and logged as a retry)."""
        self.stats.retries += 1
        self.stats.retrying = str(exc)
        log.warning("sink %s: write failed (%s); retrying from the sink's worker",
                    self.sink.name, exc)

