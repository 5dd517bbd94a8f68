"""The process cache: pid → the image that pid runs now, with its lineage.

It turns kernel facts (fork, exec, exit records) into ProcessEvent records:
- exec: a new image with a new exec_id; its parent is the image that ran
  this pid before (exec without fork) or else the parent pid's image;
- fork: the child runs its parent's image under its own exec_id ("clone");
- exit: the cached image, with the exit status, and the pid released.

Each entry holds a reference to its parent entry, so a parent that exited
stays reachable exactly as long as a descendant needs it (Python's own
reference counting does the release). The live map is capped; evictions
are counted.
"""

from __future__ import annotations

import signal as _signal
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from collector.clock import BootClock
from collector.decode import ExecRecord, ExitRecord, ForkRecord, TaskIds
from collector.enrich.exec_id import make_exec_id
from collector.enrich.procfs import ProcSnapshot, read_snapshot
from collector.enrich.users import user_name

Record = dict[str, Any]


@dataclass(slots=True, eq=False)
class Entry:
    """One process image in the cache."""

    process: Record
    begin_ns: int  # boot time of the exec (or the start, for clones and /proc finds)
    parent: Entry | None
    cloned: bool = False  # runs an image inherited by fork, not its own exec


@dataclass
class CacheStats:
    entries: int = 0
    evictions: int = 0
    procfs_lookups: int = 0
    unknown_exits: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def signal_name(signo: int) -> str:
    """SIGKILL, SIGRTMIN+3, ...; never fails for a number the kernel gives."""
    try:
        return _signal.Signals(signo).name
    except ValueError:
        rtmin = int(_signal.SIGRTMIN)
        if rtmin <= signo <= int(_signal.SIGRTMAX):
            return f"SIGRTMIN+{signo - rtmin}"
        return f"SIG{signo}"


