"""collector.encode.avro's schema-derived encoder writes exactly fastavro's bytes.

Events are made the way the collector makes them (raw kernel-layout records
→ decode → ProcessCache, hostile text included), plus hand-made variants
for every branch: nulls and non-nulls, signals, ancestors, namespaces,
values the plan hands to fastavro (datetimes, bools, tuples), and events
that do not fit the schema at all. The file sink's blocks are compared with
fastavro's own Writer, and the files are read back by the Apache library.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import os
import time
import warnings
from pathlib import Path
from typing import Any

import avro.datafile
import avro.errors
import avro.io
import fastavro
import pytest
from fastavro.write import Writer

from collector.clock import BootClock
from collector.decode import ExecRecord, ExitRecord, ForkRecord, decode
from collector.encode import avro as enc
from collector.enrich.process_cache import ProcessCache
from collector.probe.layout import EXEC_FIXED, EXIT_EVENT, FORK_EVENT, EventKind
from collector.schema import SharedRecord, parsed_schema
from sinks.file import FileSink

HOSTILE = [b"/usr/bin/true", b"caf\xc3\xa9", b"bad \xff\xfe utf8", b"line\nbreak", b'say "hi"',
           b"tab\there", b"x" * 3000, "日本語".encode(), b""]


def _path(p: bytes) -> bytes:
    return b"".join(c + b"\0" for c in reversed(p.strip(b"/").split(b"/")))


def _exec(pid: int, ppid: int, t: int, start: int, args: list[bytes]) -> bytes:
    b, c = _path(b"/usr/bin/tr\xffue"), _path(b"/tmp")
    a = b"".join(x + b"\0" for x in args)
    fixed = EXEC_FIXED.pack(EventKind.EXEC, 0, t, pid, pid, ppid, 0, start, 1, b"tr\xffue",
                            1000, 0, 1000, 0, 0xFFFFFFFF if pid % 2 else 1000, 0, len(b), len(c),
                            len(a), len(a))
    return fixed + b + c + a


def make_events(n: int, **cache_options: Any) -> list[dict[str, Any]]:
    """exec, exit pairs (exit status, signal, core dump) under this test process."""
    cache = ProcessCache("test-node", BootClock(), **cache_options)
    t = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - 10**9
    me = os.getpid()
    out: list[dict[str, Any]] = []
    for i in range(n):
        pid = 300_000 + i
        fork = decode(FORK_EVENT.pack(EventKind.FORK, FORK_EVENT.size, t + i, pid, pid, me, 0,
                                      t + i, 1, b"python"))
        assert isinstance(fork, ForkRecord)
        cache.on_fork(fork)
        rec = decode(_exec(pid, me, t + i + 1, t + i, [*HOSTILE, str(i).encode()]))
        assert isinstance(rec, ExecRecord)
        out.append(cache.on_exec(rec))
        status = [0, 3 << 8, 9, 0x80 | 6, 64 + 34][i % 5]  # exit 0, exit 3, KILL, ABRT+core, RT
        tid = pid if i % 3 else pid + 1  # the last thread is not always the leader
        ex = decode(EXIT_EVENT.pack(EventKind.EXIT, EXIT_EVENT.size, t + i + 5, pid, tid,
                                    me if i % 4 else 1, 0, t + i, 1, b"true", status, 0))
        assert isinstance(ex, ExitRecord)
        out.append(cache.on_exit(ex))
    return out


EVENTS = make_events(60)
DEEP = make_events(10, ancestors=3, namespaces=True)


def variants() -> list[dict[str, Any]]:
    """Hand-made events covering every field's branches."""
    base = copy.deepcopy(EVENTS[1])  # an exit: plain dicts, no cached encodings
    out = []
    e = copy.deepcopy(base)
    e["parent"] = None
    e["process"]["user"] = None
    e["process"]["parent_exec_id"] = None
    e["process"]["container_id"] = "ab" * 32
    e["process"]["cgroup_id"] = None
    e["process"]["args"] = []
    e["process"]["flags"] = []
    out.append(e)
    e = copy.deepcopy(base)
    e["process"]["namespaces"] = {"cgroup": 4026531835, "ipc": None, "mnt": 1, "net": 2**40,
                                  "pid": 0, "time": None, "user": 63, "uts": 64}
    e["ancestors"] = [copy.deepcopy(base["process"]), copy.deepcopy(base["parent"])]
    out.append(e)
    e = copy.deepcopy(base)
    e["ancestors"] = []
    e["exit_code"], e["signal"], e["core_dumped"], e["duration_ns"] = None, "SIGRTMIN+2", True, 0
    out.append(e)
    e = copy.deepcopy(base)  # Linux ids are unsigned 32-bit: beyond an Avro int
    e["process"]["uid"], e["process"]["euid"] = 2**32 - 1, 3_000_000_000
    e["parent"]["gid"], e["parent"]["auid"] = 3_000_000_000, 2**32 - 2
    out.append(e)
    for value in (0, 1, -1, 63, 64, -64, -65, 8191, 8192, 2**31 - 1, -(2**31), 2**62,
                  2**63 - 1, -(2**63)):
        e = copy.deepcopy(base)
        e["time"] = value
        e["duration_ns"] = value
        e["process"]["pid"] = value
        out.append(e)
    return out


