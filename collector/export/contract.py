"""The sink contract: the one module that says what a sink is and what the
core does for it.

A sink is a class registered under the entry point group
`process_collector.sinks` (`name = "module:Class"`), subclassing `Sink`.
It declares `name` and `options` (a sequence of Option); the core builds it
as `SinkClass(options)` with a mapping of its option values (defaults
filled in, every value checked), and drives it from one worker thread
(collector.pipeline.worker) that owns the queue, batching, retries,
backpressure and counting, for every sink alike. The sink only:

- `encode(event)`: one event (a mapping with the schema's field names,
  nested records as mappings; read-only: records are shared) → one item for
  write_batch, usually bytes. len() of the item is what `batch_bytes`
  counts (an item without len() counts 0);
- `write_batch(items)`: write every item, or raise. Returning means
  delivered (for Kafka: acknowledged by the broker), not merely handed to a
  library;
- optional hooks: open, flush, reopen (SIGHUP), cancel (the shutdown
  deadline passed), close, health (the sink's own integer counters, shown
  on the stats line), check (`collector check`).

Errors decide what the core does:

    SinkError (collector.errors)   fatal: this sink stops with one line, the
     │                             others go on; exit 4 at the end
     ├── OutputClosed              the reader of the output went away (a closed
     │                             pipe): the collector stops quietly, exit 0
     └── TransientSinkError        retried by the core with the RetryPolicy
          └── PartialWriteError    some items were written: `remaining` are retried

Items a sink gives up for good (too large for the broker, a full disk
buffer under a drop policy) are reported with `give_up(count, reason)`:
they are counted as dropped for that reason, not as written. It may be
called from any thread (the Kafka disk-buffer sender has its own); the core
collects the counts after every batch and at flush and close.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from collector.errors import SinkError

if TYPE_CHECKING:
    from collector.export.options import Option
    from collector.export.policy import PipelineSettings

#: one event: a mapping with the schema's field names (nested records as mappings),
#: shared with every other sink: read it, never change it
Event = dict[str, Any]


class TransientSinkError(SinkError):
    """A failure that may go away (disk full, broker down): the batch is retried."""


class PartialWriteError(TransientSinkError):
    """Some items of a batch were written; `remaining` are to be retried."""

    def __init__(self, message: str, remaining: Sequence[Any]) -> None:
        super().__init__(message)
        self.remaining = list(remaining)


class OutputClosed(SinkError):
    """The reader of the sink's output is gone (stdout piped into `head`): not a
    failure; the collector stops quietly and exits 0."""


class _GiveUps:
    """Counts of items given up, by reason, until the core takes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, count: int, reason: str) -> None:
        with self._lock:
            self._counts[reason] += count

    def take(self) -> Counter[str]:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return counts


_GIVE_UPS_LOCK = threading.Lock()


class Sink(ABC):
    """Base class of every sink; see the module docstring for the contract."""

    #: the sink's name: `--sink NAME`, its config section, counters and messages
    name: str = "sink"
    #: the options it takes (bare keys; the core qualifies them as "<name>.<key>")
    options: ClassVar[Sequence[Option]] = ()
    #: its defaults for the core's pipeline keys (batch_events, batch_timeout_ms)
    pipeline_defaults: ClassVar[Mapping[str, int]] = {}
    #: where its section goes in `collector sinks` and config/collector.toml (lower
    #: first, then by name): entry points come in no stated order
    listing_order: ClassVar[int] = 100
    #: the core calls flush() after this long without a batch, when something was
    #: written since the last flush (e.g. the file sink's fsync interval); None: never
    idle_flush_s: float | None = None

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        from collector.export.options import resolve_options
        from collector.export.policy import PipelineSettings

        #: the resolved option values (every declared key, checked)
        self.settings: dict[str, Any] = resolve_options(self.name, self.options, options or {})
        #: the core's settings for this sink (see bind); defaults until bound
        self.pipeline: PipelineSettings = PipelineSettings()

    # -- set up by the core --------------------------------------------------------

    def bind(self, pipeline: PipelineSettings) -> None:
        """The core's settings for this sink (queue, batch limits, when_full, the
        RetryPolicy), before open(). A sink that batches or retries on a thread
        of its own reads them here rather than restating them."""
        self.pipeline = pipeline

    @property
    def give_ups(self) -> _GiveUps:
        found: _GiveUps | None = self.__dict__.get("_give_ups")
        if found is None:
            with _GIVE_UPS_LOCK:
                found = self.__dict__.setdefault("_give_ups", _GiveUps())
        return found

    def give_up(self, count: int, reason: str) -> None:
        """`count` items accepted earlier (or in the batch being written) will never
        be delivered: the core counts them as dropped for `reason`. Any thread."""
        self.give_ups.add(count, reason)

    # -- what a sink implements ----------------------------------------------------

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources; raise SinkError with the fix if impossible, or
        TransientSinkError if it may work later (the core retries opening)."""

    @abstractmethod
    def encode(self, event: Event) -> Any:
        """One event → one item for write_batch (usually bytes). Runs on the
        sink's worker thread (or the reader's: see writes_without_waiting);
        len() of the result is what batch_bytes counts."""

    @abstractmethod
    def write_batch(self, batch: Sequence[Any]) -> None:
        """Write every item, or raise. Returning means delivered."""

    def writes_without_waiting(self, nbytes: int) -> bool:
        """True when write_batch of items totalling nbytes would return at once,
        without waiting on anything (a regular file; a pipe with that much room).
        The core may then encode and write a poll's events on the reader thread,
        sparing the hand-off to the worker (collector.pipeline.inline); the core
        never calls into a sink from two threads at once. Must not block.
        Default False: every event goes through the worker."""
        return False

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make everything written so far durable/visible."""

    def reopen(self) -> None:  # noqa: B027 - optional hook
        """SIGHUP: reopen files (after logrotate moved them). Called on the
        worker thread between batches."""

    def cancel(self) -> None:  # noqa: B027 - optional hook
        """The shutdown deadline has passed: stop waiting inside write_batch or
        flush. Called from another thread; what was not delivered must then be
        raised as not written."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Called once, after the last flush."""

    def health(self) -> dict[str, Any]:
        """The sink's own counters for the stats line (integers are shown)."""
        return {}

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> Iterator[tuple[bool | None, str]]:
        """`collector check`: (ok, one line) per thing this sink needs; ok None is
        informational (shown, never a failure)."""
        return iter(())
