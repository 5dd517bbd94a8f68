"""The core's per-sink policy: queue, batching, backpressure, and the ONE
retry policy.

Which setting governs what (the README repeats it):
- `<sink>.retry_initial_ms`, `retry_max_ms`, `retry_max_elapsed_s`: the
  core's retry of a batch that raised TransientSinkError (exponential
  backoff from retry_initial, doubling up to retry_max, plus up to
  retry_initial of jitter; after retry_max_elapsed the `when_full` policy
  decides: block keeps retrying, a drop policy drops the batch, counted).
  A sink that retries on its own thread (the Kafka disk-buffer sender)
  uses the same RetryPolicy object, with no elapsed limit: its rows stay
  in the buffer until delivered.
- A library's own retries happen below that (librdkafka re-sends for up
  to `message.timeout.ms` before it reports a failure); the core retries
  only what the sink reports as not written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_any,
    stop_never,
    stop_when_event_set,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from collector.export.contract import TransientSinkError


def _sleeper(stop: threading.Event) -> Callable[[float], None]:
    """A back-off sleep that `stop` cuts short."""

    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    return sleep


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter for transient sink errors."""

    initial_s: float = 0.1
    max_s: float = 10.0
    max_elapsed_s: float = 300.0  # then when_full decides

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RetryPolicy:
        return cls(settings["retry_initial_ms"] / 1000.0, settings["retry_max_ms"] / 1000.0,
                   float(settings["retry_max_elapsed_s"]))

    def wait(self) -> wait_base:
        """Doubling from initial up to max, plus up to initial of jitter."""
        return wait_exponential(multiplier=self.initial_s, max=self.max_s) + \
            wait_random(0, self.initial_s)

    def retrying(self, stop: threading.Event, *,
                 before_sleep: Callable[[RetryCallState], None] | None = None,
                 elapsed_limit: bool = True) -> Retrying:
        """A tenacity loop over TransientSinkError that `stop` cuts short (its
        back-off sleeps included); without elapsed_limit it retries until stopped."""
        limit = stop_after_delay(self.max_elapsed_s) if elapsed_limit else stop_never
        return Retrying(
            retry=retry_if_exception_type(TransientSinkError),
            wait=self.wait(),
            stop=stop_any(limit, stop_when_event_set(stop)),
            sleep=_sleeper(stop),
            before_sleep=before_sleep,
            reraise=True,
        )


@dataclass(frozen=True)
class PipelineSettings:
    """What the core does for one sink: its queue, batch limits, backpressure
    policy and retry policy (from the sink's section: collector.export.options
    .pipeline_options)."""

    queue_events: int = 10000
    batch_events: int = 1000
    batch_bytes: int = 1 << 20
    batch_timeout_s: float = 0.0
    when_full: str = "block"
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> PipelineSettings:
        return cls(
            queue_events=settings["queue_events"],
            batch_events=settings["batch_events"],
            batch_bytes=settings["batch_bytes"],
            batch_timeout_s=settings["batch_timeout_ms"] / 1000.0,
            when_full=settings["when_full"],
            retry=RetryPolicy.from_settings(settings),
        )
