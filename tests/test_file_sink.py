"""The file sink on real files: formats, codecs, rotation, retention, gzip,
modes, torn tails, reopen, and a real full disk (a small tmpfs).

Events are made the way the collector makes them: raw records in the
kernel layout (collector.probe.layout) → decode → ProcessCache, with
hostile text in them (bytes that are not UTF-8, newlines, quotes, a long
argument). Avro files are read back by fastavro AND by the Apache Avro
library (an independent reader).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import avro.datafile
import avro.errors
import avro.io
import fastavro
import orjson
import pytest

from collector.clock import BootClock
from collector.decode import ExecRecord, ExitRecord, decode
from collector.encode.json import encode_json_line
from collector.enrich.process_cache import ProcessCache
from collector.errors import SinkError, UsageError
from collector.export import TransientSinkError
from collector.probe.layout import EXEC_FIXED, EXIT_EVENT, EventKind
from sinks.file import FileSink
from tests.support.small_fs import fill, small_tmpfs


def file_sink(path: Path | str, clock: Any = None, **options: Any) -> FileSink:
    """FileSink(options) with the option keys of config/collector.toml's [file]."""
    options["path"] = str(path)
    return FileSink(options) if clock is None else FileSink(options, clock=clock)


ROTATED = re.compile(r"^events\.(\d{8}T\d{6}Z)-(\d{6})\.(jsonl|avro)(\.gz)?$")


def _path_bytes(path: str) -> bytes:
    """A path as the BPF walk writes it: components leaf first, NUL-terminated."""
    return b"".join(p.encode() + b"\0" for p in reversed(path.strip("/").split("/")))


def raw_exec(pid: int, ppid: int, t: int, start: int, args: list[bytes], cwd: str = "/tmp") -> bytes:
    binary, cwd_b = _path_bytes("/usr/bin/true"), _path_bytes(cwd)
    argv = b"".join(a + b"\0" for a in args)
    fixed = EXEC_FIXED.pack(EventKind.EXEC, 0, t, pid, pid, ppid, 0, start, 77, b"true",
                            1000, 1000, 1000, 1000, 1000, 0, len(binary), len(cwd_b), len(argv),
                            len(argv))
    return fixed + binary + cwd_b + argv


def raw_exit(pid: int, ppid: int, t: int, start: int, status: int) -> bytes:
    return EXIT_EVENT.pack(EventKind.EXIT, EXIT_EVENT.size, t, pid, pid, ppid, 0, start, 77,
                           b"true", status, 0)


HOSTILE = [b"/usr/bin/true", b"caf\xc3\xa9", b"bad \xff\xfe utf8", b"line\nbreak",
           b'say "hi"', b"tab\there", b"x" * 3000]


def make_events(n: int, start_pid: int = 200_000) -> list[dict[str, Any]]:
    """n events (exec, exit, exec, exit, ...) built by the real decode + process cache."""
    cache = ProcessCache("test-node", BootClock())
    t = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - 10**9  # boot-clock times, as the kernel's
    me = os.getpid()  # a real parent, so `parent` is filled from /proc
    out = []
    for i in range(n):
        pid, start = start_pid + i // 2, t + i - i % 2
        if i % 2 == 0:
            rec = decode(raw_exec(pid, me, t + i, start, [*HOSTILE, str(i).encode()]))
            assert isinstance(rec, ExecRecord)
            out.append(cache.on_exec(rec))
        else:
            rec_exit = decode(raw_exit(pid, me, t + i, start, (i % 256) << 8))
            assert isinstance(rec_exit, ExitRecord)
            out.append(cache.on_exit(rec_exit))
    return out


EVENTS = make_events(400)


def write(sink: FileSink, events: list[dict[str, Any]], batch: int = 50) -> None:
    for i in range(0, len(events), batch):
        sink.write_batch([sink.encode(e) for e in events[i : i + batch]])


def read_jsonl(p: Path) -> list[dict[str, Any]]:
    data = gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


def read_avro_both(p: Path) -> list[dict[str, Any]]:
    """Records by fastavro; asserts the Apache Avro library reads the same."""
    with open(p, "rb") as f:
        ours = list(fastavro.reader(f))
    with warnings.catch_warnings():
        # avro 1.12 does not know timestamp-nanos yet and reads it as the long it is
        warnings.simplefilter("ignore", avro.errors.IgnoredLogicalType)
        with open(p, "rb") as f, avro.datafile.DataFileReader(f, avro.io.DatumReader()) as r:
            theirs = list(r)
    assert theirs == ours
    return ours