def _all() -> list[dict[str, Any]]:
    return [*EVENTS, *DEEP, *variants()]


def test_datum_is_fastavros_encoding_byte_for_byte() -> None:
    for e in _all():
        assert enc.datum(e) == enc.slow_datum(e), e
        assert enc.datum(e) == enc.slow_datum(e), e  # again: the cached Process encodings
        assert enc.decode_datum(enc.datum(e)) == e


def test_shared_records_are_encoded_once_plain_dicts_never_cached() -> None:
    exec_event, exit_event = make_events(1)
    process = exec_event["process"]
    assert type(process) is SharedRecord and type(exec_event["parent"]) is SharedRecord
    first = enc.datum(exec_event)
    assert process.avro_datum and process.avro_datum in first
    assert enc.datum(exit_event) == enc.slow_datum(exit_event)
    plain = dict(process)
    plain["comm"] = "changed"
    event = dict(exec_event, process=plain)
    assert enc.datum(event) == enc.slow_datum(event) != first
    assert not hasattr(plain, "avro_datum")


def test_values_the_plan_leaves_to_fastavro() -> None:
    base = copy.deepcopy(EVENTS[0])
    cases = []
    e = copy.deepcopy(base)
    e["parent"] = ("io.processcollector.Process", e["parent"])  # fastavro's union notation
    cases.append(e)
    e = copy.deepcopy(base)
    e["process"]["args_truncated"] = 0  # not a bool: fastavro decides
    cases.append(e)
    for e in cases:
        assert enc.datum(e) == enc.slow_datum(e)


@pytest.mark.parametrize("change", [
    lambda e: e.pop("node"),
    lambda e: e.__setitem__("event_type", "process_fork"),
    lambda e: e["process"].__setitem__("pid", "12"),
    lambda e: e.__setitem__("time", 2**64),
    lambda e: e.__setitem__("time", dt.datetime(2026, 11, 25, tzinfo=dt.UTC)),
    lambda e: e["process"].__setitem__("args", ["ok", None]),
    lambda e: e["parent"].__setitem__("pid", 2**31),  # an Avro int is 32 bits
    lambda e: e["parent"].__setitem__("ppid", -(2**31) - 1),
])
def test_an_event_that_does_not_fit_fails_as_fastavro_fails(change: Any) -> None:
    """Off the plan, fastavro decides: the same error, or the same bytes."""
    e = copy.deepcopy(EVENTS[0])
    change(e)
    try:
        expected: Any = enc.slow_datum(e)
    except Exception as exc:
        expected = type(exc)
    try:
        got: Any = enc.datum(e)
    except Exception as exc:
        got = type(exc)
    assert got == expected


@pytest.mark.parametrize("n", [0, 1, -1, 63, 64, -64, -65, 127, 128, 8191, 8192, 16383, 16384,
                               2**21, 2**28 - 1, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63)])
def test_varint(n: int) -> None:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, {"type": "long"}, n)
    assert enc.zigzag_varint(n) == buf.getvalue()
    assert enc.zigzag_varint(n) == buf.getvalue()  # remembered


def _read_apache(p: Path) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", avro.errors.IgnoredLogicalType)
        with open(p, "rb") as f, avro.datafile.DataFileReader(f, avro.io.DatumReader()) as r:
            return list(r)


@pytest.mark.parametrize("codec", ["null", "deflate", "zstandard", "snappy"])
def test_file_blocks_are_fastavro_writers_blocks(tmp_path: Path, codec: str) -> None:
    events = _all()
    p = tmp_path / "events.avro"
    sink = FileSink({"path": str(p), "format": "avro", "avro_codec": codec})
    sink.open()
    for i in range(0, len(events), 25):
        sink.write_batch([sink.encode(e) for e in events[i : i + 25]])
    sink.close()
    assert sink._sync is not None
    ref = io.BytesIO()
    w = Writer(ref, parsed_schema(), codec=codec, sync_interval=1 << 62, sync_marker=sink._sync)
    for i in range(0, len(events), 25):
        for e in events[i : i + 25]:
            w.write(e)
        w.flush()
    assert p.read_bytes() == ref.getvalue()
    with open(p, "rb") as f:
        assert list(fastavro.reader(f)) == events
    assert _read_apache(p) == events
