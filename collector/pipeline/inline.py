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
            ready = self.sink.writes_without_waiting
            if not ready(len(events) * self._item_bytes):
                return False
            items, sources, size = self._encode(events)
            if items:
                self._item_bytes = max(1, size // len(items))
            if not ready(size):
                return False  # e.g. a full pipe: the worker waits for it, not the reader
            self.stats.queued += len(events)
            left, fatal = self._write(items, sources, events)
        finally:
            self.sink_lock.release()
        # outside the lock: the worker needs it to make room in a full queue
        if fatal is not None:
            self.fail(fatal)
        elif left:
            self.queue.put_many(left)
        return True

    def _encode(self, events: list[Event]) -> tuple[list[Any], list[int], int]:
        encode = self.sink.encode
        items: list[Any] = []
        sources: list[int] = []  # the index in events of each item
        size = 0
        for i, event in enumerate(events):
            try:
                item = encode(event)
            except Exception:  # counted as the batcher counts it (once queued)
                sources.append(-1 - i)
                continue
            items.append(item)
            sources.append(i)
            try:
                size += len(item)
            except TypeError:
                pass
        return items, sources, size

    def _write(self, items: list[Any], sources: list[int],
               events: list[Event]) -> tuple[list[Event], SinkError | None]:
        """Write the items in batches; (events for the worker to retry, a fatal error)."""
        stats = self.stats
        bad = [i for i in sources if i < 0]
        if bad:
            stats.dropped["encode_error"] += len(bad)
            log.error("sink %s: could not encode %d event(s); dropped them", self.sink.name,
                      len(bad))
            sources = [i for i in sources if i >= 0]
        most, limit = self.settings.batch_events, self.settings.batch_bytes
        start = 0
        left: list[Event] = []
        fatal: SinkError | None = None
        while start < len(items):
            end, size = start, 0
            while end < len(items) and end - start < most and size < limit:
                try:
                    size += len(items[end])
                except TypeError:
                    pass
                end += 1
            batch = items[start:end]
            try:
                self.sink.write_batch(batch)
            except PartialWriteError as exc:
                remaining = {id(item) for item in exc.remaining}
                unwritten = [sources[start + j] for j, item in enumerate(batch)
                             if id(item) in remaining]
                stats.written += len(batch) - len(unwritten)
                left = [events[i] for i in unwritten + sources[end:]]
                self._retried(exc, len(left))
                break
            except TransientSinkError as exc:
                left = [events[i] for i in sources[start:]]
                self._retried(exc, len(left))
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

    def _retried(self, exc: TransientSinkError, count: int) -> None:
        """The first write failed: the worker retries (counted and logged as a retry)."""
        stats = self.stats
        stats.retries += 1
        stats.retrying = str(exc)
        stats.queued -= count  # put_many counts them again
        log.warning("sink %s: write failed (%s); retrying from the sink's worker",
                    self.sink.name, exc)
