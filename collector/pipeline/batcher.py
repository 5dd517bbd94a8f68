"""Gather one batch for a sink: take events from its queue, encode them,
stop at the batch limits.

`next()` answers one of three things, each its own type:
- a list of encoded items: write them;
- Wake.REOPEN: a SIGHUP reopen was requested (looked at between batches);
- Wake.IDLE_FLUSH: nothing came for the sink's idle_flush_s since its last
  write: flush (e.g. the file sink's fsync interval);
- Wake.DONE: draining, and the queue is empty.

A batch ends when it holds batch_events items, or batch_bytes (len() of the
encoded items), or batch_timeout after its first event, or when draining
finds the queue empty. Events are taken a chunk at a time under the queue's
lock and encoded outside it, so the reader's put() never waits on encoding;
an event that cannot be encoded is counted (encode_error) and skipped.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from collector.export.policy import PipelineSettings
from collector.pipeline.encoding import encode_all, sizes_of
from collector.pipeline.queue import SinkQueue

log = logging.getLogger("collector.pipeline")

IDLE_POLL_S = 0.5  # how often an idle worker looks at its flags anyway


class Wake(enum.Enum):
    DONE = "done"
    REOPEN = "reopen"
    IDLE_FLUSH = "idle_flush"


class Batcher:
    """Batches of encoded items from one sink's queue; see the module docstring."""

    def __init__(self, queue: SinkQueue, settings: PipelineSettings, encode: Callable[[Any], Any],
                 name: str, reopen: threading.Event, idle_flush_s: float | None) -> None:
        self.queue = queue
        self.settings = settings
        self.encode = encode
        self.name = name
        self.reopen = reopen
        self.idle_flush_s = idle_flush_s
        self.dirty = False  # written since the last flush (set by the worker)
        self._mean_size = 1024.0  # of the items encoded last: how many fit batch_bytes

    def next(self) -> list[Any] | Wake:
        first = self._first_events()
        if isinstance(first, Wake):
            return first
        deadline = time.monotonic() + self.settings.batch_timeout_s
        items: list[Any] = []
        events = first
        size = 0
        most = self.settings.batch_events
        queue = self.queue
        while True:
            size = self._encode_into(items, events, size)
            if size < 0 or len(items) >= most:
                return items
            need = most - len(items)
            # wake when the rest of the batch is queued (by count, or by bytes at the
            # mean size so far), not at every poll: a storm's batch is one wake
            fill = min(need, int((self.settings.batch_bytes - size) / self._mean_size) + 1)
            events = queue.take(need, max(0.0, deadline - time.monotonic()), fill)
            if not events and (queue.draining or time.monotonic() >= deadline):
                return items

    def _first_events(self) -> list[Any] | Wake:
        """Wait for the first events of a batch, or for a reason to do something else."""
        queue = self.queue
        idle_since = time.monotonic()
        while True:
            if self.reopen.is_set():
                return Wake.REOPEN
            want_flush = self.dirty and self.idle_flush_s is not None
            wait = self.idle_flush_s if want_flush and self.idle_flush_s is not None \
                else IDLE_POLL_S
            events = queue.take(self.settings.batch_events, wait)
            if events:
                return events
            if queue.draining and queue.empty:
                return Wake.DONE
            if want_flush and time.monotonic() - idle_since >= wait:
                return Wake.IDLE_FLUSH

    def _encode_into(self, items: list[Any], events: list[Any], size: int) -> int:
        """Encode events onto items; the new byte size, or -1 when batch_bytes
        was reached: the events after the one that reached it go back to the
        queue, uncounted. A slice at a time, of about as many events as the mean
        item size so far says still fit (all of them, mostly), so a batch that
        reaches its limit encodes few events it gives back (encoded again in the
        next batch)."""
        limit = self.settings.batch_bytes
        pos, count = 0, len(events)
        while pos < count:
            fit = int((limit - size) / self._mean_size) + 1
            chunk = events if pos == 0 and fit >= count else events[pos : pos + fit]
            fresh, bad = encode_all(self.encode, chunk)
            sizes = sizes_of(fresh)
            chunk_bytes = sum(sizes)
            if fresh:
                self._mean_size = max(1.0, chunk_bytes / len(fresh))
            if size + chunk_bytes < limit:
                self._count_bad(bad, len(chunk))
                items.extend(fresh)
                size += chunk_bytes
                pos += len(chunk)
                continue
            # the item that reaches the limit ends the batch; find its event's index
            keep, acc = len(sizes), size
            for i, item_size in enumerate(sizes):
                acc += item_size
                if acc >= limit:
                    keep = i + 1
                    break
            last = keep - 1  # its index in chunk: plus the failures before it
            for index, _ in bad:
                if index > last:
                    break
                last += 1
            self._count_bad(bad, last + 1)
            items.extend(fresh[:keep])
            self.queue.give_back(events[pos + last + 1:])
            return -1
        return size

    def _count_bad(self, bad: list[tuple[int, Exception]], before: int) -> None:
        """Count (and log) the events that could not be encoded, of those before `before`."""
        for index, exc in bad:
            if index >= before:
                break
            self.queue.stats.dropped["encode_error"] += 1
            log.error("sink %s: could not encode an event; dropped it", self.name,
                      exc_info=exc)
