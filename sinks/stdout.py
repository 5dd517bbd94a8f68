"""The stdout sink: JSON lines (for jq) or compact lines (for people).

Each batch is one write to fd 1 followed by a flush, so `collector run | jq`
shows events as they happen. A closed pipe (the reader went away) is not an
error to report: the sink says so and the collector stops quietly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO

from collector import shapes
from collector.encode.compact import encode_compact_line
from collector.errors import SinkError
from sinks.base import Event, Sink, TransientSinkError


class BrokenPipe(SinkError):
    """The reader of stdout is gone: stop quietly."""


class StdoutSink(Sink):
    name = "stdout"

    def __init__(self, fmt: str = "json", stream: BinaryIO | None = None,
                 schema: str = "native") -> None:
        self.format = fmt
        self.shape = shapes.get(schema)  # the record shape of JSON lines (collector.shapes)
        self._encode = (encode_compact_line if fmt == "compact"
                        else self.shape.json_encoder())
        self._stream = stream if stream is not None else sys.stdout.buffer

    def encode(self, event: Event) -> bytes:
        return self._encode(event)

    def write_batch(self, batch: Sequence[Any]) -> None:
        try:
            self._stream.write(b"".join(batch))
            self._stream.flush()
        except BrokenPipeError:
            # Point fd 1 at /dev/null so the interpreter's own final flush is quiet.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise BrokenPipe("stdout was closed by its reader") from None
        except OSError as exc:
            raise TransientSinkError(f"writing to stdout failed: {exc.strerror}") from None
