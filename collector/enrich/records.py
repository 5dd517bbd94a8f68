"""The one builder of ProcessEvent and Process records.

schemas/process_event.avsc owns the field names and their order; this
module is the only place that writes them out in code, and it checks
itself against the schema when it is imported: a field added to, renamed
in or removed from the schema without the same change here fails at once
(at import, in every test), not as a silently missing key in some output.
Field order matters: the JSON line follows the record's key order.

The event-type names are the schema's too (collector.schema.EVENT_TYPES,
from the EventType enum), as are the namespace kinds (the Namespaces
record's fields, collector.enrich.namespaces.KINDS).
"""

from __future__ import annotations

import inspect
from typing import Any

from collector.schema import EVENT_TYPES, PROCESS_EXEC, PROCESS_EXIT, SharedRecord, field_names

Record = dict[str, Any]

__all__ = ["EVENT_TYPES", "PROCESS_EXEC", "PROCESS_EXIT", "event_record", "process_record"]


def process_record(
    exec_id: str, parent_exec_id: str | None, pid: int, tid: int, ppid: int, uid: int,
    euid: int, gid: int, egid: int, auid: int | None, user: str | None, comm: str, binary: str,
    args: list[str], args_truncated: bool, cwd: str, start_time: int, cgroup_id: int | None,
    container_id: str | None, namespaces: dict[str, int | None] | None, flags: list[str],
) -> SharedRecord:
    """A Process record (shared by every event that shows it: never change it).

    Positional or keyword: the one call per exec (ProcessCache.on_exec) passes
    its 21 values by position, which costs less than half as much as by keyword
    (bench/per_call_costs.py); the other callers name them."""
    return SharedRecord(
        exec_id=exec_id, parent_exec_id=parent_exec_id, pid=pid, tid=tid, ppid=ppid, uid=uid,
        euid=euid, gid=gid, egid=egid, auid=auid, user=user, comm=comm, binary=binary,
        args=args, args_truncated=args_truncated, cwd=cwd, start_time=start_time,
        cgroup_id=cgroup_id, container_id=container_id, namespaces=namespaces, flags=flags,
    )


def event_record(event_type: str, time: int, node: str, process: Record,
                 parent: Record | None, ancestors: list[Record] | None) -> Record:
    """A ProcessEvent; the exit fields are None (an exit sets them: exit_fields)."""
    return {
        "event_type": event_type,
        "time": time,
        "node": node,
        "process": process,
        "parent": parent,
        "ancestors": ancestors,
        "exit_code": None,
        "signal": None,
        "core_dumped": None,
        "duration_ns": None,
    }


def _check_against_schema() -> None:
    """The builders' keys, in order, are the schema's fields."""
    params = list(inspect.signature(process_record).parameters)
    dummy = dict.fromkeys(params)
    built = list(process_record(**dummy))  # type: ignore[arg-type]
    want = list(field_names("Process"))
    if params != want or built != want:
        raise ImportError(f"collector.enrich.records.process_record does not match "
                          f"schemas/: it has {built}, the schema {want}")
    built = list(event_record(PROCESS_EXEC, 0, "", {}, None, None))
    want = list(field_names("ProcessEvent"))
    if built != want:
        raise ImportError(f"collector.enrich.records.event_record does not match "
                          f"schemas/: it has {built}, the schema {want}")


_check_against_schema()
