"""Native event → ECS 9.4.0 process event, Avro form.

Schema: schemas/ecs_process.avsc. The mapping: @timestamp = time;
event.kind event, event.category [process], event.type [start] / [end],
event.action exec / exit, event.duration (exits, ns); process.entity_id =
exec_id, pid, executable = binary, name = comm, args, args_count,
command_line, working_directory, start, end and exit_code on exits,
thread.id = tid, user / group = the effective ids (ECS: euid, egid),
real_user / real_group = uid, gid; process.parent.* the parent (its
entity_id and pid even when the cache no longer knows it); user.* = the
real user; host.hostname / host.name = node; container.id. Ours without an
ECS name go under process_collector.* (ECS's rule for custom fields):
ppid, parent_exec_id, auid, args_truncated, cgroup_id, namespaces, flags,
signal, core_dumped, ancestors.
"""

from __future__ import annotations

from typing import Any

from collector.shapes.common import basename, command_line

SCHEMA_FILE = "ecs_process.avsc"
ECS_VERSION = "9.4.0"
_TYPES = {"process_exec": ("start", "exec"), "process_exit": ("end", "exit")}


def _users(p: dict[str, Any]) -> dict[str, Any]:
    euid_name = p["user"] if p["euid"] == p["uid"] else None
    return {"user": {"id": str(p["euid"]), "name": euid_name},
            "real_user": {"id": str(p["uid"]), "name": p["user"]},
            "group": {"id": str(p["egid"])}, "real_group": {"id": str(p["gid"])}}


def _parent(p: dict[str, Any]) -> dict[str, Any]:
    return {"entity_id": p["exec_id"], "pid": p["pid"], "executable": p["binary"],
            "name": p["comm"] or basename(p["binary"]), "args": p["args"],
            "args_count": len(p["args"]), "command_line": command_line(p["args"]),
            "working_directory": p["cwd"], "start": p["start_time"], "thread": {"id": p["tid"]},
            **_users(p)}


def to_record(event: dict[str, Any]) -> dict[str, Any]:
    """The Avro form of schemas/ecs_process.avsc for one native event."""
    p, parent = event["process"], event["parent"]
    etype, action = _TYPES[event["event_type"]]
    exiting = etype == "end"
    if parent is not None:
        parent_rec: dict[str, Any] | None = _parent(parent)
    elif p.get("parent_exec_id"):
        parent_rec = {"entity_id": p["parent_exec_id"], "pid": p["ppid"]}
    else:
        parent_rec = None
    ancestors = event.get("ancestors")
    return {
        "timestamp": event["time"],
        "ecs": {"version": ECS_VERSION},
        "event": {"kind": "event", "category": ["process"], "type": [etype], "action": action,
                  "duration": event.get("duration_ns") if exiting else None},
        "process": {
            "entity_id": p["exec_id"], "pid": p["pid"], "executable": p["binary"],
            "name": p["comm"] or basename(p["binary"]), "args": p["args"],
            "args_count": len(p["args"]), "command_line": command_line(p["args"]),
            "working_directory": p["cwd"], "start": p["start_time"],
            "end": event["time"] if exiting else None,
            "exit_code": event.get("exit_code") if exiting else None,
            "thread": {"id": p["tid"]}, **_users(p), "parent": parent_rec,
        },
        "user": {"id": str(p["uid"]), "name": p["user"]},
        "host": {"hostname": event["node"], "name": event["node"]},
        "container": {"id": p["container_id"]} if p.get("container_id") else None,
        "process_collector": {
            "process": {"ppid": p["ppid"], "parent_exec_id": p.get("parent_exec_id"),
                        "auid": p["auid"], "args_truncated": p["args_truncated"],
                        "cgroup_id": p.get("cgroup_id"), "namespaces": p.get("namespaces"),
                        "flags": p["flags"]},
            "signal": event.get("signal"), "core_dumped": event.get("core_dumped"),
            "ancestors": [_parent(a) for a in ancestors] if ancestors else None,
        },
    }
