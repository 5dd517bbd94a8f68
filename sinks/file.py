"""The file sink: JSON lines or Avro object container files, rotated.

Why it is built this way:

- One batch is one write(2) at the end of the file, opened O_APPEND. If the
  write (or its fsync) fails part-way, e.g. ENOSPC, the file is truncated
  back to its size before the batch and TransientSinkError is raised: the
  worker backs off and retries, and a reader never sees half a JSON line or
  half an Avro block. After SIGKILL only the very last write can be cut;
  opening the file again (start, SIGHUP) cuts that tail off before
  appending, so a file is readable up to its last complete line / block.
- Avro: one batch is one Object Container File block (the record count,
  the datums compressed by fastavro's block writer for the file's codec,
  the sync marker), so a reader can stop at any block boundary. Each event
  is encoded by collector.encode.avro.datum on the worker thread (encode),
  so an event that does not fit the schema is counted and dropped by the
  worker, like a JSON line that cannot be encoded. A file always starts with its header; an existing file
  with another schema or codec is rotated away instead of appended to.
- Rotation, by size (`max_bytes`, checked before each batch so a file only
  grows past it when one batch alone is larger) or age (`max_age_s`, from
  when the collector opened the file; checked when a batch is written),
  renames the active file in place and starts a new one at `path`:

      events.jsonl  →  events.20261125T183000Z-000001.jsonl[.gz]
      events.avro   →  events.20261125T183000Z-000002.avro

  i.e. <stem>.<UTC time of rotation>-<sequence><suffix>. The sequence
  continues across restarts, so sorting names sorts by age, the
  extension stays last (tools and shippers recognise .jsonl/.avro/.gz),
  and a shipper following `events.jsonl` by inode reads a rotated file
  to its end. `retain` rotated files are kept; older ones are deleted.
- gzip of rotated JSON-lines files runs on a background thread (writing
  goes on meanwhile) into `<name>.gz.tmp`, which is fsynced and renamed to
  `<name>.gz` before the plain file is removed, so a crash never leaves a
  half-written .gz as the only copy; leftovers are tidied at the next open.
- Files are created with `mode` (default 0640) whatever the umask.
- fsync: `batch` syncs before write_batch returns (returning means durable),
  `interval` at most every `fsync_interval_s` (and on flush), `never`
  leaves it to the kernel.
- A missing directory or a path that cannot be created at start is a fatal
  SinkError (the collector exits at start with one line); the same problem
  later (rotation, SIGHUP) is transient: retried, the old file kept.
"""

from __future__ import annotations

import errno
import functools
import gzip
import io
import json
import logging
import os
import queue
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import fastavro
from fastavro._write import BLOCK_WRITERS  # type: ignore[attr-defined]  # not in its .pyi
from fastavro.schema import to_parsing_canonical_form
from fastavro.write import Writer

from collector import shapes
from collector.encode.avro import zigzag_varint
from collector.errors import SinkError, UsageError
from sinks.base import Event, Sink, TransientSinkError

log = logging.getLogger("collector.sink.file")

FORMATS = ("jsonl", "avro")
CODECS = ("null", "deflate", "zstandard", "snappy")
FSYNC_POLICIES = ("never", "batch", "interval")

AVRO_MAGIC = b"Obj\x01"
# The OCF header as the Avro spec defines it, read with fastavro itself.
_OCF_HEADER = fastavro.parse_schema({
    "type": "record", "name": "org.apache.avro.file.Header", "fields": [
        {"name": "magic", "type": {"type": "fixed", "name": "Magic", "size": 4}},
        {"name": "meta", "type": {"type": "map", "values": "bytes"}},
        {"name": "sync", "type": {"type": "fixed", "name": "Sync", "size": 16}},
    ]})
_NO_BLOCK_LIMIT = 1 << 62  # the header writer's buffer is never cut into blocks
REOPEN_RETRY_S = 10.0  # after a failed SIGHUP reopen, try again this often (between batches)


def _codec_usable(codec: str) -> str | None:
    """None if fastavro can write `codec` here, else why not (its own words)."""
    probe = {"type": "record", "name": "Probe", "fields": [{"name": "a", "type": "int"}]}
    try:
        fastavro.writer(io.BytesIO(), probe, [{"a": 1}], codec=codec)
    except ValueError as exc:
        return str(exc)
    return None


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


