"""The file sink as the core sees it: options → encode (one JSON line, or
one Avro datum) → write_batch: framing.py makes the batch one piece (lines,
or one OCF block), rotation.py says whether to rotate first, append.py
writes it whole or not at all and applies the fsync policy.

- After SIGKILL only the very last write can be cut; opening the file again
  (start, SIGHUP) cuts that tail off before appending, so a file is
  readable up to its last complete line / block (counted: repaired_bytes).
- Avro: a file always starts with its header; an existing file with another
  schema or codec is rotated away instead of appended to. Each event is
  encoded by collector.encode.avro.datum on the worker thread (encode), so
  an event that does not fit the schema is counted and dropped by the core,
  like a JSON line that cannot be encoded.
- Files are created with `mode` (default 0640) whatever the umask.
- A missing directory or a path that cannot be created at start is a fatal
  SinkError (the collector exits at start with one line); the same problem
  later (rotation, SIGHUP) is transient: retried, the old file kept.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from collector import shapes
from collector.errors import SinkError, UsageError
from collector.export import Event, Sink, TransientSinkError
from sinks.file.append import NO_HARD_LINKS, Appender, same_file
from sinks.file.framing import AVRO_MAGIC, OcfFraming, jsonl_good_end, read_ocf, schema_form
from sinks.file.options import OPTIONS, codec_usable
from sinks.file.rotation import Rotation

log = logging.getLogger("collector.sink.file")

REOPEN_RETRY_S = 10.0  # after a failed SIGHUP reopen, try again this often (between batches)


class FileSink(Sink):
    """Events to a local file (JSON lines or Avro), rotated; see the module docstring."""

    name = "file"
    options = OPTIONS
    pipeline_defaults: ClassVar[Mapping[str, int]] = {"batch_timeout_ms": 200, "batch_events": 1000}
    listing_order = 1

    def __init__(self, options: Mapping[str, Any] | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(options)
        s = self.settings
        fmt, codec = s["format"], s["avro_codec"]
        if fmt == "avro":
            why = codec_usable(codec)
            if why is not None:
                raise UsageError(f"config key file.avro_codec: '{codec}' cannot be used "
                                 f"here ({why}); install it or choose null or deflate")
            if s["gzip"]:
                raise UsageError("config key file.gzip: applies to jsonl files only; Avro "
                                 "blocks are compressed by file.avro_codec")
        self.path = Path(s["path"])
        self.format = fmt
        self.codec = codec
        self.fsync = s["fsync"]
        self._clock = clock
        self.appender = Appender(self.path, int(s["mode"], 8), self.fsync, s["fsync_interval_s"])
        self.rotation = Rotation(self.path, self.appender, max_bytes=s["max_bytes"],
                                 max_age_s=s["max_age_s"], retain=s["retain"],
                                 gzip_rotated=s["gzip"], clock=clock)
        #: the core calls flush() after this long idle, so `interval` holds without traffic
        self.idle_flush_s = s["fsync_interval_s"] if self.fsync == "interval" else None
        self._fd: int | None = None
        self._opened_at = 0.0
        self._reopen_pending = False
        self._reopen_retry_at = 0.0
        self._ocf: OcfFraming | None = None  # Avro: the active file's header and blocks
        # one JSON line, or one Avro datum (write_batch frames a block of them): bound
        # here, a call less per event
        self.shape = shapes.get(s["schema"] or "native")  # the record shape (collector.shapes)
        encoder = self.shape.json_encoder() if fmt == "jsonl" else self.shape.datum_encoder()
        self.encode = encoder  # type: ignore[method-assign,assignment]
        self.repaired_bytes = 0  # cut from a torn tail (SIGKILL) when reopening a file

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> Iterator[tuple[bool, str]]:
        d = os.path.dirname(os.path.abspath(options.get("path") or "."))
        ok = os.path.isdir(d) and os.access(d, os.W_OK)
        yield ok, f"file sink: {d} {'is writable' if ok else 'is missing or not writable'}"

    # counters shown on the stats line (and read by tests)
    @property
    def rotations(self) -> int:
        return self.rotation.rotations

    @property
    def write_errors(self) -> int:
        return self.appender.write_errors

    @property
    def gzipped(self) -> int:
        return self.rotation.gzipped

    @property
    def gzip_failed(self) -> int:
        return self.rotation.gzip_failed

    @property
    def deleted(self) -> int:
        return self.rotation.deleted

    @property
    def _sync(self) -> bytes | None:
        """The active Avro file's sync marker (tests frame blocks with it)."""
        return self._ocf.sync if self._ocf is not None else None

    # -- the Sink interface -------------------------------------------------------------

    def open(self) -> None:
        """Open (or create) the file at start: any failure here is fatal."""
        self._check_directory()
        self.rotation.start()
        try:
            self._open_active()
        except OSError as exc:
            raise SinkError(self._open_problem(exc)) from None

    def encode(self, event: Event) -> bytes:  # replaced by the encoder itself in __init__
        if self.format == "jsonl":
            return self.shape.json_encoder()(event)
        return self.shape.datum_encoder()(event)

    def write_batch(self, batch: Sequence[Any]) -> None:
        if not batch:
            return
        if self._reopen_pending and time.monotonic() >= self._reopen_retry_at:
            try:
                self.reopen()
            except TransientSinkError as exc:
                log.warning("%s", exc)
        fd = self._active_fd()
        data = self._frame(batch)
        size = os.fstat(fd).st_size
        if self.rotation.due(size, len(data), len(self._header), self._opened_at):
            framing = self._ocf
            self._rotate()
            fd = self._active_fd()
            size = os.fstat(fd).st_size
            if self._ocf is not framing:  # appending to a file with its own sync marker
                data = self._frame(batch)
        if size == 0 and self._header:
            data = self._header + data  # the file was emptied under us (copytruncate)
        self.appender.append(fd, size, data)

    def writes_without_waiting(self, nbytes: int) -> bool:
        """Appending to a regular file returns at once, unless every batch is
        fsynced (fsync = batch: the device's time, which the reader must not wait for)."""
        if self.fsync == "batch" or self._fd is None or self._reopen_pending:
            return False
        try:
            return stat.S_ISREG(os.fstat(self._fd).st_mode)
        except OSError:
            return False

    def flush(self) -> None:
        self.appender.flush(self._fd)

    def reopen(self) -> None:
        """SIGHUP: logrotate moved (or removed) the file; start again at `path`.

        The new file is opened before the old one is closed, so a failure
        leaves the sink writing where it was (retried at the next batch)."""
        old = self._fd
        if old is not None and same_file(self.path, old):
            self._reopen_pending = False
            return  # nobody moved it: carry on with the file as it is
        try:
            if old is not None:
                self.appender.sync_before_leaving(old)
            self._fd = None
            self._open_active()
        except (OSError, SinkError) as exc:
            # e.g. the path is now a FIFO: keep writing where we were, retry later
            if self._fd is None:
                self._fd = old
                old = None
            self._reopen_pending = True
            self._reopen_retry_at = time.monotonic() + REOPEN_RETRY_S
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise TransientSinkError(f"file sink: reopening {self.path} failed: "
                                     f"{why}; still writing to the old file") from None
        finally:
            if old is not None and old != self._fd:
                os.close(old)
        self._reopen_pending = False
        self.appender.unsynced = False
        log.info("file sink: reopened %s", self.path)

    def close(self) -> None:
        try:
            self.flush()
        except TransientSinkError as exc:
            log.error("%s", exc)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.rotation.close()

    def health(self) -> dict[str, Any]:
        r = self.rotation
        return {
            "rotations": r.rotations,
            "repaired_bytes": self.repaired_bytes,
            "write_errors": self.appender.write_errors,
            "gzipped": r.gzipped,
            "gzip_failed": r.gzip_failed,
            "deleted": r.deleted,
        }

    # -- opening --------------------------------------------------------------------------

    @property
    def _header(self) -> bytes:
        return self._ocf.header if self._ocf is not None else b""

    def _check_directory(self) -> None:
        parent = self.path.parent
        if not parent.exists():
            raise SinkError(f"file sink: directory {parent} does not exist; create it or "
                            "choose another file.path")
        if not parent.is_dir():
            raise SinkError(f"file sink: {parent} is not a directory; choose another file.path")
        if self.path.is_dir():
            raise SinkError(f"file sink: {self.path} is a directory; file.path must name a file")

    def _open_problem(self, exc: OSError) -> str:
        why = {
            errno.EACCES: "permission denied; let the collector's user write there or choose "
                          "another file.path",
            errno.EPERM: "operation not permitted; let the collector's user write there or "
                         "choose another file.path",
            errno.EROFS: "the file system is read-only; choose another file.path",
            errno.ENOENT: "its directory does not exist; create it or choose another file.path",
            errno.ENOTDIR: "a part of the path is not a directory; choose another file.path",
            errno.EISDIR: "it is a directory; file.path must name a file",
            errno.ENOSPC: "no space left on the device; free some or choose another file.path",
        }.get(exc.errno or 0, f"{exc.strerror}; check file.path")
        return f"file sink: cannot open {self.path}: {why}"

    def _fresh_start(self) -> bytes:
        """What a new file starts with: nothing, or the Avro header (the sync marker of
        the previous file when there was one)."""
        if self.format == "jsonl":
            return b""
        previous = self._ocf.sync if self._ocf is not None else None
        return OcfFraming(self.codec, previous or os.urandom(16), self.shape.parsed_schema).header

    def _move_active_aside(self) -> Path:
        """The active file under its rotated name, a new one at the path."""
        try:
            moved = self.rotation.link_away()
        except OSError as exc:
            if exc.errno not in NO_HARD_LINKS:
                raise
            return self.rotation.rename()  # no hard links here: a moment with no file
        try:
            self.appender.replace_with(self._fresh_start())
        except OSError:
            os.unlink(moved)
            raise
        self.appender.sync_dir()
        return moved

    def _open_active(self) -> None:
        fd = self.appender.create_or_open(initial=self._fresh_start())
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SinkError(f"file sink: {self.path} is not a regular file; file.path must "
                                "name a file")
            if self.format == "jsonl":
                size = os.fstat(fd).st_size
                self._cut(fd, size, jsonl_good_end(fd, size))
            else:
                fd = self._prepare_avro(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._opened_at = self._clock()

    def _cut(self, fd: int, size: int, good: int) -> None:
        """Cut a torn tail (a write cut short by SIGKILL) before appending."""
        if good >= size:
            return
        os.ftruncate(fd, good)
        self.repaired_bytes += size - good
        log.warning("file sink: %s ended in %d bytes of an incomplete write (the collector "
                    "was killed?); cut them off", self.path, size - good)

    def _prepare_avro(self, fd: int) -> int:
        """Continue an existing container file (same schema and codec) after cutting a
        torn last block, or move a different one aside; write the header of a new one."""
        size = os.fstat(fd).st_size
        sync = None
        if size:
            with os.fdopen(os.dup(fd), "rb") as f:
                found = read_ocf(f, size)
            if found is None:
                if os.pread(fd, 4, 0) != AVRO_MAGIC[: min(4, size)]:
                    raise SinkError(f"file sink: {self.path} exists and is not an Avro object "
                                    "container file; move it away or choose another file.path")
                self._cut(fd, size, 0)  # a header cut short: no events in it
            elif found.schema_form != schema_form(self.shape.raw_schema) or found.codec != self.codec:
                log.warning("file sink: %s was written with another schema or codec; "
                            "rotating it away", self.path)
                self._cut(fd, size, found.good_end)
                self.rotation.rename()  # fd stays valid: the caller closes it on failure
                new = self.appender.create_or_open(initial=self._fresh_start())
                os.close(fd)
                fd = new
                size = os.fstat(fd).st_size
                if size:  # the new file's header: its blocks must carry that sync marker
                    with os.fdopen(os.dup(fd), "rb") as f:
                        fresh = read_ocf(f, size)
                    sync = fresh.sync if fresh is not None else None
            else:
                sync = found.sync
                self._cut(fd, size, found.good_end)
        previous = self._ocf.sync if self._ocf is not None else None
        self._ocf = OcfFraming(self.codec, sync or previous or os.urandom(16),
                               self.shape.parsed_schema)
        if os.fstat(fd).st_size == 0:
            try:  # so that a file with no events yet is a valid, empty container
                self.appender.append(fd, 0, self._ocf.header)
            except TransientSinkError:
                pass  # e.g. ENOSPC: the header goes out with the first batch instead
        return fd

    # -- writing ----------------------------------------------------------------------------

    def _active_fd(self) -> int:
        if self._fd is None:
            try:
                self._open_active()
            except OSError as exc:
                raise TransientSinkError(self._open_problem(exc)) from None
        assert self._fd is not None
        return self._fd

    def _frame(self, batch: Sequence[Any]) -> bytes:
        """The batch as one piece: its lines, or one OCF block. Items are what encode
        returned; an event dict (a caller that skipped encode) is encoded here, and
        one that does not fit the schema fails the batch."""
        if self.format == "jsonl":
            return b"".join(batch)
        assert self._ocf is not None
        try:
            datums = [x if type(x) is bytes else self.shape.datum(x) for x in batch]
        except Exception as exc:  # fastavro raises several kinds for a bad datum
            raise SinkError(f"file sink: an event does not match schemas/{self.shape.schema_file} "
                            f"({exc}); this is a bug in the collector") from None
        return self._ocf.block(datums)

    def _rotate(self) -> None:
        fd = self._fd
        assert fd is not None
        try:
            self.appender.sync_before_leaving(fd)
            moved = None
            if same_file(self.path, fd):
                moved = self._move_active_aside()
            self._fd = None
            try:
                self._open_active()
            except OSError:
                if moved is not None:  # put it back: keep writing where we were
                    os.rename(moved, self.path)
                self._fd = fd
                raise
        except OSError as exc:
            self.appender.write_errors += 1
            raise TransientSinkError(f"file sink: rotating {self.path} failed: {exc.strerror}; "
                                     "will retry") from None
        os.close(fd)
        self.rotation.rotated_away(moved)
