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
    wait_exponential_jitter,
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
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)

    # -- reader side ----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

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
                        self._cond.wait(0.1)
                    if st.failed is not None:
                        st.dropped["sink_failed"] += 1
                        return
            self._queue.append(event)
            st.queued += 1
            st.queue_depth = len(self._queue)
            self._cond.notify_all()

    def request_reopen(self) -> None:
        self._reopen.set()
        with self._cond:
            self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Stop taking events, deliver what is queued within timeout, flush and
        close the sink. True when everything queued was delivered."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()  # cut retries short; the thread counts what is left
            with self._cond:
                self._cond.notify_all()
            self._thread.join(5.0)
        undelivered = self.stats.queued - self.stats.written - self.stats.dropped_total
        return undelivered <= 0 and self.stats.failed is None

    # -- worker side ------------------------------------------------------------

    def _take_batch(self) -> list[Any] | None:
        """Wait for the first event, then gather up to the batch limits."""
        items: list[Any] = []
        size = 0
        deadline = None
        with self._cond:
            while True:
                if self._reopen.is_set() and not items:
                    return []
                if self._queue:
                    event = self._queue.popleft()
                    self.stats.queue_depth = len(self._queue)
                    self._cond.notify_all()
                    self._cond.release()
                    try:
                        item = self.sink.encode(event)
                    finally:
                        self._cond.acquire()
                    items.append(item)
                    size += len(item) if isinstance(item, (bytes, bytearray)) else 0
                    if len(items) >= self.batch_events or size >= self.batch_bytes:
                        return items
                    if deadline is None:
                        deadline = time.monotonic() + self.batch_timeout
                    continue
                if items and (self._draining or deadline is None or time.monotonic() >= deadline):
                    return items
                if self._draining and not items:
                    return None
                wait = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
                self._cond.wait(wait)

    def _run(self) -> None:
        try:
            self.sink.open()
        except SinkError as exc:
            self._fail(str(exc))
            return
        try:
            while True:
                if self._reopen.is_set():
                    self._reopen.clear()
                    self.sink.reopen()
                batch = self._take_batch()
                if batch is None:
                    break
                if batch:
                    self._deliver(batch)
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
            log.warning("sink %s: retrying in %.2fs after: %s", self.sink.name,
                        state.next_action.sleep if state.next_action else 0.0, exc)

        return Retrying(
            retry=retry_if_exception_type(TransientSinkError),
            wait=wait_exponential_jitter(initial=self.retry_initial, max=self.retry_max,
                                         jitter=self.retry_initial),
            stop=stop_any(stop_after_delay(self.retry_max_elapsed),
                          lambda _state: self._abandon.is_set()),
            sleep=self._abandon.wait,
            before_sleep=before_sleep,
            reraise=True,
        )

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
