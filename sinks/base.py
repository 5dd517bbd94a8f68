"""The one small interface every sink implements.

A sink is driven by its own worker thread (collector.pipeline.worker), which
owns the queue, batching, retries and backpressure. The sink itself only:
encodes an event, writes a batch, flushes, closes, and says how it is.

Errors decide what the worker does:
- TransientSinkError: retried with backoff (disk full, broker down, ...);
  PartialWriteError says which items are still to be written;
- SinkError (anything else): fatal for this sink; it is stopped with one
  clear line, the other sinks keep running.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from collector.errors import SinkError

Event = dict[str, Any]


class TransientSinkError(SinkError):
    """A failure that may go away: retry the batch."""


class PartialWriteError(TransientSinkError):
    """Some items of a batch were written; `remaining` are to be retried."""

    def __init__(self, message: str, remaining: Sequence[Any]) -> None:
        super().__init__(message)
        self.remaining = list(remaining)


class Sink(ABC):
    """Base class for sinks; see the module docstring for the contract."""

    #: name used in counters and messages ("stdout", "file", "kafka", ...)
    name: str = "sink"

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources; raise SinkError with the fix if impossible."""

    @abstractmethod
    def encode(self, event: Event) -> Any:
        """Turn one event into what write_batch takes (usually bytes).

        Runs on the sink's worker thread. len() of the result, when it has
        one, is what batch_bytes counts."""

    @abstractmethod
    def write_batch(self, batch: Sequence[Any]) -> None:
        """Write every item, or raise. Returning means delivered (for Kafka:
        acknowledged by the broker), not merely handed to a library."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make everything written so far durable/visible."""

    def reopen(self) -> None:  # noqa: B027 - optional hook
        """SIGHUP: reopen files (after logrotate moved them). Called on the
        worker thread between batches."""

    def cancel(self) -> None:  # noqa: B027 - optional hook
        """The shutdown deadline has passed: stop waiting inside write_batch or
        flush (a broker that never acknowledges). Called from another thread;
        what was not delivered must then be raised as not written."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Called once, after the last flush."""

    def health(self) -> dict[str, Any]:
        """Sink-specific state for the stats line and `collector check`."""
        return {}
