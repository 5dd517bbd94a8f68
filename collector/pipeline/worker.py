"""One sink's worker: bounded queue → batch → write with retries → count.

Each sink gets its own worker thread, so a slow or failing sink does not
stall the others, unless its policy is `block`: then `put` waits, the
reader slows down, and the kernel ring buffer absorbs the difference until
it is full (its drops are counted in the kernel).

Policies when the queue is full, or when a batch still fails after the
retry limit: block (wait / keep retrying), drop-newest (refuse the new
event), drop-oldest (evict the oldest queued event). Every dropped event is
counted with its reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_any,
    stop_when_event_set,
    wait_exponential,
    wait_random,
)

from collector.errors import SinkError
from collector.pipeline.stats import SinkStats
from sinks.base import Event, PartialWriteError, Sink, TransientSinkError

log = logging.getLogger("collector.pipeline")


class SinkWorker:
    """Drives one Sink; see the module docstring."""

    def __init__(self, sink: Sink, settings: dict[str, Any], on_fatal: Any = None) -> None:
        self.sink = sink
        self.stats = SinkStats(sink.name)
        sink.count_dropped = self._count_dropped  # type: ignore[attr-defined]
        self.queue_events: int = settings["queue_events"]
        self.batch_events: int = settings["batch_events"]
        self.batch_bytes: int = settings["batch_bytes"]
        self.batch_timeout = settings["batch_timeout_ms"] / 1000.0
        self.policy: str = settings["when_full"]
        self.retry_initial = settings["retry_initial_ms"] / 1000.0
        self.retry_max = settings["retry_max_ms"] / 1000.0
        self.retry_max_elapsed: float = settings["retry_max_elapsed_s"]
        self._on_fatal = on_fatal
        self._queue: deque[Event] = deque()
        self._cond = threading.Condition()
        self._draining = False  # no more puts; finish the queue
        self._abandon = threading.Event()  # shutdown deadline passed: stop retrying
        self._reopen = threading.Event()
        self._opened = False
        self._put_deadline = float("inf")
        self._dirty = False  # written since the last flush
        # A sink that wants flush() when idle (e.g. the file sink's fsync interval) says after how long.
        self._idle_flush_s: float | None = getattr(sink, "idle_flush_s", None)
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)

    # -- reader side ----------------------------------------------------------

    def start(self) -> None:
        """Open the sink here, on the caller's thread, then start the worker.

        A fatal SinkError (bad path, permission denied) propagates, so the
        collector stops at start with one line, before probes attach. A
        transient one (broker or disk not ready yet) is logged and the worker
        keeps trying to open, with the retry policy, while events queue."""
        try:
            self.sink.open()
            self._opened = True
        except TransientSinkError as exc:
            log.warning("sink %s: cannot open yet (%s); retrying", self.sink.name, exc)
            self.stats.retrying = f"cannot open: {exc}"
        self._thread.start()

    def put_many(self, events: list[Event]) -> None:
        """Queue the events of one poll under one lock, as many as there is room for;
        the rest one by one, so the backpressure policy applies to each of them
        exactly as put() does."""
        st = self.stats
        rest = events
        with self._cond:
            queue = self._queue
            room = self.queue_events - len(queue)
            if st.failed is None and room > 0:
                fits = events if len(events) <= room else events[:room]
                rest = events[len(fits):]
                was_empty = not queue
                queue.extend(fits)
                st.queued += len(fits)
                st.queue_depth = len(queue)
                if was_empty:  # only the worker waits for events, on an empty queue
                    self._cond.notify_all()
        for event in rest:
            self.put(event)

    def put(self, event: Event) -> None:
        """Queue one event, applying the backpressure policy when full."""
        st = self.stats
        with self._cond:
            if st.failed is not None:
                st.dropped["sink_failed"] += 1
                return
            if len(self._queue) >= self.queue_events:
                if self.policy == "drop-newest":
                    st.dropped["queue_full"] += 1
                    return
                if self.policy == "drop-oldest":
                    self._queue.popleft()
                    st.dropped["queue_full"] += 1
                else:
                    while len(self._queue) >= self.queue_events and st.failed is None:
                        if time.monotonic() >= self._put_deadline:
                            st.dropped["shutdown_timeout"] += 1  # stopping: wait no longer
                            return
                        self._cond.wait(0.1)
                    if st.failed is not None:
                        st.dropped["sink_failed"] += 1
                        return
            queue = self._queue
            queue.append(event)
            st.queued += 1
            st.queue_depth = depth = len(queue)
            if depth == 1:
                # only the worker waits for events, and only on an empty queue
                # (a put() waiting for room is woken by the worker's take):
                # notify_all is a Python-level call, skip it when nobody waits
                self._cond.notify_all()

    def stop_blocking(self, deadline: float) -> None:
        """Stopping: a put() blocked on a full queue (policy block) waits until
        `deadline` (time.monotonic()) at most, then drops, counted as
        shutdown_timeout. Without it a stuck sink would hang the reader's last
        drain of the ring buffer, and so the stop, for ever."""
        with self._cond:
            self._put_deadline = deadline
            self._cond.notify_all()

    def request_reopen(self) -> None:
        self._reopen.set()
        with self._cond:
            self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Stop taking events, deliver what is queued within timeout, flush and
        close the sink. True when every event queued was delivered or dropped
        by the sink's policy while running (counted, on the stats line);
        False when the sink failed or events were cut off by the timeout."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()
        if self._thread.ident is None:  # never started (another sink failed to open)
            if self._opened:
                self.sink.close()
            return self.stats.queued == 0
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()  # cut retries short; the thread counts what is left
            with self._cond:
                self._cond.notify_all()
            try:
                self.sink.cancel()  # and a write waiting on its target
            except Exception as exc:
                log.error("sink %s: cancel failed: %s", self.sink.name, exc)
            self._thread.join(5.0)
        st = self.stats
        undelivered = st.queued - st.written - st.dropped_total
        return undelivered <= 0 and st.failed is None and not st.dropped["shutdown_timeout"]

    # -- worker side ------------------------------------------------------------

    def _take_batch(self) -> list[Any] | None:
        """Wait for events, then gather up to the batch limits.

        Events are taken from the queue a chunk at a time under the lock and
        encoded outside it, so the reader's put() never waits on encoding.
        Returns None when draining is done, [] when the loop should look at
        a reopen request or an idle flush."""
        items: list[Any] = []
        size = 0
        deadline = 0.0
        encode = self.sink.encode
        queue = self._queue
        st = self.stats
        while True:
            with self._cond:
                while not queue:
                    if self._reopen.is_set() and not items:
                        return []
                    if items and (self._draining or time.monotonic() >= deadline):
                        return items
                    if self._draining:
                        return None
                    if items:
                        wait = max(0.0, deadline - time.monotonic())
                    elif self._dirty and self._idle_flush_s is not None:
                        wait = self._idle_flush_s
                    else:
                        wait = 0.5
                    if not self._cond.wait(wait) and not items and not queue and self._dirty \
                            and self._idle_flush_s is not None:
                        return []
                take = min(len(queue), self.batch_events - len(items))
                events = [queue.popleft() for _ in range(take)]
                st.queue_depth = len(queue)
                self._cond.notify_all()  # room for a put() blocked on a full queue
            if not items:
                deadline = time.monotonic() + self.batch_timeout
            for i, event in enumerate(events):
                try:
                    item = encode(event)
                except Exception:  # one bad event must not stop the sink; count it
                    st.dropped["encode_error"] += 1
                    log.exception("sink %s: could not encode an event; dropped it", self.sink.name)
                    continue
                items.append(item)
                if isinstance(item, (bytes, bytearray)):
                    size += len(item)
                    if size >= self.batch_bytes:
                        rest = events[i + 1 :]
                        if rest:  # back to the head of the queue, in order
                            with self._cond:
                                queue.extendleft(reversed(rest))
                                st.queue_depth = len(queue)
                        return items
            if len(items) >= self.batch_events:
                return items

    def _run(self) -> None:
        try:
            if not self._opened and not self._open_with_retries():
                return
            while True:
                if self._reopen.is_set():
                    self._reopen.clear()
                    try:
                        self.sink.reopen()
                    except TransientSinkError as exc:  # the sink keeps its old target
                        log.warning("sink %s: reopen failed: %s", self.sink.name, exc)
                batch = self._take_batch()
                if batch is None:
                    break
                if batch:
                    self._deliver(batch)
                    self._dirty = True
                    self._refresh_extra()
                elif self._dirty and not self._reopen.is_set():
                    self._flush()
                if self._abandon.is_set():
                    break
            self.sink.flush()
        except SinkError as exc:
            self._fail(str(exc))
        except Exception as exc:  # a bug in a sink must not kill the collector silently
            log.exception("sink %s crashed", self.sink.name)
            self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            with self._cond:
                left = len(self._queue)
                self._queue.clear()
                self.stats.queue_depth = 0
            if left:
                self.stats.dropped["shutdown_timeout" if self.stats.failed is None else "sink_failed"] += left
            try:
                self.sink.close()
            except Exception as exc:
                log.error("closing sink %s failed: %s", self.sink.name, exc)
            self._refresh_extra()

    def _open_with_retries(self) -> bool:
        """Open a sink that could not be opened at start; False if it never will."""
        while True:
            try:
                for attempt in self._retrying():
                    with attempt:
                        self.sink.open()
                self._opened = True
                self.stats.retrying = None
                return True
            except TransientSinkError as exc:
                if self._abandon.is_set() or self.policy != "block":
                    self._fail(f"could not open: {exc}")
                    return False
                log.warning("sink %s: still cannot open (%s); policy block: retrying",
                            self.sink.name, exc)
            except SinkError as exc:
                self._fail(str(exc))
                return False

    def _flush(self) -> None:
        """Idle: let the sink make what it wrote durable (e.g. fsync interval)."""
        self._dirty = False
        try:
            self.sink.flush()
        except TransientSinkError as exc:
            log.error("sink %s: flush failed: %s", self.sink.name, exc)

    def _refresh_extra(self) -> None:
        """Copy the sink's own integer counters (rotations, acked, ...) for the stats
        line, after every batch: a stale copy would show Kafka's acked= behind written=."""
        try:
            health = self.sink.health()
        except Exception:
            return
        self.stats.extra = {k: v for k, v in health.items()
                            if isinstance(v, int) and not isinstance(v, bool)}

    def _count_dropped(self, count: int, reason: str) -> None:
        """Hook for sinks (set as sink.count_dropped): `count` items of a batch being
        written were given up (e.g. Kafka: over the broker's size limit), so they
        count as dropped for `reason`, not as written. Worker thread only."""
        self.stats.dropped[reason] += count
        self.stats.written -= count

    def _deliver(self, batch: list[Any]) -> None:
        pending = batch
        while True:
            try:
                for attempt in self._retrying():
                    with attempt:
                        try:
                            self.sink.write_batch(pending)
                        except PartialWriteError as exc:
                            self.stats.written += len(pending) - len(exc.remaining)
                            pending = exc.remaining
                            raise
                self.stats.written += len(pending)
                self.stats.batches += 1
                self.stats.retrying = None
                return
            except TransientSinkError as exc:
                if not self._keep_trying(pending, exc):
                    return
            except SinkError:
                self.stats.dropped["sink_failed"] += len(pending)
                raise

    def _keep_trying(self, pending: list[Any], exc: TransientSinkError) -> bool:
        """The retry limit is reached: the policy decides (counted, logged)."""
        if self._abandon.is_set():
            self.stats.dropped["shutdown_timeout"] += len(pending)
            log.error("sink %s: %d events not delivered at shutdown: %s",
                      self.sink.name, len(pending), exc)
            return False
        if self.policy == "block":
            log.warning("sink %s: still failing after %.0fs (%s); policy block: retrying",
                        self.sink.name, self.retry_max_elapsed, exc)
            return True
        self.stats.dropped["retries_exhausted"] += len(pending)
        log.error("sink %s: dropped a batch of %d events after %.0fs of retries (%s); "
                  "policy %s", self.sink.name, len(pending), self.retry_max_elapsed, exc,
                  self.policy)
        return False

    def _retrying(self) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            self.stats.retrying = str(exc)  # until a batch goes through (health: /healthz)
            log.warning("sink %s: retrying in %.2fs after: %s", self.sink.name,
                        state.next_action.sleep if state.next_action else 0.0, exc)

        return Retrying(
            retry=retry_if_exception_type(TransientSinkError),
            # doubling from retry_initial up to retry_max, plus up to retry_initial of jitter
            wait=wait_exponential(multiplier=self.retry_initial, max=self.retry_max)
            + wait_random(0, self.retry_initial),
            stop=stop_any(stop_after_delay(self.retry_max_elapsed),
                          stop_when_event_set(self._abandon)),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def _sleep(self, seconds: float) -> None:
        """Back-off sleep that a shutdown deadline cuts short."""
        self._abandon.wait(seconds)

    def _fail(self, why: str) -> None:
        with self._cond:
            self.stats.failed = why
            left = len(self._queue)
            self._queue.clear()
            self.stats.queue_depth = 0
            self._cond.notify_all()
        if left:
            self.stats.dropped["sink_failed"] += left
        if self._on_fatal is not None:
            self._on_fatal(self, why)
