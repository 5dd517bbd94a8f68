"""Rotation and retention: when a file is rotated, what its rotated name is,
which rotated files are kept, and gzip of rotated JSON-lines files.

Rotation, by size (`max_bytes`, checked before each batch so a file only
grows past it when one batch alone is larger) or age (`max_age_s`, from
when the collector opened the file; checked when a batch is written),
renames the active file in place and starts a new one at `path`:

    events.jsonl  →  events.20261125T183000Z-000001.jsonl[.gz]
    events.avro   →  events.20261125T183000Z-000002.avro

i.e. <stem>.<UTC time of rotation>-<sequence><suffix>. The sequence
continues across restarts, so sorting names sorts by age, the extension
stays last (tools and shippers recognise .jsonl/.avro/.gz), and a shipper
following `events.jsonl` by inode reads a rotated file to its end.
`retain` rotated files are kept; older ones are deleted.

gzip runs on a background thread (writing goes on meanwhile) into
`<name>.gz.tmp`, which is fsynced and renamed to `<name>.gz` before the
plain file is removed, so a crash never leaves a half-written .gz as the
only copy; leftovers are tidied at the next open.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sinks.file.append import Appender

log = logging.getLogger("collector.sink.file")


class _Jobs:
    """One daemon thread for gzip and retention, so writing never waits on them.

    A daemon thread (not an executor) so an exit is never held up by a long
    compression: the .gz.tmp it leaves is tidied at the next open."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="file-jobs", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._q.put(job)

    def _run(self) -> None:
        while (job := self._q.get()) is not None:
            try:
                job()
            except Exception:  # a job failing must not stop later ones
                log.exception("file sink: background job failed")

    def close(self, timeout: float) -> None:
        self._q.put(None)
        self._thread.join(timeout)


def _unlink(p: Path) -> bool:
    try:
        os.unlink(p)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("file sink: could not remove %s: %s", p, exc.strerror)
        return False
    return True


class Rotation:
    """Rotated files of one path; see the module docstring."""

    def __init__(self, path: Path, appender: Appender, *, max_bytes: int, max_age_s: float,
                 retain: int, gzip_rotated: bool, clock: Callable[[], float]) -> None:
        self.path = path
        self.appender = appender
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.retain = retain
        self.gzip = gzip_rotated
        self.clock = clock
        name = path.name
        stem, dot, ext = name.rpartition(".")
        self._stem, self._suffix = (stem, dot + ext) if stem else (name, "")
        self._rotated_re = re.compile(
            re.escape(self._stem) + r"\.(\d{8}T\d{6}Z)-(\d{6,})" + re.escape(self._suffix)
            + r"(\.gz)?(\.tmp)?$")
        self._seq = 0
        self._jobs: _Jobs | None = None
        # counters shown on the stats line
        self.rotations = 0
        self.gzipped = 0
        self.gzip_failed = 0
        self.deleted = 0

    def due(self, size: int, incoming: int, header: int, opened_at: float) -> bool:
        """Rotate before appending `incoming` bytes to a file of `size`?"""
        if size <= header:
            return False  # nothing in it yet
        if self.max_bytes and size + incoming > self.max_bytes:
            return True
        return bool(self.max_age_s) and self.clock() - opened_at >= self.max_age_s

    def start(self) -> None:
        """At open: continue the sequence, tidy what a crash left."""
        self._seq = max((seq for seq, *_ in self.rotated()), default=0)
        self.tidy()

    def rename(self) -> Path:
        """Move the active file to its rotated name."""
        target = self._next_name()
        os.rename(self.path, target)
        self.appender.sync_dir()
        return target

    def link_away(self) -> Path:
        """Give the active file its rotated name too (a hard link); the caller then
        replaces the path, so there is no moment without a file at it."""
        target = self._next_name()
        os.link(self.path, target)
        return target

    def _next_name(self) -> Path:
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock()))
        return self.path.with_name(f"{self._stem}.{stamp}-{self._seq:06d}{self._suffix}")

    def rotated_away(self, moved: Path | None) -> None:
        """A rotation is done: gzip the moved file (if asked), apply retention."""
        self.rotations += 1
        if moved is not None and self.gzip:
            self._background(functools.partial(self._gzip, moved))
        self._background(self._prune)

    def rotated(self) -> list[tuple[int, Path, bool, bool]]:
        """(sequence, path, gzipped, temporary) of every rotated file of ours."""
        out = []
        try:
            names = os.listdir(self.path.parent)
        except OSError:
            return []
        for name in names:
            m = self._rotated_re.match(name)
            if m:
                out.append((int(m.group(2)), self.path.parent / name, bool(m.group(3)),
                            bool(m.group(4))))
        return sorted(out, key=lambda t: t[0])

    def tidy(self) -> None:
        """After a crash: drop unfinished .gz.tmp files and plain files whose .gz is
        complete; compress what was left uncompressed; apply retention."""
        found = self.rotated()
        done = {p for _, p, gz, tmp in found if gz and not tmp}
        for _, p, gz, tmp in found:
            if tmp or (not gz and p.with_name(p.name + ".gz") in done):
                _unlink(p)
            elif not gz and self.gzip:
                self._background(functools.partial(self._gzip, p))
        self._background(self._prune)

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.close(timeout=60.0)
            self._jobs = None

    def _background(self, job: Callable[[], None]) -> None:
        if self._jobs is None:
            self._jobs = _Jobs()
        self._jobs.submit(job)

    def _gzip(self, plain: Path) -> None:
        final = plain.with_name(plain.name + ".gz")
        tmp = plain.with_name(plain.name + ".gz.tmp")
        if not plain.exists():
            return  # retention removed it already
        mode = self.appender.mode
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
            os.fchmod(fd, mode)
            with open(plain, "rb") as src, os.fdopen(fd, "wb") as raw:
                mtime = int(os.fstat(src.fileno()).st_mtime)
                with gzip.GzipFile(filename=plain.name, mode="wb", fileobj=raw, mtime=mtime) as gz:
                    shutil.copyfileobj(src, gz, 1 << 20)
                raw.flush()
                if self.appender.fsync != "never":
                    os.fsync(raw.fileno())
            os.rename(tmp, final)
            os.unlink(plain)
            self.appender.sync_dir()
            self.gzipped += 1
        except OSError as exc:
            self.gzip_failed += 1
            _unlink(tmp)
            log.warning("file sink: gzip of %s failed (%s); kept it uncompressed", plain,
                        exc.strerror)

    def _prune(self) -> None:
        seqs = sorted({seq for seq, _, _, tmp in self.rotated() if not tmp})
        old = set(seqs[: max(0, len(seqs) - self.retain)])
        for seq, p, _, tmp in self.rotated():
            if seq in old and not tmp:
                if _unlink(p):
                    self.deleted += 1
