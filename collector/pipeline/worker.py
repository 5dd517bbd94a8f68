"""One sink's worker thread: its lifecycle, over the pieces that do the work.

    SinkQueue  (queue.py)     bounded queue + backpressure policy (reader side)
    Batcher    (batcher.py)   take → encode → batch limits
    Delivery   (delivery.py)  write with the RetryPolicy; what a failing batch becomes
    InlineWriter (inline.py)  the reader writes a poll itself when that cannot wait
    SinkStats  (stats.py)     the counters, the sink's give-ups included

Each sink gets its own worker thread, so a slow or failing sink does not
stall the others, unless its policy is `block`: then put waits, the reader
slows down, and the kernel ring buffer absorbs the difference until it is
full (its drops are counted in the kernel).

A sink that fails for good keeps its exception (`error`): the runner
decides from its type (OutputClosed: a quiet stop; any other SinkError:
exit 4), never from its text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from collector.errors import SinkError
from collector.export.contract import Event, Sink, TransientSinkError
from collector.export.policy import PipelineSettings
from collector.pipeline.batcher import Batcher, Wake
from collector.pipeline.delivery import Delivery
from collector.pipeline.inline import InlineWriter
from collector.pipeline.queue import SinkQueue
from collector.pipeline.stats import SinkStats

log = logging.getLogger("collector.pipeline")

OnFatal = Callable[["SinkWorker", str], None]


class SinkWorker:
    """Drives one Sink; see the module docstring."""

    def __init__(self, sink: Sink, settings: PipelineSettings | Mapping[str, Any],
                 on_fatal: OnFatal | None = None) -> None:
        if not isinstance(settings, PipelineSettings):
            settings = PipelineSettings.from_settings(settings)
        self.sink = sink
        self.settings = settings
        self.stats = SinkStats(sink.name)
        #: the exception that stopped the sink for good, if one did
        self.error: SinkError | None = None
        self._on_fatal = on_fatal
        self._abandon = threading.Event()  # shutdown deadline passed: stop retrying
        self._reopen = threading.Event()
        self._opened = False
        self.queue = SinkQueue(settings.queue_events, settings.when_full, self.stats)
        self.batcher = Batcher(self.queue, settings, sink.encode, sink.name, self._reopen,
                               sink.idle_flush_s)
        self.delivery = Delivery(sink, settings, self.stats, self._abandon)
        # every call into the sink holds it: the worker's, and the reader's inline writes
        self._sink_lock = threading.Lock()
        self.inline = InlineWriter(sink, settings, self.queue, self.stats, self._sink_lock,
                                   self._fail, self._written_inline)
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        sink.bind(settings)

    # -- the reader's side (and the runner's) ----------------------------------------------

    def start(self) -> None:
        """Open the sink here, on the caller's thread, then start the worker.

        A fatal SinkError (bad path, permission denied) propagates, so the
        collector stops at start with one line, before probes attach. A
        transient one (broker or disk not ready yet) is logged and the worker
        keeps trying to open, with the retry policy, while events queue."""
        try:
            self.sink.open()
            self._opened = True
            self.inline.ready = True
        except TransientSinkError as exc:
            log.warning("sink %s: cannot open yet (%s); retrying", self.sink.name, exc)
            self.stats.retrying = f"cannot open: {exc}"
        self._thread.start()

    def put_many(self, events: list[Event]) -> None:
        if self.inline.enabled and self.inline.write(events):
            return
        self.queue.put_many(events)

    def _written_inline(self) -> None:
        self.batcher.dirty = True  # the idle flush (e.g. fsync interval) covers it too

    def put(self, event: Event) -> None:
        self.queue.put(event)

    def stop_blocking(self, deadline: float) -> None:
        self.queue.stop_blocking(deadline)

    def request_reopen(self) -> None:
        self._reopen.set()
        self.queue.wake()

    def drain(self, timeout: float) -> bool:
        """Stop taking events, deliver what is queued within timeout, flush and
        close the sink. True when every event queued was delivered or dropped
        by the sink's policy while running (counted, on the stats line);
        False when the sink failed or events were cut off by the timeout."""
        self.queue.close_for_puts()
        if self._thread.ident is None:  # never started (another sink failed to open)
            if self._opened:
                self.sink.close()
            return self.stats.queued == 0
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()  # cut retries short; the thread counts what is left
            self.queue.wake()
            try:
                self.sink.cancel()  # and a write waiting on its target
            except Exception as exc:
                log.error("sink %s: cancel failed: %s", self.sink.name, exc)
            self._thread.join(5.0)
        st = self.stats
        return st.undelivered <= 0 and self.error is None and not st.dropped["shutdown_timeout"]

    # -- the worker thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if not self._opened:
                with self._sink_lock:
                    self.delivery.open()
                self._opened = True
                self.inline.ready = True
            self._loop()
            with self._sink_lock:
                self.sink.flush()
        except SinkError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug in a sink must not kill the collector silently
            log.exception("sink %s crashed", self.sink.name)
            self._fail(SinkError(f"{type(exc).__name__}: {exc}"))
        finally:
            self._finish()

    def _loop(self) -> None:
        batcher = self.batcher
        while not self._abandon.is_set():
            got = batcher.next()
            if got is Wake.DONE:
                return
            if got is Wake.REOPEN:
                self._reopen.clear()
                try:
                    with self._sink_lock:
                        self.sink.reopen()
                except TransientSinkError as exc:  # the sink keeps its old target
                    log.warning("sink %s: reopen failed: %s", self.sink.name, exc)
            elif got is Wake.IDLE_FLUSH:
                self._idle_flush()
            elif isinstance(got, list):
                try:
                    with self._sink_lock:
                        self.delivery.deliver(got)
                finally:
                    self.queue.settle()
                batcher.dirty = True
                self.stats.refresh_extra(self.sink)

    def _idle_flush(self) -> None:
        """Idle: let the sink make what it wrote durable (e.g. fsync interval)."""
        self.batcher.dirty = False
        try:
            with self._sink_lock:
                self.sink.flush()
        except TransientSinkError as exc:
            log.error("sink %s: flush failed: %s", self.sink.name, exc)
        self.stats.take_give_ups(self.sink)

    def _finish(self) -> None:
        """Whatever is still queued is counted; the sink is closed."""
        self.inline.ready = False
        left = self.queue.clear()
        if left:
            reason = "shutdown_timeout" if self.error is None else "sink_failed"
            self.stats.dropped[reason] += left
        try:
            with self._sink_lock:
                self.sink.close()
        except Exception as exc:
            log.error("closing sink %s failed: %s", self.sink.name, exc)
        self.stats.take_give_ups(self.sink)
        self.stats.refresh_extra(self.sink)

    def _fail(self, exc: SinkError) -> None:
        why = str(exc)
        with self.queue.cond:
            self.error = exc
            self.stats.failed = why
        left = self.queue.clear()
        if left:
            self.stats.dropped["sink_failed"] += left
        if self._on_fatal is not None:
            self._on_fatal(self, why)
