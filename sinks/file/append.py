"""Appending a batch: all of it or none of it, and the fsync policy.

One batch is one write(2) at the end of the file, opened O_APPEND. If the
write (or its fsync) fails part-way, e.g. ENOSPC, the file is truncated
back to its size before the batch and TransientSinkError is raised: the
core backs off and retries, and a reader never sees half a JSON line or
half an Avro block.

fsync: `batch` syncs before the append returns (returning means durable),
`interval` at most every `fsync_interval_s` (and on flush: the core calls
flush after that long idle), `never` leaves it to the kernel. Directory
entries (a new file, a rename) are synced too, unless `never`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from collector.export import TransientSinkError

log = logging.getLogger("collector.sink.file")


class Appender:
    """Writes and syncs one path's files; counts write errors."""

    def __init__(self, path: Path, mode: int, fsync: str, fsync_interval_s: float) -> None:
        self.path = path
        self.mode = mode
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self.unsynced = False
        self._last_sync = 0.0
        self.write_errors = 0

    def create_or_open(self, path: Path | None = None) -> int:
        """O_APPEND fd of the path; a new file gets `mode` exactly (fchmod: umask-proof)."""
        target = self.path if path is None else path
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
        while True:
            try:
                fd = os.open(target, flags | os.O_CREAT | os.O_EXCL, self.mode)
            except FileExistsError:
                try:
                    return os.open(target, flags)
                except FileNotFoundError:
                    continue  # removed between the two calls: create it
            try:
                os.fchmod(fd, self.mode)
            except OSError:
                os.close(fd)
                raise
            self.sync_dir()
            return fd

    def append(self, fd: int, good: int, data: bytes) -> None:
        """All of data at the end of the file, or the file as it was (`good`
        bytes) and TransientSinkError."""
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            self.unsynced = True
            if self.fsync == "batch" or (
                    self.fsync == "interval"
                    and time.monotonic() - self._last_sync >= self.fsync_interval_s):
                self._sync(fd)
        except OSError as exc:
            self.write_errors += 1
            try:
                os.ftruncate(fd, good)
            except OSError as trunc_exc:
                log.error("file sink: could not cut %s back to %d bytes after a failed write: "
                          "%s", self.path, good, trunc_exc.strerror)
            raise TransientSinkError(f"file sink: writing {self.path} failed: {exc.strerror}; "
                                     "the batch will be retried") from None

    def flush(self, fd: int | None) -> None:
        """What was appended is made durable (unless fsync = never)."""
        if fd is not None and self.unsynced and self.fsync != "never":
            try:
                self._sync(fd)
            except OSError as exc:
                raise TransientSinkError(f"file sink: fsync of {self.path} failed: "
                                         f"{exc.strerror}") from None

    def sync_before_leaving(self, fd: int) -> None:
        """Before the file is rotated or reopened away from (raises OSError)."""
        if self.fsync != "never":
            os.fdatasync(fd)
        self.unsynced = False

    def _sync(self, fd: int) -> None:
        os.fdatasync(fd)
        self.unsynced = False
        self._last_sync = time.monotonic()

    def sync_dir(self) -> None:
        if self.fsync == "never":
            return
        try:
            dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)


def same_file(path: Path, fd: int) -> bool:
    """Is `path` still the file `fd` has open (not moved away or replaced)?"""
    try:
        st = os.stat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
