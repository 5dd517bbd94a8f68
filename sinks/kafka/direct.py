"""kafka.buffer = memory (the default): write_batch is one delivery round.

Messages whose report is retriable come back to the core as
PartialWriteError(remaining), so its RetryPolicy re-sends exactly those: a
delivered message is never sent twice. At the shutdown deadline (cancel),
what was not yet sent is purged, so that close()'s flush cannot deliver an
event already counted as not delivered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from collector.export import PartialWriteError, PipelineSettings
from sinks.kafka.message import Message
from sinks.kafka.producer import Rounds

log = logging.getLogger("collector.kafka")

Dropped = Callable[[int, str, Sequence[Message]], None]


class DirectPath:
    """write_batch = produce and wait for every report."""

    where = "memory queue"

    def __init__(self, rounds: Rounds, dropped: Dropped, probe: Callable[[], None]) -> None:
        self.rounds = rounds
        self.dropped = dropped
        self.probe = probe
        self._probed = False

    def open(self, pipeline: PipelineSettings) -> None:
        """An unreachable broker is not an error here: a probe thread says so at
        once (or that the broker refused our credentials or certificate), even
        before any event, and delivery waits."""
        if not self._probed:
            self._probed = True
            threading.Thread(target=self.probe, name="kafka-probe", daemon=True).start()

    def write_batch(self, batch: Sequence[Message], cancel: threading.Event) -> None:
        out = self.rounds.send(batch, cancel=cancel)
        if cancel.is_set():
            self.rounds.purge_queued()
        for reason, idx in out.drops.items():
            self.dropped(len(idx), reason, [batch[i] for i in idx])
        if out.retry:
            if not cancel.is_set():
                self.rounds.resent += len(out.retry)
            errors = ", ".join(f"{k} x{v}" for k, v in out.errors.items()) or "not delivered"
            raise PartialWriteError(f"{len(out.retry)} of {len(batch)} messages to be re-sent "
                                    f"({errors})", [batch[i] for i in out.retry])

    def flush(self) -> None:
        pass

    def close(self) -> None:
        left = self.rounds.producer.flush(2.0)
        if left:
            log.error("kafka: %d messages were still unacknowledged at close", left)

    def health(self) -> dict[str, Any]:
        return {}


__all__ = ["DirectPath"]
