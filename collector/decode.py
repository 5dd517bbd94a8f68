"""Decode raw ring-buffer records into kernel facts.

This step knows the byte layout (collector.probe.layout) and the text rule
of the design: kernel bytes become str with invalid UTF-8 kept as \\xNN
escapes (backslashreplace), never dropped. It knows nothing of exec_ids,
parents or output formats: that is enrichment's and encoding's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


def _comm(raw: bytes) -> str:
    return text(raw.split(b"\0", 1)[0])


def _path(components: bytes) -> str:
    """Leaf-first NUL-terminated components (as the BPF walk writes them) to a path."""
    parts = components.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    parts.reverse()
    return "/" + "/".join(text(p) for p in parts)


def _args(raw: bytes) -> list[str]:
    """argv as the kernel lays it out: NUL-separated, NUL-terminated."""
    if not raw:
        return []
    parts = raw.split(b"\0")
    if parts[-1] == b"":
        parts.pop()
    return [text(p) for p in parts]


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


def decode(raw: bytes) -> Record:
    """Decode one ring-buffer record."""
    if len(raw) < HEADER.size:
        raise DecodeError(f"record of {len(raw)} bytes is shorter than its header")
    kind, size, _ = HEADER.unpack_from(raw)
    if kind == EventKind.EXEC:
        return _decode_exec(raw)
    if kind == EventKind.EXIT:
        f = _fixed(EXIT_EVENT.unpack_from, EXIT_EVENT.size, raw)
        return ExitRecord(f[2], TaskIds(f[3], f[4], f[5], f[7], f[8], _comm(f[9])), f[10])
    if kind == EventKind.FORK:
        f = _fixed(FORK_EVENT.unpack_from, FORK_EVENT.size, raw)
        return ForkRecord(f[2], TaskIds(f[3], f[4], f[5], f[7], f[8], _comm(f[9])))
    raise DecodeError(f"unknown record kind {kind} (size {size})")


def _fixed(unpack: Callable[[bytes], tuple[Any, ...]], size: int, raw: bytes) -> tuple[Any, ...]:
    if len(raw) < size:
        raise DecodeError(f"record of {len(raw)} bytes, layout needs {size}")
    return unpack(raw)


def _decode_exec(raw: bytes) -> ExecRecord:
    f = _fixed(EXEC_FIXED.unpack_from, EXEC_FIXED.size, raw)
    (uid, euid, gid, egid, auid, flags, binary_len, cwd_len, args_len, _args_total) = f[10:20]
    end = EXEC_DATA_OFFSET + binary_len + cwd_len + args_len
    if len(raw) < end:
        raise DecodeError(f"exec record of {len(raw)} bytes, its lengths need {end}")
    data = raw[EXEC_DATA_OFFSET:end]
    binary = _path(data[:binary_len])
    cwd = _path(data[binary_len : binary_len + cwd_len])
    args = _args(data[binary_len + cwd_len :])
    marks = ["execve"]
    truncated = bool(flags & ExecFlags.ARGS_TRUNCATED)
    if flags & (ExecFlags.ARGS_TRUNCATED | ExecFlags.BINARY_TRUNCATED | ExecFlags.CWD_TRUNCATED):
        marks.append("truncated")
    if flags & ExecFlags.ARGS_UNREADABLE:
        marks.append("args_unreadable")
    return ExecRecord(
        ktime_ns=f[2],
        task=TaskIds(f[3], f[4], f[5], f[7], f[8], _comm(f[9])),
        uid=uid,
        euid=euid,
        gid=gid,
        egid=egid,
        auid=None if auid == AUID_UNSET else auid,
        binary=binary,
        cwd=cwd,
        args=args,
        args_truncated=truncated,
        flags=marks,
    )
