"""Sink.writes_without_waiting of the built-in sinks: the reader's thread may
write only where a write returns at once (collector.pipeline.inline)."""

from __future__ import annotations

import fcntl
import io
import os
import socket
from pathlib import Path

import pytest

from sinks.file import FileSink
from sinks.stdout import PIPE_BYTES, StdoutSink


def stdout_on(fd: int) -> StdoutSink:
    sink = StdoutSink({}, stream=os.fdopen(fd, "wb", closefd=False))
    sink.open()
    return sink


def test_stdout_to_a_regular_file_or_dev_null_never_waits(tmp_path: Path) -> None:
    with open(tmp_path / "out", "wb") as f:
        assert stdout_on(f.fileno()).writes_without_waiting(1 << 30)
    with open(os.devnull, "wb") as f:
        assert stdout_on(f.fileno()).writes_without_waiting(1 << 30)


def test_stdout_to_a_pipe_waits_only_when_the_pipe_has_no_room() -> None:
    r, w = os.pipe()
    try:
        assert fcntl.fcntl(w, fcntl.F_GETPIPE_SZ) < PIPE_BYTES
        sink = stdout_on(w)
        capacity = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        assert capacity == PIPE_BYTES  # grown so that a poll's lines fit (root may, always)
        assert sink.writes_without_waiting(capacity)
        assert not sink.writes_without_waiting(capacity + 1)
        os.write(w, b"x" * (capacity - 1000))  # a reader that has not read yet
        assert sink.writes_without_waiting(1000)
        assert not sink.writes_without_waiting(1001)
        os.read(r, capacity)  # it caught up
        assert sink.writes_without_waiting(capacity)
    finally:
        os.close(r)
        os.close(w)


def test_stdout_to_a_socket_or_a_memory_stream_goes_through_the_worker() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert not stdout_on(a.fileno()).writes_without_waiting(1)
    sink = StdoutSink({}, stream=io.BytesIO())
    sink.open()
    assert not sink.writes_without_waiting(1)


@pytest.mark.parametrize(("fsync", "inline"), [("batch", False), ("interval", True),
                                               ("never", True)])
def test_the_file_sink_waits_for_nothing_unless_every_batch_is_fsynced(
        tmp_path: Path, fsync: str, inline: bool) -> None:
    sink = FileSink({"path": str(tmp_path / "events.jsonl"), "fsync": fsync})
    sink.open()
    try:
        assert sink.writes_without_waiting(4096) is inline
    finally:
        sink.close()
