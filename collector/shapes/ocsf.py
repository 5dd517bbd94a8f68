"""Native event → OCSF 1.8.0 Process Activity (class_uid 1007), Avro form.

Schema: schemas/ocsf_process_activity.avsc. The mapping:
- process_exec → activity_id 1 Launch, process_exit → 2 Terminate;
  type_uid = 1007 * 100 + activity_id; severity_id 1 Informational;
  time in ms (OCSF timestamp_t), time_dt with the full nanoseconds;
- process: pid, uid = exec_id, ptid = tid, name = comm, cmd_line, file
  (path = binary), working_directory, created_time, user (uid, name),
  group, euid, egid, auid, container, parent_process, ancestry;
- actor.process = the parent (actor.user: its user);
- launch_type_id (Launch only): 3 Exec, 2 Fork (flag clone), 0 Unknown
  (start-up scan); exit_code (Terminate; absent when killed by a signal);
- unmapped: everything of ours OCSF has no attribute for (argv as an
  array, args_truncated, ppid, cgroup_id, namespaces, flags, signal,
  core_dumped, duration_ns, and what process_entity lacks for ancestors).
metadata.profiles names every profile whose attributes are used:
linux/linux_users (group, euid, egid, auid), datetime (*_dt), container
(process.container) when a process runs in one.
"""

from __future__ import annotations

from typing import Any

from collector.encode.timefmt import rfc3339_ns
from collector.shapes.common import PRODUCT, basename, command_line, product_version

SCHEMA_FILE = "ocsf_process_activity.avsc"
OCSF_VERSION = "1.8.0"
CLASS_UID = 1007
ACTIVITIES = {"process_exec": (1, "Launch"), "process_exit": (2, "Terminate")}
LAUNCH_TYPES = {"execve": (3, "Exec"), "clone": (2, "Fork")}
_MS = 1_000_000


def _user(p: dict[str, Any]) -> dict[str, Any]:
    return {"uid": str(p["uid"]), "name": p["user"]}


def _process(p: dict[str, Any], parent: dict[str, Any] | None = None,
             ancestry: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    cid = p.get("container_id")
    return {
        "pid": p["pid"], "uid": p["exec_id"], "ptid": p["tid"], "name": p["comm"],
        "cmd_line": command_line(p["args"]),
        "file": {"name": basename(p["binary"]), "path": p["binary"], "type_id": 1},
        "working_directory": p["cwd"],
        "created_time": p["start_time"] // _MS, "created_time_dt": rfc3339_ns(p["start_time"]),
        "terminated_time": None, "terminated_time_dt": None,
        "user": _user(p), "group": {"uid": str(p["gid"])},
        "euid": p["euid"], "egid": p["egid"], "auid": p["auid"],
        "container": {"uid": cid} if cid else None,
        "parent_process": parent, "ancestry": ancestry,
    }


def _entity(p: dict[str, Any]) -> dict[str, Any]:
    return {"pid": p["pid"], "uid": p["exec_id"], "name": p["comm"], "path": p["binary"],
            "cmd_line": command_line(p["args"]), "created_time": p["start_time"] // _MS}


def _extra(p: dict[str, Any], entity_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uid": p["exec_id"], "args": p["args"], "args_truncated": p["args_truncated"],
        "ppid": p["ppid"], "parent_exec_id": p.get("parent_exec_id"),
        "cgroup_id": p.get("cgroup_id"), "namespaces": p.get("namespaces"), "flags": p["flags"],
        "tid": None, "cwd": None, "uid_num": None, "user": None, "gid": None, "euid": None,
        "egid": None, "auid": None, "container_id": None,
    }
    if entity_only:  # an ancestor: process_entity has none of these
        out.update(tid=p["tid"], cwd=p["cwd"], uid_num=p["uid"], user=p["user"], gid=p["gid"],
                   euid=p["euid"], egid=p["egid"], auid=p["auid"],
                   container_id=p.get("container_id"))
    return out


def profiles(event: dict[str, Any]) -> list[str]:
    used = ["datetime", "linux/linux_users"]
    if any(p is not None and p.get("container_id") for p in (event["process"], event["parent"])):
        used.append("container")
    return used


def to_record(event: dict[str, Any]) -> dict[str, Any]:
    """The Avro form of schemas/ocsf_process_activity.avsc for one native event."""
    activity_id, activity = ACTIVITIES[event["event_type"]]
    p, parent = event["process"], event["parent"]
    ancestors = event.get("ancestors")
    parent_ocsf = _process(parent) if parent is not None else None
    process = _process(p, parent_ocsf, [_entity(a) for a in ancestors] if ancestors else None)
    launch: tuple[int | None, str | None] = (None, None)
    if activity_id == 1:
        launch = next((LAUNCH_TYPES[f] for f in p["flags"] if f in LAUNCH_TYPES), (0, "Unknown"))
    else:
        process["terminated_time"] = event["time"] // _MS
        process["terminated_time_dt"] = rfc3339_ns(event["time"])
    return {
        "activity_id": activity_id, "activity_name": activity,
        "category_uid": 1, "category_name": "System Activity",
        "class_uid": CLASS_UID, "class_name": "Process Activity",
        "type_uid": CLASS_UID * 100 + activity_id, "type_name": f"Process Activity: {activity}",
        "severity_id": 1, "severity": "Informational",
        "time": event["time"] // _MS, "time_dt": rfc3339_ns(event["time"]),
        "metadata": {"version": OCSF_VERSION,
                     "product": {"name": PRODUCT, "vendor_name": PRODUCT,
                                 "version": product_version()},
                     "profiles": profiles(event)},
        "device": {"hostname": event["node"], "name": event["node"], "type_id": 0,
                   "type": "Unknown"},
        "process": process,
        "actor": {"process": parent_ocsf, "user": _user(parent if parent is not None else p)},
        "exit_code": event.get("exit_code") if activity_id == 2 else None,
        "launch_type_id": launch[0], "launch_type": launch[1],
        "unmapped": {
            "event_type": event["event_type"], "signal": event.get("signal"),
            "core_dumped": event.get("core_dumped"), "duration_ns": event.get("duration_ns"),
            "process": _extra(p), "parent_process": _extra(parent) if parent is not None else None,
            "ancestors": [_extra(a, entity_only=True) for a in ancestors] if ancestors else None,
        },
    }
