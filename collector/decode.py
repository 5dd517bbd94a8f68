"""Decode raw ring-buffer records into kernel facts.

This step knows the byte layout (collector.probe.layout) and the text rule
of the design: kernel bytes become str with invalid UTF-8 kept as \\xNN
escapes (backslashreplace), never dropped. It knows nothing of exec_ids,
parents or output formats: that is enrichment's and encoding's job.
"""

from __future__ import annotations

import signal as _signal
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from collector.probe.layout import (
    EXEC_DATA_OFFSET,
    EXEC_FIXED,
    EXIT_EVENT,
    FORK_EVENT,
    HEADER,
    EventKind,
    ExecFlags,
)

AUID_UNSET = 0xFFFFFFFF


class DecodeError(ValueError):
    """A record that does not match the layout (counted, never fatal)."""


def text(raw: bytes) -> str:
    """Kernel bytes to str: valid UTF-8 as is, anything else as \\xNN."""
    return raw.decode("utf-8", "backslashreplace")


# Decoding a whole NUL-separated list at once and splitting the str gives the
# same strings as decoding each item: NUL is one ASCII byte, never part of a
# multi-byte sequence, so no sequence (valid or not) spans two items, and
# backslashreplace writes each bad byte as its own \xNN whichever way the
# bytes were grouped (tests/test_decode_fast.py checks it on hostile bytes).
_TEXT_MEMO_MAX = 4096  # distinct comm / binary / cwd values remembered
_TEXT_MEMO_LEN = 512  # longer raw values are decoded every time (bounds the memory)


def _memo_text(memo: dict[bytes, str], raw: bytes, convert: Callable[[bytes], str]) -> str:
    value = convert(raw)
    if len(raw) <= _TEXT_MEMO_LEN:
        if len(memo) >= _TEXT_MEMO_MAX:
            memo.clear()
        memo[raw] = value
    return value


def _comm_text(raw: bytes) -> str:
    return raw.partition(b"\0")[0].decode("utf-8", "backslashreplace")


def _path_text(components: bytes) -> str:
    """Leaf-first NUL-terminated components (as the BPF walk writes them) to a path."""
    parts = components.decode("utf-8", "backslashreplace").split("\0")
    if parts[-1] == "":
        parts.pop()
    parts.reverse()
    return "/" + "/".join(parts)


# comm, binary and cwd repeat from record to record (the same programs run
# again and again): each distinct raw value is decoded once. Only the reader
# thread decodes, and a lost race would only decode twice.
_comms: dict[bytes, str] = {}
_paths: dict[bytes, str] = {}


def _comm(raw: bytes) -> str:
    found = _comms.get(raw)
    return found if found is not None else _memo_text(_comms, raw, _comm_text)


def _path(components: bytes) -> str:
    found = _paths.get(components)
    return found if found is not None else _memo_text(_paths, components, _path_text)


def _args(raw: bytes) -> list[str]:
    """argv as the kernel lays it out: NUL-separated, NUL-terminated."""
    if not raw:
        return []
    parts = raw.decode("utf-8", "backslashreplace").split("\0")
    if parts[-1] == "":
        parts.pop()
    return parts


@dataclass(slots=True)
class TaskIds:
    """Identity of the thread group an event is about (host pid namespace)."""

    pid: int
    tid: int
    ppid: int
    start_ns: int  # CLOCK_BOOTTIME
    cgroup_id: int
    comm: str


@dataclass(slots=True)
class ExecRecord:
    """A successful execve/execveat, read in the kernel at the event."""

    ktime_ns: int
    task: TaskIds
    uid: int
    euid: int
    gid: int
    egid: int
    auid: int | None
    binary: str
    cwd: str
    args: list[str]
    args_truncated: bool
    flags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ExitRecord:
    """The last thread of a thread group exited."""

    ktime_ns: int
    task: TaskIds
    exit_status: int  # wait(2) status word


@dataclass(slots=True)
class ForkRecord:
    """A new thread group (not a thread) was created; the child's ids."""

    ktime_ns: int
    task: TaskIds


Record = ExecRecord | ExitRecord | ForkRecord


_KIND = struct.Struct("<I").unpack_from
_HEADER_SIZE = HEADER.size
_EXEC_UNPACK, _EXEC_SIZE = EXEC_FIXED.unpack_from, EXEC_FIXED.size
_EXIT_UNPACK, _EXIT_SIZE = EXIT_EVENT.unpack_from, EXIT_EVENT.size
_FORK_UNPACK, _FORK_SIZE = FORK_EVENT.unpack_from, FORK_EVENT.size
KIND_EXEC, KIND_EXIT, KIND_FORK = int(EventKind.EXEC), int(EventKind.EXIT), int(EventKind.FORK)
# plain ints: IntFlag's & is a Python-level call
_ARGS_TRUNCATED = int(ExecFlags.ARGS_TRUNCATED)
_ANY_TRUNCATED = int(ExecFlags.ARGS_TRUNCATED | ExecFlags.BINARY_TRUNCATED
                     | ExecFlags.CWD_TRUNCATED)
