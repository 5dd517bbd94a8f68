"""The fast decode paths give exactly what the straightforward ones gave.

decode() turns a whole NUL-separated list (argv, path components) into str
at once, then splits the str, and remembers comm/binary/cwd values it has
seen. These tests compare it, on hostile bytes, with the per-item
backslashreplace decoding it replaced (kept here as the reference)."""

from __future__ import annotations

import random

import pytest

from collector import decode as d
from collector.decode import ExecRecord, ExitRecord, ForkRecord, decode
from collector.probe.layout import EXEC_FIXED, EXIT_EVENT, FORK_EVENT, EventKind, ExecFlags


def ref_text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def ref_path(components: bytes) -> str:
    parts = components.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    parts.reverse()
    return "/" + "/".join(ref_text(p) for p in parts)


def ref_args(raw: bytes) -> list[str]:
    if not raw:
        return []
    parts = raw.split(b"\0")
    if parts[-1] == b"":
        parts.pop()
    return [ref_text(p) for p in parts]


def ref_comm(raw: bytes) -> str:
    return ref_text(raw.split(b"\0", 1)[0])


# bytes that break UTF-8 in every way: lone continuation bytes, truncated
# sequences (also right before a NUL), overlong forms, surrogates, > U+10FFFF
PIECES = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc3", b"\xc3\xa9", b"\xe2\x82", b"\xe2\x82\xac",
          b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xf0\x9f\x98\x80", b"\xf4\x90\x80\x80", b"\xff",
          b"\xfe", b"\x00", b"\x00\x00", b"a", b"/", b"\\", b'"', b"\n", b"\t", b"\x7f", b"x" * 40,
          "日本".encode()]


def hostile(rng: random.Random, n: int) -> bytes:
    return b"".join(rng.choice(PIECES) for _ in range(n))


@pytest.mark.parametrize("seed", range(20))
def test_lists_and_paths_decode_as_item_by_item(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        raw = hostile(rng, rng.randrange(0, 12))
        assert d._args(raw) == ref_args(raw), raw
        assert d._path(raw) == ref_path(raw), raw
        assert d._path(raw) == ref_path(raw), raw  # the remembered value too
        comm = raw[:16].ljust(16, b"\0")
        assert d._comm(comm) == ref_comm(comm), comm
        assert d._comm(comm) == ref_comm(comm), comm


def _exec(binary: bytes, cwd: bytes, argv: bytes, comm: bytes, flags: int = 0,
          auid: int = 1000) -> bytes:
    fixed = EXEC_FIXED.pack(EventKind.EXEC, 0, 123, 7, 8, 1, 0, 100, 5, comm, 1, 2, 3, 4, auid,
                            flags, len(binary), len(cwd), len(argv), len(argv))
    return fixed + binary + cwd + argv


def test_exec_records_match_the_reference_on_hostile_bytes() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        binary, cwd, argv = (hostile(rng, rng.randrange(0, 8)) for _ in range(3))
        comm = hostile(rng, 3)[:16].ljust(16, b"\0")
        rec = decode(_exec(binary, cwd, argv, comm))
        assert isinstance(rec, ExecRecord)
        assert rec.binary == ref_path(binary)
        assert rec.cwd == ref_path(cwd)
        assert rec.args == ref_args(argv)
        assert rec.task.comm == ref_comm(comm)
        for s in (rec.binary, rec.cwd, rec.task.comm, *rec.args):
            s.encode("utf-8")  # always valid UTF-8 (no surrogates)


def test_exec_fields_flags_and_auid() -> None:
    rec = decode(_exec(b"true\0bin\0", b"tmp\0", b"true\0-x\0", b"true".ljust(16, b"\0"),
                       flags=int(ExecFlags.ARGS_TRUNCATED | ExecFlags.ARGS_UNREADABLE),
                       auid=0xFFFFFFFF))
    assert isinstance(rec, ExecRecord)
    assert (rec.ktime_ns, rec.task.pid, rec.task.tid, rec.task.ppid, rec.task.start_ns,
            rec.task.cgroup_id) == (123, 7, 8, 1, 100, 5)
    assert (rec.uid, rec.euid, rec.gid, rec.egid, rec.auid) == (1, 2, 3, 4, None)
    assert (rec.binary, rec.cwd, rec.args) == ("/bin/true", "/tmp", ["true", "-x"])
    assert rec.args_truncated is True
    assert rec.flags == ["execve", "truncated", "args_unreadable"]
    plain = decode(_exec(b"sh\0", b"\0", b"", b"sh".ljust(16, b"\0")))
    assert isinstance(plain, ExecRecord)
    assert (plain.flags, plain.args_truncated, plain.args, plain.auid) == (["execve"], False, [],
                                                                          1000)
    cut = decode(_exec(b"sh\0", b"x\0", b"a\0", b"sh".ljust(16, b"\0"),
                       flags=int(ExecFlags.CWD_TRUNCATED)))
    assert isinstance(cut, ExecRecord)
    assert cut.flags == ["execve", "truncated"] and cut.args_truncated is False


def test_exit_and_fork_records() -> None:
    comm = b"\xffbad\0junk".ljust(16, b"\0")
    ex = decode(EXIT_EVENT.pack(EventKind.EXIT, EXIT_EVENT.size, 9, 7, 8, 1, 0, 100, 5, comm,
                                0x8B, 0))
    assert isinstance(ex, ExitRecord)
    assert (ex.ktime_ns, ex.exit_status, ex.task.comm, ex.task.tid) == (9, 0x8B, "\\xffbad", 8)
    fk = decode(FORK_EVENT.pack(EventKind.FORK, FORK_EVENT.size, 9, 7, 7, 1, 0, 9, 5, comm))
    assert isinstance(fk, ForkRecord)
    assert (fk.task.pid, fk.task.start_ns, fk.task.comm) == (7, 9, "\\xffbad")


def test_short_and_unknown_records_are_decode_errors() -> None:
    with pytest.raises(d.DecodeError, match="shorter than its header"):
        decode(b"\x01\x00")
    with pytest.raises(d.DecodeError, match="unknown record kind 9"):
        decode(b"\x09\x00\x00\x00" + b"\x00" * 12)
    with pytest.raises(d.DecodeError, match="layout needs"):
        decode(b"\x02\x00\x00\x00" + b"\x00" * 12)
    with pytest.raises(d.DecodeError, match="its lengths need"):
        decode(_exec(b"sh\0", b"\0", b"a\0", b"sh".ljust(16, b"\0"))[:-1])
