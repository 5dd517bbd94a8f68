"""collector._decode (C) against its reference, collector.decode.decode_py:
the same records, field by field and type by type, on hostile and extreme
records; the same DecodeError for bytes that are not a record."""

from __future__ import annotations

import dataclasses
import random
import tracemalloc
from typing import Any

import pytest

from collector import decode as d
from collector.decode import DecodeError, ExecRecord, ExitRecord, ForkRecord, TaskIds, decode_py
from collector.probe.layout import EXEC_FIXED, EXIT_EVENT, FORK_EVENT, EventKind, ExecFlags
from tests.unit.test_decode_fast import PIECES, hostile

native = d._NATIVE
U32, U64 = 2**32 - 1, 2**64 - 1


def test_the_package_was_built_with_it() -> None:
    assert d.NATIVE and d.decode is native


def shape(rec: Any) -> Any:
    """Every field with its type, nested records too (True == 1, but not here)."""
    if dataclasses.is_dataclass(rec):
        return (type(rec).__name__,
                tuple((f.name, shape(getattr(rec, f.name))) for f in dataclasses.fields(rec)))
    if isinstance(rec, list):
        return [shape(x) for x in rec]
    return (type(rec).__name__, rec)


def same(raw: bytes) -> Any:
    assert native is not None
    want = decode_py(raw)
    got = native(raw)
    assert shape(got) == shape(want), raw
    return got


def _task(rng: random.Random) -> tuple[int, ...]:
    return (rng.choice([0, 1, U32, rng.randrange(U32)]), rng.randrange(U32),
            rng.choice([0, U32, rng.randrange(U32)]), rng.randrange(U32),
            rng.choice([0, U64, rng.randrange(U64)]), rng.choice([0, U64, rng.randrange(U64)]))


def _exec(rng: random.Random) -> bytes:
    binary, cwd, argv = (hostile(rng, rng.randrange(0, 10)) for _ in range(3))
    comm = hostile(rng, rng.randrange(0, 6))[:16].ljust(16, b"\0")
    flags = rng.randrange(0, 32)
    fixed = EXEC_FIXED.pack(EventKind.EXEC, 0, rng.randrange(U64), *_task(rng), comm,
                            *(rng.choice([0, U32, rng.randrange(U32)]) for _ in range(4)),
                            rng.choice([U32, 0, rng.randrange(U32)]), flags, len(binary),
                            len(cwd), len(argv), rng.randrange(U32))
    tail = hostile(rng, rng.randrange(0, 3))  # bytes past the lengths: ignored by both
    return fixed + binary + cwd + argv + tail


def test_exec_records_are_the_references() -> None:
    rng = random.Random(15)
    for _ in range(3000):
        rec = same(_exec(rng))
        assert isinstance(rec, ExecRecord)


def test_exit_and_fork_records_are_the_references() -> None:
    rng = random.Random(16)
    for _ in range(2000):
        comm = hostile(rng, 4)[:16].ljust(16, b"\0")
        ex = EXIT_EVENT.pack(EventKind.EXIT, EXIT_EVENT.size, rng.randrange(U64), *_task(rng),
                             comm, rng.choice([0, 0x8B, U32, rng.randrange(U32)]), 0)
        assert isinstance(same(ex + b"\0" * rng.randrange(0, 9)), ExitRecord)
        fk = FORK_EVENT.pack(EventKind.FORK, FORK_EVENT.size, rng.randrange(U64), *_task(rng),
                             comm)
        assert isinstance(same(fk), ForkRecord)


def test_flags_marks_and_unset_auid() -> None:
    for flags in range(16):
        fixed = EXEC_FIXED.pack(EventKind.EXEC, 0, 1, 7, 7, 1, 0, 2, 3, b"sh".ljust(16, b"\0"),
                                0, 0, 0, 0, U32, flags, 3, 2, 3, 3)
        rec = same(fixed + b"sh\0" + b"x\0" + b"sh\0")
        assert isinstance(rec, ExecRecord)
        assert rec.auid is None
        assert rec.args_truncated is bool(flags & ExecFlags.ARGS_TRUNCATED)


