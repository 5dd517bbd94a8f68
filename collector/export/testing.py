"""An in-memory sink: the stand-in for tests of the pipeline itself (and of
sinks' users).

It can be told to fail: the first `fail_times` write_batch calls raise
`error` (transient by default; -1 = always), which is how retry and drop
policies are tested without a real outage.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from collector.export.contract import Event, Sink, TransientSinkError


class MemorySink(Sink):
    """Keeps what it is given in `events`; see the module docstring."""

    name = "memory"

    def __init__(
        self,
        name: str = "memory",
        *,
        fail_times: int = 0,
        error: Exception | None = None,
        delay_s: float = 0.0,
        inline: bool = False,
    ) -> None:
        self.name = name
        super().__init__({})
        self.events: list[Any] = []
        self.batches = 0
        self.fail_times = fail_times
        self.error = error or TransientSinkError("injected failure")
        self.delay_s = delay_s
        self.calls = 0
        self.closed = False
        #: what writes_without_waiting answers (the core may then write on the reader's thread)
        self.inline = inline
        self.writers: list[str] = []  # the thread of every write_batch call
        self._lock = threading.Lock()

    def writes_without_waiting(self, nbytes: int) -> bool:
        return self.inline

    def encode(self, event: Event) -> Any:
        return event

    def write_batch(self, batch: Sequence[Any]) -> None:
        self.calls += 1
        self.writers.append(threading.current_thread().name)
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        if self.fail_times != 0:
            if self.fail_times > 0:
                self.fail_times -= 1
            raise self.error
        with self._lock:
            self.events.extend(batch)
            self.batches += 1

    def close(self) -> None:
        self.closed = True