class FileSink(Sink):
    """Events to a local file; see the module docstring."""

    name = "file"

    def __init__(
        self,
        path: str | Path,
        *,
        fmt: str = "jsonl",
        avro_codec: str = "deflate",
        max_bytes: int = 100 << 20,
        max_age_s: float = 0.0,
        retain: int = 10,
        gzip_rotated: bool = False,
        mode: int = 0o640,
        fsync: str = "batch",
        fsync_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        schema: str = "native",
    ) -> None:
        self.shape = shapes.get(schema)  # the record shape written (collector.shapes)
        if fmt not in FORMATS:
            raise UsageError(f"config key file.format: '{fmt}' is not valid; expected one of "
                             + ", ".join(FORMATS))
        if fsync not in FSYNC_POLICIES:
            raise UsageError(f"config key file.fsync: '{fsync}' is not valid; expected one of "
                             + ", ".join(FSYNC_POLICIES))
        if fmt == "avro":
            if avro_codec not in CODECS:
                raise UsageError(f"config key file.avro_codec: '{avro_codec}' is not valid; "
                                 "expected one of " + ", ".join(CODECS))
            why = _codec_usable(avro_codec)
            if why is not None:
                raise UsageError(f"config key file.avro_codec: '{avro_codec}' cannot be used "
                                 f"here ({why}); install it or choose null or deflate")
            if gzip_rotated:
                raise UsageError("config key file.gzip: applies to jsonl files only; Avro "
                                 "blocks are compressed by file.avro_codec")
        self.path = Path(path)
        self.format = fmt
        self.codec = avro_codec
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.retain = retain
        self.gzip = gzip_rotated
        self.mode = mode
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self._clock = clock
        #: the worker calls flush() after this long idle, so `interval` holds without traffic
        self.idle_flush_s = fsync_interval_s if fsync == "interval" else None
        name = self.path.name
        stem, dot, ext = name.rpartition(".")
        self._stem, self._suffix = (stem, dot + ext) if stem else (name, "")
        self._rotated_re = re.compile(
            re.escape(self._stem) + r"\.(\d{8}T\d{6}Z)-(\d{6,})" + re.escape(self._suffix)
            + r"(\.gz)?(\.tmp)?$")
        self._fd: int | None = None
        self._opened_at = 0.0
        self._unsynced = False
        self._last_sync = 0.0
        self._seq = 0
        self._reopen_pending = False
        self._reopen_retry_at = 0.0
        self._jobs: _Jobs | None = None
        # Avro state: the codec's block writer and the header of the active file
        self._avro_buf = io.BytesIO()
        self._block_writer = BLOCK_WRITERS.get(avro_codec) if fmt == "avro" else None
        self._header = b""
        self._sync: bytes | None = None
        encoder = self.shape.json_encoder() if fmt == "jsonl" else self.shape.datum_encoder()
        self.encode = encoder  # type: ignore[method-assign,assignment]
        # counters shown on the stats line
        self.rotations = 0
        self.repaired_bytes = 0  # cut from a torn tail (SIGKILL) when reopening a file
        self.write_errors = 0
        self.gzipped = 0
        self.gzip_failed = 0
        self.deleted = 0

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> FileSink:
        """From cfg.section("file"); the pipeline keys (queue_*, batch_*, ...) are the worker's."""
        path = section.get("path") or ""
        if not path:
            raise UsageError("config key file.path: required with --sink file (--file-path PATH)")
        mode_text = str(section.get("mode", "0640"))
        try:
            mode = int(mode_text, 8)
        except ValueError:
            raise UsageError(f"config key file.mode: '{mode_text}' is not valid; expected an "
                             "octal file mode such as 0640") from None
        return cls(
            path,
            fmt=section.get("format", "jsonl"),
            avro_codec=section.get("avro_codec", "deflate"),
            max_bytes=int(section.get("max_bytes", 100 << 20)),
            max_age_s=float(section.get("max_age_s", 0.0)),
            retain=int(section.get("retain", 10)),
            gzip_rotated=bool(section.get("gzip", False)),
            mode=mode,
            fsync=section.get("fsync", "batch"),
            fsync_interval_s=float(section.get("fsync_interval_s", 1.0)),
            schema=section.get("schema") or "native",
        )

    # -- the Sink interface -------------------------------------------------------

    def open(self) -> None:
        """Open (or create) the file at start: any failure here is fatal."""
        self._check_directory()
        self._seq = self._max_seq()
        try:
            self._open_active()
        except OSError as exc:
            raise SinkError(self._open_problem(exc)) from None
        self._tidy()

    def encode(self, event: Event) -> bytes:
        # one JSON line, or one Avro datum (write_batch frames a block of them);
        # __init__ binds self.encode to the right one, a call less per event
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
        data = b"".join(batch) if self.format == "jsonl" else self._avro_block(batch)
        size = os.fstat(fd).st_size
        if self._should_rotate(size, len(data)):
            sync = self._sync_marker()
            self._rotate()
            fd = self._active_fd()
            size = os.fstat(fd).st_size
            if self._sync_marker() != sync:  # appending to a file with its own marker
                data = self._avro_block(batch)
        if size == 0 and self._header:
            data = self._header + data  # the file was emptied under us (copytruncate)
        self._append(fd, size, data)

    def flush(self) -> None:
        if self._fd is not None and self._unsynced and self.fsync != "never":
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                raise TransientSinkError(f"file sink: fsync of {self.path} failed: "
                                         f"{exc.strerror}") from None
            self._unsynced = False
            self._last_sync = time.monotonic()

    def reopen(self) -> None:
        """SIGHUP: logrotate moved (or removed) the file; start again at `path`.

        The new file is opened before the old one is closed, so a failure
        leaves the sink writing where it was (retried at the next batch)."""
        old = self._fd
        if old is not None and _same_file(self.path, old):
            self._reopen_pending = False
            return  # nobody moved it: carry on with the file as it is
        try:
            if old is not None and self.fsync != "never":
                os.fdatasync(old)
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
        self._unsynced = False
        log.info("file sink: reopened %s", self.path)

    def close(self) -> None:
        try:
            self.flush()
        except TransientSinkError as exc:
            log.error("%s", exc)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._jobs is not None:
            self._jobs.close(timeout=60.0)
            self._jobs = None

    def health(self) -> dict[str, Any]:
        return {
            "rotations": self.rotations,
            "repaired_bytes": self.repaired_bytes,
            "write_errors": self.write_errors,
            "gzipped": self.gzipped,
            "gzip_failed": self.gzip_failed,
            "deleted": self.deleted,
        }

    # -- opening --------------------------------------------------------------------

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

    def _create_or_open(self) -> int:
        """O_APPEND fd of `path`; a new file gets `mode` exactly (fchmod: umask-proof)."""
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
        while True:
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, self.mode)
            except FileExistsError:
                try:
                    return os.open(self.path, flags)
                except FileNotFoundError:
                    continue  # removed between the two calls: create it
            try:
                os.fchmod(fd, self.mode)
            except OSError:
                os.close(fd)
                raise
            self._sync_dir()
            return fd

    def _open_active(self) -> None:
        fd = self._create_or_open()
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SinkError(f"file sink: {self.path} is not a regular file; file.path must "
                                "name a file")
            if self.format == "jsonl":
                self._repair_jsonl(fd)
            else:
                fd = self._prepare_avro(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._opened_at = self._clock()

    def _repair_jsonl(self, fd: int) -> None:
        """Cut a torn last line (a write cut short by SIGKILL) before appending."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        end = size
        while end > 0:
            start = max(0, end - 65536)
            chunk = os.pread(fd, end - start, start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                self._cut(fd, size, start + nl + 1)
                return
            end = start
        self._cut(fd, size, 0)

    def _cut(self, fd: int, size: int, good: int) -> None:
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
                found = _read_ocf(f, size)
            if found is None:
                if os.pread(fd, 4, 0) != AVRO_MAGIC[: min(4, size)]:
                    raise SinkError(f"file sink: {self.path} exists and is not an Avro object "
                                    "container file; move it away or choose another file.path")
                self._cut(fd, size, 0)  # a header cut short: no events in it
            elif found[0] != self._schema_form() or found[1] != self.codec:
                log.warning("file sink: %s was written with another schema or codec; "
                            "rotating it away", self.path)
                if found[3] < size:
                    self._cut(fd, size, found[3])
                self._rename_rotated()  # fd stays valid: the caller closes it on failure
                new = self._create_or_open()
                os.close(fd)
                fd = new
            else:
                sync = found[2]
                if found[3] < size:
                    self._cut(fd, size, found[3])
        self._new_block_writer(sync or self._sync_marker() or os.urandom(16))
        if os.fstat(fd).st_size == 0:
            try:  # so that a file with no events yet is a valid, empty container
                self._append(fd, 0, self._header)
            except TransientSinkError:
                pass  # e.g. ENOSPC: the header goes out with the first batch instead
        return fd

    def _schema_form(self) -> str:
        return to_parsing_canonical_form(self.shape.raw_schema)

    def _sync_marker(self) -> bytes | None:
        return self._sync

    def _new_block_writer(self, sync: bytes) -> None:
        """The container header for this sync marker (fastavro's Writer writes it),
        kept for new files; blocks are framed by _avro_block."""
        buf = io.BytesIO()
        Writer(buf, self.shape.parsed_schema, codec=self.codec, sync_interval=_NO_BLOCK_LIMIT,
               sync_marker=sync)
        self._sync = sync
        self._header = buf.getvalue()

    # -- writing ------------------------------------------------------------------------

    def _active_fd(self) -> int:
        if self._fd is None:
            try:
                self._open_active()
            except OSError as exc:
                raise TransientSinkError(self._open_problem(exc)) from None
        assert self._fd is not None
        return self._fd

    def _avro_block(self, batch: Sequence[Any]) -> bytes:
        """One OCF block: record count, the codec's (size, data), sync marker.

        Items are datums from encode(); an event dict (a caller that skipped
        encode) is encoded here, and one that does not fit the schema fails
        the batch."""
        write_block = self._block_writer
        assert write_block is not None and self._sync is not None
        try:
            body = b"".join([x if type(x) is bytes else self.shape.datum(x) for x in batch])
        except Exception as exc:  # fastavro raises several kinds for a bad datum
            raise SinkError(f"file sink: an event does not match schemas/{self.shape.schema_file} "
                            f"({exc}); this is a bug in the collector") from None
        buf = self._avro_buf
        buf.seek(0)
        buf.truncate()
        buf.write(zigzag_varint(len(batch)))
        write_block(buf, body, None)  # the length of the (compressed) data, then the data
        buf.write(self._sync)
        return buf.getvalue()

    def _append(self, fd: int, good: int, data: bytes) -> None:
        """All of data at the end of the file, or the file as it was and an error."""
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            self._unsynced = True
            if self.fsync == "batch" or (
                    self.fsync == "interval"
                    and time.monotonic() - self._last_sync >= self.fsync_interval_s):
                os.fdatasync(fd)
                self._unsynced = False
                self._last_sync = time.monotonic()
        except OSError as exc:
            self.write_errors += 1
            try:
                os.ftruncate(fd, good)
            except OSError as trunc_exc:
                log.error("file sink: could not cut %s back to %d bytes after a failed write: "
                          "%s", self.path, good, trunc_exc.strerror)
            raise TransientSinkError(f"file sink: writing {self.path} failed: {exc.strerror}; "
                                     "the batch will be retried") from None

    # -- rotation and retention --------------------------------------------------------

    def _should_rotate(self, size: int, incoming: int) -> bool:
        if size <= len(self._header):
            return False  # nothing in it yet
        if self.max_bytes and size + incoming > self.max_bytes:
            return True
        return bool(self.max_age_s) and self._clock() - self._opened_at >= self.max_age_s

    def _rotate(self) -> None:
        fd = self._fd
        assert fd is not None
        try:
            if self.fsync != "never":
                os.fdatasync(fd)
            moved = None
            if _same_file(self.path, fd):
                moved = self._rename_rotated()
            self._fd = None
            try:
                self._open_active()
            except OSError:
                if moved is not None:  # put it back: keep writing where we were
                    os.rename(moved, self.path)
                self._fd = fd
                raise
        except OSError as exc:
            self.write_errors += 1
            raise TransientSinkError(f"file sink: rotating {self.path} failed: {exc.strerror}; "
                                     "will retry") from None
        os.close(fd)
        self.rotations += 1
        self._unsynced = False
        if moved is not None and self.gzip:
            self._background(functools.partial(self._gzip, moved))
        self._background(self._prune)

    def _rename_rotated(self) -> Path:
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        target = self.path.with_name(f"{self._stem}.{stamp}-{self._seq:06d}{self._suffix}")
        os.rename(self.path, target)
        self._sync_dir()
        return target

    def _rotated(self) -> list[tuple[int, Path, bool, bool]]:
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

    def _max_seq(self) -> int:
        return max((seq for seq, *_ in self._rotated()), default=0)

    def _tidy(self) -> None:
        """After a crash: drop unfinished .gz.tmp files and plain files whose .gz is
        complete; compress what was left uncompressed; apply retention."""
        found = self._rotated()
        done = {p for _, p, gz, tmp in found if gz and not tmp}
        for _, p, gz, tmp in found:
            if tmp or (not gz and p.with_name(p.name + ".gz") in done):
                _unlink(p)
            elif not gz and self.gzip:
                self._background(functools.partial(self._gzip, p))
        self._background(self._prune)

    def _background(self, job: Callable[[], None]) -> None:
        if self._jobs is None:
            self._jobs = _Jobs()
        self._jobs.submit(job)

    def _gzip(self, plain: Path) -> None:
        final = plain.with_name(plain.name + ".gz")
        tmp = plain.with_name(plain.name + ".gz.tmp")
        if not plain.exists():
            return  # retention removed it already
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, self.mode)
            os.fchmod(fd, self.mode)
            with open(plain, "rb") as src, os.fdopen(fd, "wb") as raw:
                mtime = int(os.fstat(src.fileno()).st_mtime)
                with gzip.GzipFile(filename=plain.name, mode="wb", fileobj=raw, mtime=mtime) as gz:
                    shutil.copyfileobj(src, gz, 1 << 20)
                raw.flush()
                if self.fsync != "never":
                    os.fsync(raw.fileno())
            os.rename(tmp, final)
            os.unlink(plain)
            self._sync_dir()
            self.gzipped += 1
        except OSError as exc:
            self.gzip_failed += 1
            _unlink(tmp)
            log.warning("file sink: gzip of %s failed (%s); kept it uncompressed", plain,
                        exc.strerror)

    def _prune(self) -> None:
        seqs = sorted({seq for seq, _, _, tmp in self._rotated() if not tmp})
        old = set(seqs[: max(0, len(seqs) - self.retain)])
        for seq, p, _, tmp in self._rotated():
            if seq in old and not tmp:
                if _unlink(p):
                    self.deleted += 1

    def _sync_dir(self) -> None:
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


def _same_file(path: Path, fd: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _unlink(p: Path) -> bool:
    try:
        os.unlink(p)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("file sink: could not remove %s: %s", p, exc.strerror)
        return False
    return True


def _read_varlong(f: BinaryIO) -> int | None:
    """One zig-zag varint (Avro long), or None at a torn end."""
    shift = result = 0
    while True:
        b = f.read(1)
        if not b:
            return None
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7
        if shift > 63:
            return None


def _read_ocf(f: BinaryIO, size: int) -> tuple[str, str, bytes, int] | None:
    """(schema canonical form, codec, sync marker, end of the last complete block) of
    an Avro container file, or None when even its header is incomplete or foreign."""
    try:
        header = fastavro.schemaless_reader(f, _OCF_HEADER, None)
    except Exception:  # EOF or garbage inside the header: fastavro raises several kinds
        return None
    if not isinstance(header, dict) or header.get("magic") != AVRO_MAGIC:
        return None
    meta = header["meta"]
    try:
        schema = to_parsing_canonical_form(json.loads(meta["avro.schema"]))
    except (KeyError, ValueError):
        return None
    codec = meta.get("avro.codec", b"null").decode()
    sync = header["sync"]
    good = f.tell()
    while good < size:
        count = _read_varlong(f)
        length = _read_varlong(f)
        if count is None or length is None or count < 0 or length < 0:
            break
        f.seek(length, os.SEEK_CUR)
        if f.tell() + 16 > size or f.read(16) != sync:
            break
        good = f.tell()
    return schema, codec, sync, good
