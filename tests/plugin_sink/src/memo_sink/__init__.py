"""The `memo` sink: every event as a JSON line in a file.

It stands for a third-party plugin: it imports only collector.export, and
its first `fail_first` batches raise TransientSinkError, so a test can see
the core (not the plugin) retry them; after `fatal_after` batches it fails
for good (SinkError), so a test can see the exit code of a sink that fails
while running.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from collector.export import Event, Option, Sink, SinkError, TransientSinkError


class MemoSink(Sink):
    """JSON lines to memo.path; the first memo.fail_first batches fail (transient)."""

    name = "memo"
    options = (
        Option("path", "str", "", "file the events are appended to", required=True),
        Option("fail_first", "int", 0, "batches that fail before any is written",
               unit="batches", minimum=0),
        Option("fatal_after", "int", 0, "after this many batches written, fail for good "
               "(0 = never)", unit="batches", minimum=0),
    )

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.path = self.settings["path"]
        self.failures_left = self.settings["fail_first"]
        self.failed = 0
        self.fatal_after = self.settings["fatal_after"]
        self.written_batches = 0
        self._fd: int | None = None

    def open(self) -> None:
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise SinkError(f"memo sink: cannot open {self.path}: {exc.strerror}") from None

    def encode(self, event: Event) -> bytes:
        return json.dumps(event, separators=(",", ":")).encode() + b"\n"

    def write_batch(self, batch: Sequence[Any]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            self.failed += 1
            raise TransientSinkError(f"memo sink: injected failure {self.failed}")
        if self.fatal_after and self.written_batches >= self.fatal_after:
            raise SinkError("memo sink: injected fatal failure; fix: none, it is a test")
        assert self._fd is not None
        os.write(self._fd, b"".join(batch))
        self.written_batches += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def health(self) -> dict[str, Any]:
        return {"injected_failures": self.failed}