_ARGS_UNREADABLE = int(ExecFlags.ARGS_UNREADABLE)


def decode_py(raw: bytes) -> Record:
    """Decode one ring-buffer record (the exec case inline: the most common, and
    the one with the most work). The reference of collector._decode, and what
    decode() is when the package was built without it."""
    n = len(raw)
    if n < _HEADER_SIZE:
        raise DecodeError(f"record of {n} bytes is shorter than its header")
    kind = _KIND(raw)[0]
    if kind == KIND_EXEC:
        if n < _EXEC_SIZE:
            raise DecodeError(f"record of {n} bytes, layout needs {_EXEC_SIZE}")
        (_k, _s, ktime, pid, tid, ppid, _p, start, cgroup, comm, uid, euid, gid, egid, auid, flags,
         binary_len, cwd_len, args_len, _args_total) = _EXEC_UNPACK(raw)
        cwd_at = EXEC_DATA_OFFSET + binary_len
        args_at = cwd_at + cwd_len
        end = args_at + args_len
        if n < end:
            raise DecodeError(f"exec record of {n} bytes, its lengths need {end}")
        marks = ["execve"]
        if flags:
            if flags & _ANY_TRUNCATED:
                marks.append("truncated")
            if flags & _ARGS_UNREADABLE:
                marks.append("args_unreadable")
        args = _args(raw[args_at:end])
        return ExecRecord(ktime, TaskIds(pid, tid, ppid, start, cgroup, _comm(comm)), uid, euid,
                          gid, egid, None if auid == AUID_UNSET else auid,
                          _path(raw[EXEC_DATA_OFFSET:cwd_at]), _path(raw[cwd_at:args_at]), args,
                          bool(flags & _ARGS_TRUNCATED), marks)
    if kind == KIND_EXIT:
        if n < _EXIT_SIZE:
            raise DecodeError(f"record of {n} bytes, layout needs {_EXIT_SIZE}")
        _k, _s, ktime, pid, tid, ppid, _p, start, cgroup, comm, status, _ = _EXIT_UNPACK(raw)
        return ExitRecord(ktime, TaskIds(pid, tid, ppid, start, cgroup, _comm(comm)), status)
    if kind == KIND_FORK:
        if n < _FORK_SIZE:
            raise DecodeError(f"record of {n} bytes, layout needs {_FORK_SIZE}")
        _k, _s, ktime, pid, tid, ppid, _p, start, cgroup, comm = _FORK_UNPACK(raw)
        return ForkRecord(ktime, TaskIds(pid, tid, ppid, start, cgroup, _comm(comm)))
    size = HEADER.unpack_from(raw)[1]
    raise DecodeError(f"unknown record kind {kind} (size {size})")


def _native_decode() -> Callable[[bytes], Record] | None:
    """collector._decode's decoder (C; the same records, a fraction of the CPU),
    when the package was built with it. It checks the dataclasses' fields
    against the ones it fills, and hands what it does not take as a regular
    record to decode_py (whose DecodeError names the fault)."""
    try:
        from collector._decode import Decoder
    except ImportError:  # installed without a C compiler
        return None
    types = (ExecRecord, ExitRecord, ForkRecord, TaskIds)
    names = tuple(tuple(f.name for f in fields(t)) for t in types)
    return Decoder(types, names, _comms, _paths, _comm, _path, decode_py)  # type: ignore[no-any-return]


_NATIVE = _native_decode()
NATIVE = _NATIVE is not None  # for tests and the benches
decode: Callable[[bytes], Record] = _NATIVE if _NATIVE is not None else decode_py
"""Decode one ring-buffer record: an ExecRecord, ExitRecord or ForkRecord;
DecodeError for bytes that are not a record of the layout."""


# -- the exit status word ---------------------------------------------------------------------


def _signal_name(signo: int) -> str:
    try:
        return _signal.Signals(signo).name
    except ValueError:
        rtmin = int(_signal.SIGRTMIN)
        if rtmin <= signo <= int(_signal.SIGRTMAX):
            return f"SIGRTMIN+{signo - rtmin}"
        return f"SIG{signo}"


_SIGNAL_NAMES = {signo: _signal_name(signo) for signo in range(1, 128)}  # 7 bits of status


def signal_name(signo: int) -> str:
    """SIGKILL, SIGRTMIN+3, ...; never fails for a number the kernel gives."""
    name = _SIGNAL_NAMES.get(signo)
    return name if name is not None else _signal_name(signo)


def exit_fields(status: int) -> tuple[int | None, str | None, bool]:
    """(exit_code, signal, core_dumped) of a wait(2) status word, as execsnoop
    and exitsnoop read it: code = status >> 8 unless a signal (status & 0x7f)
    ended the process, core = status & 0x80."""
    signo = status & 0x7F
    if signo:
        return None, signal_name(signo), bool(status & 0x80)
    return (status >> 8) & 0xFF, None, False
