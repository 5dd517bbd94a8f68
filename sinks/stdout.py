"""The stdout sink: JSON lines (for jq) or compact lines (for people).

Each batch is one write to fd 1 followed by a flush, so `collector run | jq`
shows events as they happen. A closed pipe (the reader went away) is not an
error to report: the sink raises OutputClosed and the collector stops quietly.
"""

from __future__ import annotations

import array
import fcntl
import io
import os
import stat
import sys
import termios
from collections.abc import Callable, Mapping, Sequence
from typing import Any, BinaryIO, ClassVar

from collector import shapes
from collector.encode.compact import encode_compact_line
from collector.export import SCHEMA_OPTION, Event, Option, OutputClosed, Sink, TransientSinkError

#: the capacity stdout's pipe is grown to (the default fs.pipe-max-size)
PIPE_BYTES = 1 << 20


def _room_check(stream: BinaryIO) -> Callable[[int], bool] | None:
    """How to tell, without blocking, that a write of n bytes to the stream
    returns at once: a regular file or /dev/null always; a pipe when that much
    of its capacity is free (FIONREAD counts what its reader has not read yet);
    None for anything else (a terminal, a socket, an in-memory stream). A pipe
    is grown to PIPE_BYTES first."""
    try:
        fd = stream.fileno()
        st = os.fstat(fd)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    if stat.S_ISREG(st.st_mode):
        return lambda _n: True
    if stat.S_ISCHR(st.st_mode):
        try:
            null = os.stat(os.devnull)
        except OSError:
            return None
        return (lambda _n: True) if st.st_rdev == null.st_rdev else None
    if not stat.S_ISFIFO(st.st_mode):
        return None
    try:
        capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    except OSError:
        return None
    if capacity < PIPE_BYTES:
        # a poll's lines in a storm (~150 KB) do not fit the default 64 KiB, and a
        # burst waits less behind a slow `| jq`: grow it (to what the system allows)
        try:
            capacity = fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:  # EPERM beyond /proc/sys/fs/pipe-max-size, EBUSY: keep it
            pass
    unread = array.array("i", [0])

    def room(n: int) -> bool:
        try:
            fcntl.ioctl(fd, termios.FIONREAD, unread, True)
        except OSError:
            return False
        return capacity - unread[0] >= n

    return room


class BrokenPipe(OutputClosed):
    """The reader of stdout is gone: stop quietly."""


class StdoutSink(Sink):
    name = "stdout"
    options = (
        Option("format", "str", "json", "json (one JSON document per line) or compact (for "
               "people)", choices=("json", "compact"), flag="--format",
               env_alias="COLLECTOR_FORMAT"),
        SCHEMA_OPTION,
    )
    pipeline_defaults: ClassVar[Mapping[str, int]] = {"batch_timeout_ms": 0, "batch_events": 256}
    listing_order = 0

    def __init__(self, options: Mapping[str, Any] | None = None,
                 stream: BinaryIO | None = None) -> None:
        super().__init__(options)
        self.format = self.settings["format"]
        self.shape = shapes.get(self.settings["schema"] or "native")  # collector.shapes
        self._encode = (encode_compact_line if self.format == "compact"
                        else self.shape.json_encoder())
        self.encode = self._encode  # type: ignore[method-assign,assignment]  # no call per event
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._room: Callable[[int], bool] | None = None  # see open()

    def open(self) -> None:
        self._room = _room_check(self._stream)

    def writes_without_waiting(self, nbytes: int) -> bool:
        return self._room is not None and self._room(nbytes)

    def encode(self, event: Event) -> bytes:  # replaced by the encoder itself in __init__
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
