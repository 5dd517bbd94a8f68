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

import errno
import logging
import os
import time
from pathlib import Path

from collector.export import TransientSinkError

log = logging.getLogger("collector.sink.file")


_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
NO_HARD_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK)


def _unlink_quietly(p: Path) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


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

    def create_or_open(self, path: Path | None = None, initial: bytes = b"") -> int:
        """O_APPEND fd of the path. A new file appears whole: it is staged beside the
        path with `initial` (an Avro header) and `mode` exactly (fchmod: umask-proof),
        then linked into place, so a shipper (or a crash) never finds it half-made."""
        target = self.path if path is None else path
        while True:
            try:
                return os.open(target, _APPEND_FLAGS)
            except FileNotFoundError:
                pass
            staged = self._stage(target, initial)
            try:
                os.link(staged, target)
            except FileExistsError:
                continue  # created between the two calls: open that one
            except OSError as exc:
                if exc.errno not in NO_HARD_LINKS:
                    raise
                os.rename(staged, target)  # a file system without hard links
            finally:
                _unlink_quietly(staged)
            self.sync_dir()

    def replace_with(self, initial: bytes) -> None:
        """Put a new file (holding `initial`) at the path in one rename, for a
        rotation: the path never disappears under a reader that follows it."""
        staged = self._stage(self.path, initial)
        try:
            os.rename(staged, self.path)
        except OSError:
            _unlink_quietly(staged)
            raise
        self.sync_dir()

    def _stage(self, target: Path, initial: bytes) -> Path:
        staged = target.with_name(f".{target.name}.new")
        _unlink_quietly(staged)  # left by a crash
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, self.mode)
        try:
            os.fchmod(fd, self.mode)
            try:
                view = memoryview(initial)
                while view:
                    view = view[os.write(fd, view):]
                if initial and self.fsync != "never":
                    os.fdatasync(fd)
            except OSError:  # e.g. ENOSPC: the header goes out with the first batch instead
                os.ftruncate(fd, 0)
        except OSError:
            os.close(fd)
            _unlink_quietly(staged)
            raise
        os.close(fd)
        return staged

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