class ProcessCache:
    """Builds ProcessEvent records from kernel facts; see the module docstring."""

    def __init__(self, node: str, clock: BootClock, max_entries: int = 65536) -> None:
        self.node = node
        self.clock = clock
        self.max_entries = max_entries
        self._live: OrderedDict[int, Entry] = OrderedDict()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._live)

    def get(self, pid: int) -> Entry | None:
        return self._live.get(pid)

    # -- building records ---------------------------------------------------

    def _process(
        self,
        *,
        exec_id: str,
        parent_exec_id: str | None,
        pid: int,
        tid: int,
        ppid: int,
        uid: int,
        euid: int,
        gid: int,
        egid: int,
        auid: int | None,
        comm: str,
        binary: str,
        args: list[str],
        args_truncated: bool,
        cwd: str,
        start_boot_ns: int,
        cgroup_id: int | None,
        flags: list[str],
    ) -> Record:
        return {
            "exec_id": exec_id,
            "parent_exec_id": parent_exec_id,
            "pid": pid,
            "tid": tid,
            "ppid": ppid,
            "uid": uid,
            "euid": euid,
            "gid": gid,
            "egid": egid,
            "auid": auid,
            "user": user_name(uid),
            "comm": comm,
            "binary": binary,
            "args": args,
            "args_truncated": args_truncated,
            "cwd": cwd,
            "start_time": self.clock.to_wall_ns(start_boot_ns),
            "cgroup_id": cgroup_id,
            "container_id": None,
            "flags": flags,
        }

    def _event(self, event_type: str, ktime_ns: int, entry: Entry, process: Record) -> Record:
        parent = entry.parent.process if entry.parent is not None else None
        return {
            "event_type": event_type,
            "time": self.clock.to_wall_ns(ktime_ns),
            "node": self.node,
            "process": process,
            "parent": parent,
            "exit_code": None,
            "signal": None,
            "core_dumped": None,
            "duration_ns": None,
        }

    def _put(self, pid: int, entry: Entry) -> None:
        self._live[pid] = entry
        self._live.move_to_end(pid)
        while len(self._live) > self.max_entries:
            self._live.popitem(last=False)
            self.stats.evictions += 1

    def entry_from_snapshot(self, snap: ProcSnapshot) -> Entry:
        """A cache entry for a process found in /proc (flag "procfs")."""
        parent = self._live.get(snap.ppid)
        flags = ["procfs"] + (["kernel_thread"] if snap.kernel_thread else [])
        process = self._process(
            exec_id=make_exec_id(self.node, snap.start_ns, snap.pid),
            parent_exec_id=parent.process["exec_id"] if parent else None,
            pid=snap.pid,
            tid=snap.pid,
            ppid=snap.ppid,
            uid=snap.uid,
            euid=snap.euid,
            gid=snap.gid,
            egid=snap.egid,
            auid=snap.auid,
            comm=snap.comm,
            binary=snap.binary,
            args=snap.args,
            args_truncated=False,
            cwd=snap.cwd,
            start_boot_ns=snap.start_ns,
            cgroup_id=None,
            flags=flags,
        )
        entry = Entry(process, snap.start_ns, parent)
        self._put(snap.pid, entry)
        return entry

    def procfs_event(self, entry: Entry, ktime_ns: int) -> Record:
        """A process_exec for an image found in /proc (seen at ktime_ns)."""
        return self._event("process_exec", ktime_ns, entry, entry.process)

    def _lookup(self, pid: int) -> Entry | None:
        """The cached image of pid, or a /proc read of it when not cached."""
        entry = self._live.get(pid)
        if entry is not None or pid <= 0:
            return entry
        snap = read_snapshot(pid)
        if snap is None:
            return None
        self.stats.procfs_lookups += 1
        return self.entry_from_snapshot(snap)

    def _unknown(self, task: TaskIds) -> Entry:
        """A minimal image for a pid we know only from a kernel record."""
        parent = self._lookup(task.ppid)
        process = self._process(
            exec_id=make_exec_id(self.node, task.start_ns, task.pid),
            parent_exec_id=parent.process["exec_id"] if parent else None,
            pid=task.pid,
            tid=task.tid,
            ppid=task.ppid,
            uid=0,
            euid=0,
            gid=0,
            egid=0,
            auid=None,
            comm=task.comm,
            binary="",
            args=[],
            args_truncated=False,
            cwd="",
            start_boot_ns=task.start_ns,
            cgroup_id=task.cgroup_id,
            flags=["unknown"],
        )
        return Entry(process, task.start_ns, parent)

    # -- kernel facts in ----------------------------------------------------

    def on_fork(self, rec: ForkRecord) -> None:
        t = rec.task
        parent = self._lookup(t.ppid)
        if parent is None:
            return  # parent gone already; the child's exec/exit will look it up
        process = dict(parent.process)
        process.update(
            exec_id=make_exec_id(self.node, t.start_ns, t.pid),
            parent_exec_id=parent.process["exec_id"],
            pid=t.pid,
            tid=t.tid,
            ppid=t.ppid,
            start_time=self.clock.to_wall_ns(t.start_ns),
            cgroup_id=t.cgroup_id,
            flags=[*(f for f in parent.process["flags"] if f != "execve"), "clone"],
        )
        self._put(t.pid, Entry(process, t.start_ns, parent, cloned=True))

    def on_exec(self, rec: ExecRecord) -> Record:
        t = rec.task
        previous = self._live.get(t.pid)
        if previous is not None and not previous.cloned:
            parent: Entry | None = previous  # exec without fork: the old image is the parent
        else:
            parent = previous.parent if previous is not None else None
            if parent is None or parent.process["pid"] != t.ppid:
                parent = self._lookup(t.ppid) if t.ppid != t.pid else None
        process = self._process(
            exec_id=make_exec_id(self.node, rec.ktime_ns, t.pid),
            parent_exec_id=parent.process["exec_id"] if parent else None,
            pid=t.pid,
            tid=t.tid,
            ppid=t.ppid,
            uid=rec.uid,
            euid=rec.euid,
            gid=rec.gid,
            egid=rec.egid,
            auid=rec.auid,
            comm=t.comm,
            binary=rec.binary,
            args=rec.args,
            args_truncated=rec.args_truncated,
            cwd=rec.cwd,
            start_boot_ns=t.start_ns,
            cgroup_id=t.cgroup_id,
            flags=rec.flags,
        )
        entry = Entry(process, rec.ktime_ns, parent)
        self._put(t.pid, entry)
        return self._event("process_exec", rec.ktime_ns, entry, process)

    def on_exit(self, rec: ExitRecord) -> Record:
        t = rec.task
        entry = self._live.pop(t.pid, None)
        if entry is None or entry.begin_ns > rec.ktime_ns:
            self.stats.unknown_exits += 1
            entry = self._unknown(t)
        process = dict(entry.process)
        process["tid"] = t.tid
        process["ppid"] = t.ppid  # the reaper, if the parent died first
        event = self._event("process_exit", rec.ktime_ns, entry, process)
        status = rec.exit_status
        signo = status & 0x7F
        if signo:
            event["signal"] = signal_name(signo)
            event["core_dumped"] = bool(status & 0x80)
        else:
            event["exit_code"] = (status >> 8) & 0xFF
            event["core_dumped"] = False
        event["duration_ns"] = max(0, rec.ktime_ns - entry.begin_ns)
        return event
