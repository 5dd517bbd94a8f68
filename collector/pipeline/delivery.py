"""Write one batch with the sink's RetryPolicy, and decide what a batch that
still fails becomes.

- TransientSinkError: retried with backoff; PartialWriteError narrows the
  retry to the items still to be written (those written count at once);
- after retry_max_elapsed the backpressure policy decides: block keeps
  retrying (the queue fills, the reader waits), a drop policy drops the
  batch (counted as retries_exhausted);
- the shutdown deadline cuts retries short (counted as shutdown_timeout);
- any other SinkError is fatal for the sink: its batch is counted as
  sink_failed and the error goes up to the worker, as the exception it is.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tenacity import RetryCallState

from collector.errors import SinkError
from collector.export.contract import PartialWriteError, Sink, TransientSinkError
from collector.export.policy import PipelineSettings
from collector.pipeline.stats import SinkStats

log = logging.getLogger("collector.pipeline")


class Delivery:
    """Delivers batches to one sink; see the module docstring."""

    def __init__(self, sink: Sink, settings: PipelineSettings, stats: SinkStats,
                 abandon: threading.Event) -> None:
        self.sink = sink
        self.settings = settings
        self.stats = stats
        self.abandon = abandon  # the shutdown deadline passed: stop retrying

    def deliver(self, batch: list[Any]) -> None:
        # The first attempt outside tenacity: building its loop costs more than a
        # whole batch of stdout lines, and almost every batch goes through at once.
        # A failure of it enters the loop as that loop's first failed attempt, so
        # the back-off, the retry count and the elapsed limit are as before.
        stats = self.stats
        try:
            self.sink.write_batch(batch)
        except PartialWriteError as exc:
            stats.written += len(batch) - len(exc.remaining)
            self._retry(exc.remaining, exc)
            return
        except TransientSinkError as exc:
            self._retry(batch, exc)
            return
        except SinkError:
            stats.dropped["sink_failed"] += len(batch)
            stats.take_give_ups(self.sink)
            raise
        except BaseException:
            stats.take_give_ups(self.sink)
            raise
        self._delivered(len(batch))
        stats.take_give_ups(self.sink)

    def _delivered(self, count: int) -> None:
        """A batch (or what was left of it) went through: counted, and no retry is pending."""
        self.stats.written += count
        self.stats.batches += 1
        self.stats.retrying = None

    def _retry(self, batch: list[Any], first: TransientSinkError) -> None:
        """The RetryPolicy's loop for a batch whose first write failed with `first`."""
        pending = batch
        stats = self.stats
        failed: TransientSinkError | None = first
        while True:
            try:
                for attempt in self.settings.retry.retrying(self.abandon,
                                                            before_sleep=self._before_sleep):
                    with attempt:
                        if failed is not None:  # the attempt deliver() made
                            exc, failed = failed, None
                            raise exc
                        try:
                            self.sink.write_batch(pending)
                        except PartialWriteError as exc:
                            stats.written += len(pending) - len(exc.remaining)
                            pending = exc.remaining
                            raise
                self._delivered(len(pending))
                return
            except TransientSinkError as exc:
                if not self._keep_trying(pending, exc):
                    return
            except SinkError:
                stats.dropped["sink_failed"] += len(pending)
                raise
            finally:
                stats.take_give_ups(self.sink)

    def open(self) -> None:
        """Open the sink with retries (it could not be opened at start)."""
        while True:
            try:
                for attempt in self.settings.retry.retrying(self.abandon,
                                                            before_sleep=self._before_sleep):
                    with attempt:
                        self.sink.open()
                self.stats.retrying = None
                return
            except TransientSinkError as exc:
                if self.abandon.is_set() or self.settings.when_full != "block":
                    raise SinkError(f"could not open: {exc}") from exc
                log.warning("sink %s: still cannot open (%s); policy block: retrying",
                            self.sink.name, exc)

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        self.stats.retrying = str(exc)  # until a batch goes through: /healthz reports it
        log.warning("sink %s: retrying in %.2fs after: %s", self.sink.name,
                    state.next_action.sleep if state.next_action else 0.0, exc)

    def _keep_trying(self, pending: list[Any], exc: TransientSinkError) -> bool:
        """The retry limit is reached: the policy decides (counted, logged)."""
        name = self.sink.name
        elapsed = self.settings.retry.max_elapsed_s
        if self.abandon.is_set():
            self.stats.dropped["shutdown_timeout"] += len(pending)
            log.error("sink %s: %d events not delivered at shutdown: %s", name, len(pending), exc)
            return False
        if self.settings.when_full == "block":
            log.warning("sink %s: still failing after %.0fs (%s); policy block: retrying",
                        name, elapsed, exc)
            return True
        self.stats.dropped["retries_exhausted"] += len(pending)
        log.error("sink %s: dropped a batch of %d events after %.0fs of retries (%s); "
                  "policy %s", name, len(pending), elapsed, exc, self.settings.when_full)
        return False
