"""The Python mirror of bpf/process.h: the raw record layout.

Kept in one place, checked against the BTF of the compiled object by
tests/test_layout.py, so a change on one side cannot silently shift fields.
"""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag

TASK_COMM_LEN = 16


class RecordLimits(IntEnum):
    """enum record_limits: sizes of an exec record's variable-length tail."""

    EXEC_DATA_LEN = 65536
    EXEC_DATA_HALF = 32768
    ARGS_CAP = 32768  # captured argv is at most ARGS_CAP - 1 bytes
    PATH_DEPTH_MAX = 64
    PATH_BUDGET = 12288
    NAME_CAP = 256


ARGS_CAP = int(RecordLimits.ARGS_CAP)
# The largest argv capture a user may ask for (capture.args_max_bytes).
ARGS_MAX_LIMIT = ARGS_CAP - 1
# Exit claims held at once by thread groups that are dead but not yet reaped (both
# backends' claim maps, kernels without group_dead); a full map is not a lost exit
# but a counted DROP_EXIT_CLAIM.
EXIT_CLAIMS_MAX = 16384


class EventKind(IntEnum):
    """enum event_kind: fixed numbers, never reused."""

    EXEC = 1
    EXIT = 2
    FORK = 3


class ExecFlags(IntFlag):
    """enum exec_flags."""

    ARGS_TRUNCATED = 1 << 0
    BINARY_TRUNCATED = 1 << 1
    CWD_TRUNCATED = 1 << 2
    ARGS_UNREADABLE = 1 << 3


class DropReason(IntEnum):
    """enum drop_reason: index into the per-CPU `drops` map."""

    EXEC = 0
    EXIT = 1
    FORK = 2
    # not a lost record: an exit sent without a claim (full claim map), may repeat
    EXIT_CLAIM = 3
    # events no copy handled (runs=copies): counted by the tracepoint's checker
    EXEC_MISSED = 4
    EXIT_MISSED = 5
    FORK_MISSED = 6


# Field lists in declaration order: (name, struct format). The Struct
# objects below are built from them, and tests/test_layout.py compares every
# offset with the BTF of the compiled object.
FIELDS: dict[str, list[tuple[str, str]]] = {
    "event_header": [("kind", "I"), ("size", "I"), ("ktime_ns", "Q")],
    "task_ids": [("pid", "I"), ("tid", "I"), ("ppid", "I"), ("pad", "I"), ("start_ns", "Q"),
                 ("cgroup_id", "Q"), ("comm", f"{TASK_COMM_LEN}s")],
    "exec_event": [("hdr", "IIQ"), ("task", "IIIIQQ16s"), ("uid", "I"), ("euid", "I"),
                   ("gid", "I"), ("egid", "I"), ("auid", "I"), ("flags", "I"),
                   ("binary_len", "I"), ("cwd_len", "I"), ("args_len", "I"), ("args_total", "I")],
    "exit_event": [("hdr", "IIQ"), ("task", "IIIIQQ16s"), ("exit_status", "I"), ("pad", "I")],
    "fork_event": [("hdr", "IIQ"), ("task", "IIIIQQ16s")],
    "collector_config": [("args_max", "I"), ("wakeup_bytes", "I"), ("self_tgid", "I"),
                         ("ignore_self", "I")],
}


def _struct(name: str) -> struct.Struct:
    return struct.Struct("<" + "".join(fmt for _, fmt in FIELDS[name]))


def offsets(name: str) -> dict[str, int]:
    """Byte offset of each field of a mirrored struct."""
    out: dict[str, int] = {}
    fmt = "<"
    for field, f in FIELDS[name]:
        out[field] = struct.calcsize(fmt)
        fmt += f
    return out


HEADER = _struct("event_header")
TASK_IDS = _struct("task_ids")
EXEC_FIXED = _struct("exec_event")  # followed by char data[]
EXIT_EVENT = _struct("exit_event")
FORK_EVENT = _struct("fork_event")
EXEC_DATA_OFFSET = EXEC_FIXED.size
# The longest record the BPF side submits: a whole struct exec_event.
RECORD_MAX = EXEC_DATA_OFFSET + int(RecordLimits.EXEC_DATA_LEN)

# Sizes the BTF of the object must show for the structs it describes.
STRUCT_SIZES = {name: _struct(name).size for name in FIELDS}