def as_json(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [orjson.loads(encode_json_line(e)) for e in events]


def rotated(d: Path) -> list[Path]:
    """Rotated files in rotation order (by sequence number)."""
    found = [(int(m.group(2)), d / n) for n in os.listdir(d) if (m := ROTATED.match(n))]
    return [p for _, p in sorted(found)]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of its own, so filling it fills nothing else."""
    with small_tmpfs(tmp_path, 2) as mnt:
        yield mnt


# -- formats and codecs ------------------------------------------------------------


def test_jsonl_lines_are_the_json_encoder_output(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    sink = file_sink(p, format="jsonl")
    sink.open()
    write(sink, EVENTS)
    sink.close()
    data = p.read_bytes()
    assert data == b"".join(encode_json_line(e) for e in EVENTS)
    lines = read_jsonl(p)
    assert len(lines) == 400
    args = lines[0]["process"]["args"]
    assert args[1:7] == ["café", "bad \\xff\\xfe utf8", "line\nbreak", 'say "hi"', "tab\there",
                         "x" * 3000]
    assert lines[1]["exit_code"] == 1 and lines[1]["event_type"] == "process_exit"
    assert lines[1]["process"]["args"] == lines[0]["process"]["args"]  # the exit of that exec


@pytest.mark.parametrize("codec", ["null", "deflate", "zstandard", "snappy"])
def test_avro_file_decodes_with_fastavro_and_apache_avro(tmp_path: Path, codec: str) -> None:
    p = tmp_path / "events.avro"
    sink = file_sink(p, format="avro", avro_codec=codec)
    sink.open()
    write(sink, EVENTS, batch=60)
    sink.close()
    records = read_avro_both(p)
    assert records == EVENTS  # every field, timestamps as int nanoseconds
    assert records[0]["process"]["args"][3] == "line\nbreak"
    with open(p, "rb") as f:
        blocks = list(fastavro.block_reader(f))
        assert [b.num_records for b in blocks] == [60] * 6 + [40]  # one batch, one block
    with open(p, "rb") as f:
        assert fastavro.reader(f).metadata["avro.codec"] == codec


def test_avro_file_with_no_events_is_a_valid_container(tmp_path: Path) -> None:
    p = tmp_path / "events.avro"
    sink = file_sink(p, format="avro")
    sink.open()
    sink.close()
    assert p.stat().st_size > 0
    assert read_avro_both(p) == []


def test_avro_file_carries_the_schema_from_schemas(tmp_path: Path) -> None:
    p = tmp_path / "events.avro"
    sink = file_sink(p, format="avro")
    sink.open()
    sink.close()
    with open(p, "rb") as f:
        schema = fastavro.reader(f).writer_schema
    from fastavro.schema import to_parsing_canonical_form

    from collector.schema import raw_schema
    assert to_parsing_canonical_form(schema) == to_parsing_canonical_form(raw_schema())


@pytest.mark.parametrize("mode", ["0640", "0600", "0644"])
def test_new_files_get_the_mode_whatever_the_umask(tmp_path: Path, mode: str) -> None:
    old = os.umask(0o077)
    try:
        sink = FileSink({"path": str(tmp_path / "events.jsonl"), "mode": mode,
                          "max_bytes": 30_000, "gzip": True})
        sink.open()
        write(sink, EVENTS[:100], batch=10)
        sink.close()
    finally:
        os.umask(old)
    files = [tmp_path / "events.jsonl", *rotated(tmp_path)]
    assert len(files) > 2 and files[-1].name.endswith(".jsonl.gz")
    for f in files:
        assert f.stat().st_mode & 0o7777 == int(mode, 8), f


# -- rotation, retention, gzip ------------------------------------------------------


def test_rotation_by_size_keeps_every_event_once_in_order(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    sink = file_sink(p, max_bytes=100_000, retain=100)
    sink.open()
    write(sink, EVENTS, batch=20)
    sink.close()
    files = rotated(tmp_path)
    batch_bytes = [len(b"".join(encode_json_line(e) for e in EVENTS[i : i + 20]))
                   for i in range(0, 400, 20)]
    assert max(batch_bytes) < 100_000
    for f in files:
        assert 100_000 - max(batch_bytes) < f.stat().st_size <= 100_000
    assert sink.rotations == len(files) and len(files) >= 4
    union = [e for f in [*files, p] for e in read_jsonl(f)]
    assert union == as_json(EVENTS)
    assert [int(ROTATED.match(f.name).group(2)) for f in files] == list(  # type: ignore[union-attr]
        range(1, len(files) + 1))


def test_avro_rotation_each_file_readable(tmp_path: Path) -> None:
    p = tmp_path / "events.avro"
    sink = file_sink(p, format="avro", avro_codec="null", max_bytes=150_000, retain=100)
    sink.open()
    write(sink, EVENTS, batch=25)
    sink.close()
    files = rotated(tmp_path)
    assert len(files) >= 3
    union = [r for f in [*files, p] for r in read_avro_both(f)]
    assert union == EVENTS
    for f in files:
        assert f.stat().st_size <= 150_000


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_the_path_always_holds_a_whole_file_across_rotations(tmp_path: Path, fmt: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A shipper following the path (or a crash at any moment) never finds it missing,
    nor an Avro file without its header: the new file is renamed over the old one."""
    p = tmp_path / f"events.{fmt}"
    (tmp_path / f".events.{fmt}.new").write_bytes(b"left by a crash")
    sink = file_sink(p, format=fmt, avro_codec="null", max_bytes=40_000, retain=100)
    sink.open()
    assert not (tmp_path / f".events.{fmt}.new").exists()
    if fmt == "avro":
        assert read_avro_both(p) == []  # a valid, empty container from the first moment
    seen: list[int] = []
    real_rename = os.rename

    def rename(src: Any, dst: Any) -> None:  # every rename at the path replaces a whole file
        if Path(dst) == p:
            assert p.exists()
            data = Path(src).read_bytes()
            seen.append(len(data))
            if fmt == "avro":
                assert read_avro_both(Path(src)) == []
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    write(sink, EVENTS, batch=25)
    sink.close()
    files = rotated(tmp_path)
    assert len(files) >= 3 and len(seen) == len(files)
    read = read_avro_both if fmt == "avro" else read_jsonl
    union = [r for f in [*files, p] for r in read(f)]
    assert union == (EVENTS if fmt == "avro" else as_json(EVENTS))
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []


def test_rotation_without_hard_links_still_loses_nothing(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system without link(2) (EPERM): rotation falls back to a rename."""
    def no_link(src: Any, dst: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    p = tmp_path / "events.avro"
    sink = file_sink(p, format="avro", avro_codec="null", max_bytes=40_000, retain=100)
    sink.open()
    write(sink, EVENTS, batch=25)
    sink.close()
    files = rotated(tmp_path)
    assert len(files) >= 3
    assert [r for f in [*files, p] for r in read_avro_both(f)] == EVENTS


def test_rotation_by_age(tmp_path: Path) -> None:
    now = [1_795_000_000.0]
    p = tmp_path / "events.jsonl"
    sink = file_sink(p, max_bytes=0, max_age_s=60, clock=lambda: now[0])
    sink.open()
    write(sink, EVENTS[:10], batch=10)
    now[0] += 59
    write(sink, EVENTS[10:20], batch=10)
    assert rotated(tmp_path) == []
    now[0] += 1
    write(sink, EVENTS[20:30], batch=10)
    sink.close()
    files = rotated(tmp_path)
    assert [f.name for f in files] == [f"events.{_stamp(now[0])}-000001.jsonl"]
    assert read_jsonl(files[0]) == as_json(EVENTS[:20])
    assert read_jsonl(p) == as_json(EVENTS[20:30])


def _stamp(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def test_retention_keeps_the_newest_rotated_files(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    sink = file_sink(p, max_bytes=20_000, retain=3)
    sink.open()
    write(sink, EVENTS, batch=5)
    sink.close()
    files = rotated(tmp_path)
    seqs = [int(ROTATED.match(f.name).group(2)) for f in files]  # type: ignore[union-attr]
    assert seqs == [sink.rotations - 2, sink.rotations - 1, sink.rotations]
    assert sink.deleted == sink.rotations - 3
    # what is kept is the tail of the stream, contiguous
    kept = [e for f in [*files, p] for e in read_jsonl(f)]
    assert kept == as_json(EVENTS)[-len(kept):]


def test_retain_zero_keeps_only_the_active_file(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    sink = file_sink(p, max_bytes=20_000, retain=0)
    sink.open()
    write(sink, EVENTS[:100], batch=5)
    sink.close()
    assert sorted(os.listdir(tmp_path)) == ["events.jsonl"]
    assert sink.rotations > 0 and sink.deleted == sink.rotations


def test_gzip_of_rotated_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    sink = file_sink(p, max_bytes=50_000, retain=100, gzip=True)
    sink.open()
    write(sink, EVENTS, batch=10)
    sink.close()  # waits for the background compression
    files = rotated(tmp_path)
    assert files and all(f.name.endswith(".jsonl.gz") for f in files)
    assert sink.gzipped == len(files) == sink.rotations and sink.gzip_failed == 0
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    union = [e for f in [*files, p] for e in read_jsonl(f)]
    assert union == as_json(EVENTS)
    with gzip.open(files[0]) as g:  # a stock reader, and the name inside is the plain one
        assert g.read(1) == b"{"
    assert gzip.GzipFile(files[0]).name.endswith(".gz")


def test_open_tidies_what_a_crash_left_and_continues_numbering(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    lines = b"".join(encode_json_line(e) for e in EVENTS[:5])
    done = tmp_path / "events.20261125T100000Z-000004.jsonl"  # compressed, not yet removed
    done.write_bytes(lines)
    (tmp_path / (done.name + ".gz")).write_bytes(gzip.compress(lines))
    half = tmp_path / "events.20261125T100100Z-000005.jsonl"  # its .gz.tmp was cut short
    half.write_bytes(lines)
    (tmp_path / (half.name + ".gz.tmp")).write_bytes(gzip.compress(lines)[:20])
    other = tmp_path / "other.20261125T100100Z-000009.jsonl"  # not ours: left alone
    other.write_bytes(b"x")
    sink = file_sink(p, max_bytes=10_000, retain=100, gzip=True)
    sink.open()
    write(sink, EVENTS[:20], batch=10)
    sink.close()
    names = sorted(os.listdir(tmp_path))
    assert [n for n in names if n.startswith("events.") and n != "events.jsonl"] == [
        "events.20261125T100000Z-000004.jsonl.gz",
        "events.20261125T100100Z-000005.jsonl.gz",
        *[f.name for f in rotated(tmp_path)][2:],
    ]
    assert ROTATED.match(rotated(tmp_path)[2].name).group(2) == "000006"  # type: ignore[union-attr]
    assert read_jsonl(tmp_path / "events.20261125T100100Z-000005.jsonl.gz") == as_json(EVENTS[:5])
    assert other.exists()


# -- torn tails (SIGKILL), existing files ---------------------------------------------


def test_jsonl_torn_last_line_is_cut_before_appending(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    good = b"".join(encode_json_line(e) for e in EVENTS[:3])
    p.write_bytes(good + encode_json_line(EVENTS[3])[:100])
    sink = file_sink(p)
    sink.open()
    assert sink.repaired_bytes == 100
    write(sink, EVENTS[4:6])
    sink.close()
    assert read_jsonl(p) == as_json(EVENTS[:3] + EVENTS[4:6])


def test_avro_torn_last_block_is_cut_before_appending(tmp_path: Path) -> None:
    p = tmp_path / "events.avro"
    sink = file_sink(p, format="avro")
    sink.open()
    write(sink, EVENTS[:90], batch=30)
    sink.close()
    whole = p.read_bytes()
    with open(p, "wb") as f:
        f.write(whole[:-40])  # the last block loses its end, as a killed write would
    with open(p, "rb") as f, pytest.raises(Exception):  # noqa: B017 - fastavro's own error types
        list(fastavro.reader(f))
    sink = file_sink(p, format="avro")
    sink.open()
    assert 0 < sink.repaired_bytes < len(whole)
    write(sink, EVENTS[90:100], batch=10)
    sink.close()
    assert read_avro_both(p) == EVENTS[:60] + EVENTS[90:100]


def test_avro_with_another_codec_is_rotated_away_not_mixed(tmp_path: Path) -> None:
    p = tmp_path / "events.avro"
    first = file_sink(p, format="avro", avro_codec="null")
    first.open()
    write(first, EVENTS[:10])
    first.close()
    second = file_sink(p, format="avro", avro_codec="deflate")
    second.open()
    write(second, EVENTS[10:20])
    second.close()
    (old,) = rotated(tmp_path)
    assert read_avro_both(old) == EVENTS[:10]
    assert read_avro_both(p) == EVENTS[10:20]


def test_avro_appends_to_its_own_file_across_restarts(tmp_path: Path) -> None:
    p = tmp_path / "events.avro"
    for part in range(3):
        sink = file_sink(p, format="avro")
        sink.open()
        write(sink, EVENTS[part * 10 : part * 10 + 10])
        sink.close()
    assert rotated(tmp_path) == []
    assert read_avro_both(p) == EVENTS[:30]


def test_a_foreign_file_at_the_avro_path_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "events.avro"
    p.write_text("precious notes\n")
    sink = file_sink(p, format="avro")
    with pytest.raises(SinkError, match="exists and is not an Avro object container file"):
        sink.open()
    assert p.read_text() == "precious notes\n"


# -- reopen (SIGHUP after logrotate) ---------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_reopen_after_the_file_was_moved_starts_a_new_file(tmp_path: Path, fmt: str) -> None:
    p = tmp_path / f"events.{fmt}"
    sink = file_sink(p, format=fmt)
    sink.open()
    write(sink, EVENTS[:20])
    moved = tmp_path / f"events.{fmt}.1"
    os.rename(p, moved)
    write(sink, EVENTS[20:30])  # still the moved file, as for any program before SIGHUP
    sink.reopen()
    assert p.exists() and p.stat().st_mode & 0o777 == 0o640
    write(sink, EVENTS[30:40])
    sink.close()
    if fmt == "jsonl":
        assert read_jsonl(moved) == as_json(EVENTS[:30])
        assert read_jsonl(p) == as_json(EVENTS[30:40])
    else:
        assert read_avro_both(moved) == EVENTS[:30]
        assert read_avro_both(p) == EVENTS[30:40]


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_reopen_when_nothing_moved_carries_on_in_the_same_file(tmp_path: Path, fmt: str) -> None:
    p = tmp_path / f"events.{fmt}"
    sink = file_sink(p, format=fmt)
    sink.open()
    write(sink, EVENTS[:10])
    inode = p.stat().st_ino
    sink.reopen()
    write(sink, EVENTS[10:20])
    sink.close()
    assert p.stat().st_ino == inode and sorted(os.listdir(tmp_path)) == [p.name]
    assert read_events_any(p) == (as_json(EVENTS[:20]) if fmt == "jsonl" else EVENTS[:20])


def test_reopen_onto_something_not_a_file_keeps_writing_to_the_old_one(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    sink = file_sink(p)
    sink.open()
    write(sink, EVENTS[:10])
    moved = tmp_path / "events.jsonl.1"
    p.rename(moved)
    os.mkfifo(p)  # what a bad logrotate rule could leave at the path
    with pytest.raises(TransientSinkError, match=r"is not a regular file; .*still writing to the "
                       r"old file"):
        sink.reopen()
    write(sink, EVENTS[10:20])  # the sink lives on, in the moved file
    sink.close()
    assert read_jsonl(moved) == as_json(EVENTS[:20])


def read_events_any(p: Path) -> list[dict[str, Any]]:
    return read_avro_both(p) if p.suffix == ".avro" else read_jsonl(p)


def test_copytruncate_gets_a_fresh_avro_header(tmp_path: Path) -> None:
    p = tmp_path / "events.avro"
    sink = file_sink(p, format="avro")
    sink.open()
    write(sink, EVENTS[:10])
    os.truncate(p, 0)  # logrotate copytruncate
    write(sink, EVENTS[10:20])
    sink.close()
    assert read_avro_both(p) == EVENTS[10:20]


# -- errors: at start fatal, later transient, a full disk ------------------------------


def test_open_errors_are_one_clear_line(tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing" / "events.jsonl": f"directory {tmp_path / 'missing'} does not exist",
        tmp_path: "is a directory; file.path must name a file",
    }
    (tmp_path / "plain").write_text("")
    cases[tmp_path / "plain" / "events.jsonl"] = "is not a directory"
    for path, words in cases.items():
        with pytest.raises(SinkError) as err:
            file_sink(path).open()
        assert words in str(err.value) and "\n" not in str(err.value)
        assert not isinstance(err.value, TransientSinkError)


def test_a_path_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    os.mkfifo(p)
    with pytest.raises(SinkError, match="is not a regular file"):
        file_sink(p).open()


def test_read_only_file_system_is_fatal_at_open(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=True)
    try:
        with pytest.raises(SinkError, match=r"cannot open .*: the file system is read-only"):
            file_sink(ro / "events.jsonl").open()
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=True)


@pytest.mark.parametrize(("section", "words"), [
    ({"path": ""}, "config key file.path: required"),
    ({"path": "x", "mode": "0999"}, "config key file.mode: '0999' is not valid"),
    ({"path": "x", "format": "csv"}, "config key file.format: 'csv' is not valid"),
    ({"path": "x", "fsync": "sometimes"}, "config key file.fsync: 'sometimes' is not valid"),
    ({"path": "x", "format": "avro", "avro_codec": "lzma"}, "file.avro_codec: 'lzma' is not valid"),
    ({"path": "x", "format": "avro", "gzip": True}, "file.gzip: applies to jsonl files only"),
])
def test_bad_settings_are_usage_errors(section: dict[str, Any], words: str) -> None:
    with pytest.raises(UsageError, match=re.escape(words)):
        FileSink(section)


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_full_disk_never_leaves_a_partial_write_and_resumes(tmpfs: Path, fmt: str) -> None:
    p = tmpfs / f"events.{fmt}"
    sink = file_sink(p, format=fmt, avro_codec="null")
    sink.open()
    write(sink, EVENTS[:20], batch=10)
    before = p.read_bytes()
    filler = fill(tmpfs)
    big = [sink.encode(e) for e in EVENTS[20:200]]  # ~700 KB: cannot fit
    with pytest.raises(TransientSinkError, match="No space left on device"):
        sink.write_batch(big)
    assert p.read_bytes() == before  # cut back to the last whole batch
    assert sink.write_errors == 1
    os.unlink(filler)
    sink.write_batch(big)  # the retry the worker would make
    sink.close()
    if fmt == "jsonl":
        assert read_jsonl(p) == as_json(EVENTS[:200])
    else:
        assert read_avro_both(p) == EVENTS[:200]


def test_full_disk_at_rotation_keeps_writing_to_the_old_file_later(tmpfs: Path) -> None:
    p = tmpfs / "events.jsonl"
    sink = file_sink(p, max_bytes=200_000, retain=10, gzip=True)
    sink.open()
    write(sink, EVENTS[:150], batch=30)
    filler = fill(tmpfs)
    with pytest.raises(TransientSinkError):
        write(sink, EVENTS[150:300], batch=30)
    os.unlink(filler)
    sink.close()
    files = [*rotated(tmpfs), p]
    union = [e for f in files for e in read_jsonl(f)]
    # exactly the whole batches written before the disk filled, nothing torn
    assert union == as_json(EVENTS)[: len(union)]
    assert len(union) % 30 == 0 and len(union) >= 150
    assert not [n for n in os.listdir(tmpfs) if n.endswith(".tmp")]


def test_codec_whose_library_is_missing_is_a_usage_error(tmp_path: Path) -> None:
    # a real absence: shadow the backports package that fastavro's zstandard codec needs
    shim = tmp_path / "shim" / "backports"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("")
    code = ("from sinks.file import FileSink\n"
            "FileSink({'path': '/tmp/x.avro', 'format': 'avro', 'avro_codec': 'zstandard'})\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'shim'}:{Path(__file__).parent.parent}"}
    run = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert ("config key file.avro_codec: 'zstandard' cannot be used here (zstandard codec is "
            "supported but you need to install one of the following libraries: "
            "('backports.zstd',)); install it or choose null or deflate") in run.stderr


def test_health_counters(tmp_path: Path) -> None:
    sink = file_sink(tmp_path / "events.jsonl", max_bytes=30_000, gzip=True)
    sink.open()
    write(sink, EVENTS[:100], batch=10)
    sink.close()
    h = sink.health()
    assert h["rotations"] == sink.rotations > 0
    assert h["gzipped"] == sink.rotations
    assert (h["gzip_failed"], h["write_errors"], h["repaired_bytes"]) == (0, 0, 0)
    assert json.dumps(h)  # plain values, fit for the stats line
