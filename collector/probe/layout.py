"""The Python mirror of bpf/process.h: the raw record layout.

Kept in one place, checked against the BTF of the compiled object by
tests/test_layout.py, so a change on one side cannot silently shift fields.
"""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag

TASK_COMM_LEN = 16
ARGS_CAP = 32768  # captured argv is at most ARGS_CAP - 1 bytes
ARGS_MAX_LIMIT = ARGS_CAP - 1


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


# struct event_header { u32 kind; u32 size; u64 ktime_ns; }
HEADER = struct.Struct("<IIQ")
# struct task_ids { u32 pid, tid, ppid, pad; u64 start_ns, cgroup_id; char comm[16]; }
TASK_IDS = struct.Struct("<IIIIQQ16s")
# struct exec_event: header, task_ids, u32 uid, euid, gid, egid, auid, flags,
# binary_len, cwd_len, args_len, args_total; then char data[]
EXEC_FIXED = struct.Struct("<IIQ" + "IIIIQQ16s" + "IIIIIIIIII")
# struct exit_event: header, task_ids, u32 exit_status, pad
EXIT_EVENT = struct.Struct("<IIQ" + "IIIIQQ16s" + "II")
# struct fork_event: header, task_ids
FORK_EVENT = struct.Struct("<IIQ" + "IIIIQQ16s")
# struct collector_config { u32 args_max, wakeup_bytes, self_tgid, ignore_self; }
CONFIG = struct.Struct("<IIII")

# (struct name, size in bytes) as the BTF of the object must show them.
STRUCT_SIZES = {
    "event_header": HEADER.size,
    "task_ids": TASK_IDS.size,
    "exit_event": EXIT_EVENT.size,
    "fork_event": FORK_EVENT.size,
    "collector_config": CONFIG.size,
}
EXEC_DATA_OFFSET = EXEC_FIXED.size