def _errors(raw: bytes) -> str:
    with pytest.raises(DecodeError) as ref:
        decode_py(raw)
    assert native is not None
    with pytest.raises(DecodeError) as got:
        native(raw)
    assert str(got.value) == str(ref.value)
    return str(got.value)


def test_bytes_that_are_not_records_fail_as_the_reference_fails() -> None:
    rng = random.Random(17)
    good = _exec(rng)
    assert "shorter than its header" in _errors(b"\x01\x00")
    assert "unknown record kind 9" in _errors(b"\x09\x00\x00\x00" + b"\x00" * 12)
    for kind, size in ((EventKind.EXEC, EXEC_FIXED.size), (EventKind.EXIT, EXIT_EVENT.size),
                       (EventKind.FORK, FORK_EVENT.size)):
        head = int(kind).to_bytes(4, "little") + b"\x00" * (size - 5)
        assert "layout needs" in _errors(head)
    fixed = EXEC_FIXED.pack(EventKind.EXEC, 0, 1, 7, 7, 1, 0, 2, 3, b"sh".ljust(16, b"\0"),
                            0, 0, 0, 0, 0, 0, U32, U32, U32, 0)
    assert "its lengths need" in _errors(fixed + b"sh\0")
    for cut in range(len(good) - 1, EXEC_FIXED.size, -7):
        raw = good[:cut]
        try:
            decode_py(raw)
        except DecodeError:
            _errors(raw)
        else:
            same(raw)


def test_texts_share_the_memos_and_their_bounds() -> None:
    rng = random.Random(18)
    for i in range(d._TEXT_MEMO_MAX + 50):
        comm = f"c{i}".encode().ljust(16, b"\0")
        fixed = FORK_EVENT.pack(EventKind.FORK, FORK_EVENT.size, 1, 2, 2, 1, 0, 1, 1, comm)
        assert native is not None
        rec = native(fixed)
        assert d._comms[comm] is rec.task.comm  # remembered where decode_py looks
        assert len(d._comms) <= d._TEXT_MEMO_MAX
    long_path = b"x" * (d._TEXT_MEMO_LEN + 1) + b"\0"
    fixed = EXEC_FIXED.pack(EventKind.EXEC, 0, 1, 7, 7, 1, 0, 2, 3, b"sh".ljust(16, b"\0"),
                            0, 0, 0, 0, 0, 0, len(long_path), 0, 0, 0)
    assert same(fixed + long_path).binary == "/" + "x" * (d._TEXT_MEMO_LEN + 1)
    assert long_path not in d._paths
    assert PIECES and rng  # the hostile pieces are test_decode_fast's


def test_decoding_keeps_no_memory() -> None:
    rng = random.Random(19)
    raws = [_exec(rng) for _ in range(200)]
    assert native is not None
    for raw in raws:  # the memos fill here, before the measurement
        native(raw)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(50):
            for raw in raws:
                native(raw)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 4096, (before, after)


def test_dataclasses_other_than_the_ones_it_fills_are_refused() -> None:
    from collector._decode import Decoder

    types = (ExecRecord, ExitRecord, ForkRecord, TaskIds)
    names = [tuple(f.name for f in dataclasses.fields(t)) for t in types]
    swapped = list(names)
    swapped[3] = ("tid", "pid", *names[3][2:])
    with pytest.raises(TypeError, match="field 0 is 'tid'"):
        Decoder(types, tuple(swapped), {}, {}, d._comm, d._path, decode_py)

    @dataclasses.dataclass  # no slots: nothing to fill
    class Loose:
        ktime_ns: int
        task: TaskIds

    with pytest.raises(TypeError, match="not a slot"):
        Decoder((ExecRecord, ExitRecord, Loose, TaskIds), tuple(names), {}, {}, d._comm,
                d._path, decode_py)
