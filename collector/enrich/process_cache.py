"""The process cache: pid → the image that pid runs now, with its lineage.

It turns kernel facts (fork, exec, exit records) into ProcessEvent records
(built by collector.enrich.records, the one owner of their keys; the exit
status is decoded by collector.decode.exit_fields). The cache itself keeps
the LRU of live images, the sweep for lost exits, and the lineage:
- exec: a new image with a new exec_id. Its parent is the image this pid
  ran before (exec without fork, `bash -c 'exec ls'`), or else the image
  that forked it; the forker stays the parent after it exits or after this
  process is reparented (the lineage is history, not the current tree);
- fork: the child runs its parent's image under its own exec_id (flag
  "fork") until it execs. The kernel holds most fork records back (those of
  children that exec while their forker is unchanged) and sends the others
  late, at the child's exec, exit or own fork: by then the forker may have
  exec'd or exited, so the image it ran at the fork is looked up by time,
  among live and recently ended images;
- exit: the cached image with the exit status; `ppid` is the kernel's at
  exit, i.e. the reaper (init or a subreaper) when the parent died first.

Each entry keeps its lineage as a tuple of parent Process records (parent,
grandparent, ... as deep as `ancestors` needs), not a pointer chain: a dead
parent's record lives exactly as long as a live descendant's tuple holds
it, and a long chain of exited forkers cannot pile up. The live map is
capped (evictions counted) and swept for processes whose exit the kernel
lost (ring buffer full): an entry whose pid is gone from /proc on two
sweeps in a row (a minute apart by default) is released (counted as
`released`).

Process records are built once per exec, already redacted, and shared by
every event that shows them (as process, parent or ancestor): sinks must
treat them as read-only. They are SharedRecords, so encoders may keep their
encoding on them; a record is never changed once built (an exit whose
tid, ppid or cgroup differ from its exec gets a new record, an exit that
changes nothing shows the exec's record itself).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from collector import clock as _clock
from collector.clock import BootClock
from collector.decode import ExecRecord, ExitRecord, ForkRecord, TaskIds, exit_fields
from collector.enrich import users
from collector.enrich.containers import CgroupResolver, cgroup2_mount, container_id_from_path
from collector.enrich.exec_id import make_exec_id
from collector.enrich.namespaces import read_namespaces
from collector.enrich.procfs import ProcSnapshot, list_pids, read_snapshot
from collector.enrich.records import PROCESS_EXEC, PROCESS_EXIT, event_record, process_record
from collector.schema import SharedRecord, field_names

Record = dict[str, Any]
Redact = Callable[[list[str]], list[str]]

TICK_NS = BootClock.boot_ns_from_ticks(1)  # /proc start times have this precision
# images that ended (exit, or replaced by an exec) remembered for a fork record
# the kernel held back and sent after its forker had moved on (bpf/process.bpf.c,
# "Forks held back"): one per pid, at least the ENDED_MAX most recent ones and
# at most twice as many (two generations of plain dicts: a dict store per end,
# where an LRU's pop, store and trim cost 2.5 times as much)
ENDED_MAX = 512
SWEEP_INTERVAL_S = 60.0
USERS_FORGET_S = 600.0
# flags that describe how an image was seen, not the image: a fork does not inherit them
_PROVENANCE = frozenset(("execve", "procfs", "fork", "unknown"))


@dataclass(slots=True, eq=False)
class Entry:
    """One process image in the cache."""

    process: Record | None  # None for a fork not yet looked at: see ProcessCache.process_of
    lineage: tuple[Record, ...]  # parent's record, then its ancestors' (nearest first)
    begin_ns: int  # boot time the image began: exec, fork, or /proc start
    start_ns: int  # boot time the thread group began (tick precision if coarse)
    cloned: bool = False  # runs an image inherited by fork, not its own exec
    coarse: bool = False  # start_ns from /proc
    forked: TaskIds | None = None  # the fork record's ids, for a clone
    seen_ns: int = 0  # boot time /proc was read, for an entry found there
    end_ns: int = 0  # boot time the image ended (exit, or replaced by an exec); 0 while live


@dataclass
class CacheStats:
    scanned: int = 0  # processes the start-up scan found
    evictions: int = 0  # live entries dropped because the cache was full
    released: int = 0  # entries of processes whose exit the kernel never reported
    procfs_lookups: int = 0  # cache misses answered from /proc
    unknown_exits: int = 0  # exits of processes the cache did not know
    namespace_misses: int = 0  # execs whose /proc/PID/ns was gone before we looked


def _no_redaction(args: list[str]) -> list[str]:
    return args


class ProcessCache:
    """Builds ProcessEvent records from kernel facts; see the module docstring."""

    def __init__(
        self,
        node: str,
        clock: BootClock,
        max_entries: int = 65536,
        *,
        ancestors: int = 0,
        namespaces: bool = False,
        redact: Redact | None = None,
        cgroups: CgroupResolver | None = None,
        ignore_pid: int | None = None,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
        native: bool = True,
    ) -> None:
        self.node = node
        self.clock = clock
        self.max_entries = max_entries
        self.ancestors = ancestors
        self.namespaces = namespaces
        self.redact = redact or _no_redaction
        self.cgroups = cgroups if cgroups is not None else CgroupResolver(cgroup2_mount())
        self.ignore_pid = ignore_pid  # the collector itself, skipped by the start-up scan
        self._live: OrderedDict[int, Entry] = OrderedDict()
        self._ended: dict[int, Entry] = {}  # see ENDED_MAX: the newer generation
        self._ended_before: dict[int, Entry] = {}  # the older one
        self._suspects: dict[int, Entry] = {}
        self.sweep_interval_s = sweep_interval_s
        now = time.monotonic()
        self._next_sweep = now + sweep_interval_s
        self._next_forget = now + USERS_FORGET_S
        self.stats = CacheStats()
        # the regular exec and exit in C when built (collector.enrich._cache);
        # on_exec_py / on_exit_py are their reference and take every other case
        paths = _native_paths(self) if native else None
        self.native = paths is not None
        self.on_exec: Callable[[ExecRecord], Record] = \
            paths.on_exec if paths is not None else self.on_exec_py
        self.on_exit: Callable[[ExitRecord], Record] = \
            paths.on_exit if paths is not None else self.on_exit_py

    @classmethod
    def from_config(cls, cfg: dict[str, Any], clock: BootClock) -> ProcessCache:
        from collector.filter.redact import build_redactor

        return cls(
            cfg["node"],
            clock,
            cfg["enrich.cache_max_entries"],
            ancestors=cfg["enrich.ancestors"],
            namespaces=cfg["enrich.namespaces"],
            redact=build_redactor(cfg),
            ignore_pid=os.getpid() if cfg["capture.ignore_self"] else None,
            sweep_interval_s=cfg["enrich.sweep_interval_s"],
        )

    def __len__(self) -> int:
        return len(self._live)

    def get(self, pid: int) -> Entry | None:
        return self._live.get(pid)

    def counters(self) -> dict[str, int]:
        """What the stats line shows about enrichment."""
        st = self.stats
        return {
            "cache": len(self._live),
            "evictions": st.evictions,
            "released": st.released,
            "unknown_exits": st.unknown_exits,
            "procfs_lookups": st.procfs_lookups,
            "cgroup_scans": self.cgroups.stats.scans,
            "redacted": getattr(self.redact, "redacted", 0),
        }

    # -- maintenance (called by the reader between batches) -------------------

    def maintain(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_interval_s
            self.sweep()
        if now >= self._next_forget:
            self._next_forget = now + USERS_FORGET_S
            users.forget()

    def sweep(self) -> None:
        """Release entries whose process was gone from /proc at this sweep and
        the one before, and never exited in between: their exit was lost. Two
        sweeps apart, an exit still waiting in the ring buffer is not a risk."""
        try:
            alive = set(list_pids())
        except OSError:
            return
        live = self._live
        for pid, entry in self._suspects.items():
            if pid not in alive and live.get(pid) is entry:
                del live[pid]
                self.stats.released += 1
        self._suspects = {pid: e for pid, e in live.items() if pid not in alive}

    # -- building records ------------------------------------------------------

    def _put(self, pid: int, entry: Entry) -> None:
        live = self._live
        if pid in live:
            del live[pid]  # re-insert at the young end
        live[pid] = entry
        if len(live) > self.max_entries:
            live.popitem(last=False)
            self.stats.evictions += 1

    def _lineage(self, parent: Entry | None) -> tuple[Record, ...]:
        if parent is None:
            return ()
        process = parent.process
        if process is None:
            process = self.process_of(parent)
        if not self.ancestors:
            return (process,)
        return (process, *parent.lineage[: self.ancestors])

    def process_of(self, entry: Entry) -> Record:
        """The entry's Process record. A fork's record is built on first use:
        most forks exec at once, and the exec needs only the fork's lineage."""
        process = entry.process
        if process is None:
            assert entry.forked is not None
            process = entry.process = self._clone(entry.lineage, entry.forked)
        return process

    def _clone(self, lineage: tuple[Record, ...], t: TaskIds) -> Record:
        """The forker's image, under the child's ids (flag "fork")."""
        pp = lineage[0]
        process = SharedRecord(pp)  # a new record, complete before anyone sees it
        process.update(
            exec_id=make_exec_id(self.node, t.start_ns, t.pid),
            parent_exec_id=pp["exec_id"],
            pid=t.pid,
            tid=t.tid,
            ppid=t.ppid,
            start_time=self.clock.to_wall_ns(t.start_ns),
            flags=[*(f for f in pp["flags"] if f not in _PROVENANCE), "fork"],
        )
        if t.cgroup_id != pp["cgroup_id"]:
            process["cgroup_id"] = t.cgroup_id
            process["container_id"] = self._container(t.cgroup_id, t.pid, lineage)
        return process

    def _container(self, cgroup_id: int, pid: int, lineage: tuple[Record, ...]) -> str | None:
        found = self.cgroups.container_id(cgroup_id, pid)
        if found is None and lineage:
            # cgroup v1-only runtimes leave the v2 cgroup uninformative; a child
            # in the very same cgroup as its parent is in the parent's container
            parent = lineage[0]
            if parent["cgroup_id"] == cgroup_id:
                return parent["container_id"]  # type: ignore[no-any-return]
        return found

    def _event(self, event_type: str, ktime_ns: int, process: Record,
               lineage: tuple[Record, ...]) -> Record:
        return event_record(
            event_type, self.clock.to_wall_ns(ktime_ns), self.node, process,
            lineage[0] if lineage else None,
            list(lineage[1:]) if self.ancestors and event_type == PROCESS_EXEC else None)

    def entry_from_snapshot(self, snap: ProcSnapshot) -> Entry:
        """A cache entry for a process found in /proc (flag "procfs")."""
        lineage = self._lineage(self._lookup(snap.ppid))
        cgroup_id = container = None
        for controllers, path in snap.cgroups:
            if controllers == "":
                cgroup_id, container = self.cgroups.learn(path)
        if container is None:  # v1 hierarchies: the scan reads them anyway
            for _, path in snap.cgroups:
                container = container or container_id_from_path(path)
        flags = ["procfs", "kernel_thread"] if snap.kernel_thread else ["procfs"]
        process: Record = process_record(
            exec_id=make_exec_id(self.node, snap.start_ns, snap.pid),
            parent_exec_id=lineage[0]["exec_id"] if lineage else None,
            pid=snap.pid,
            tid=snap.pid,
            ppid=snap.ppid,
            uid=snap.uid,
            euid=snap.euid,
            gid=snap.gid,
            egid=snap.egid,
            auid=snap.auid,
            user=users.user_name(snap.uid),
            comm=snap.comm,
            binary=snap.binary,
            args=self.redact(snap.args),
            args_truncated=False,
            cwd=snap.cwd,
            start_time=self.clock.to_wall_ns(snap.start_ns),
            cgroup_id=cgroup_id,
            container_id=container,
            namespaces=read_namespaces(snap.pid) if self.namespaces else None,
            flags=flags,
        )
        entry = Entry(process, lineage, snap.start_ns, snap.start_ns, coarse=True,
                      seen_ns=snap.seen_ns)
        self._put(snap.pid, entry)
        return entry

    def procfs_event(self, entry: Entry, ktime_ns: int) -> Record:
        """A process_exec for an image found in /proc (seen at ktime_ns)."""
        return self._event(PROCESS_EXEC, ktime_ns, self.process_of(entry), entry.lineage)

    def _current(self, pid: int, start_ns: int) -> Entry | None:
        """The cached image of this thread group; not an older one with the same pid."""
        entry = self._live.get(pid)
        if entry is None:
            return None
        if entry.start_ns == start_ns or (
            entry.coarse and entry.start_ns == start_ns - start_ns % TICK_NS
        ):
            return entry
        return None  # pid reused, the old one's exit was lost

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
        lineage = self._lineage(self._lookup(task.ppid))
        process: Record = process_record(
            exec_id=make_exec_id(self.node, task.start_ns, task.pid),
            parent_exec_id=lineage[0]["exec_id"] if lineage else None,
            pid=task.pid,
            tid=task.tid,
            ppid=task.ppid,
            uid=0,
            euid=0,
            gid=0,
            egid=0,
            auid=None,
            user=None,
            comm=task.comm,
            binary="",
            args=[],
            args_truncated=False,
            cwd="",
            start_time=self.clock.to_wall_ns(task.start_ns),
            cgroup_id=task.cgroup_id,
            container_id=self._container(task.cgroup_id, task.pid, lineage),
            namespaces=None,
            flags=["unknown"],
        )
        return Entry(process, lineage, task.start_ns, task.start_ns)

    # -- kernel facts in ---------------------------------------------------------

    def _ended_image(self, pid: int, entry: Entry, end_ns: int) -> None:
        """Remember an image that ended at end_ns (see ENDED_MAX)."""
        entry.end_ns = end_ns
        ended = self._ended
        ended[pid] = entry
        if len(ended) >= ENDED_MAX:
            self._ended_before, self._ended = ended, {}

    def _forker(self, pid: int, fork_ns: int) -> Entry | None:
        """The image pid ran at fork_ns. The kernel may send a fork record late
        (at the child's exec or exit), after the forker exec'd or exited: then
        the image it ran at the fork is the one that ended, not the live one.
        An ended image counts only if it ran at fork_ns: pids wrap, and the one
        that ended may be an earlier process's with the same pid."""
        live = self._live.get(pid)
        if live is not None and live.begin_ns <= fork_ns:
            return live
        for ended in (self._ended.get(pid), self._ended_before.get(pid)):  # newer first
            if ended is not None and ended.begin_ns <= fork_ns <= ended.end_ns:
                return ended
        return live if live is not None else self._lookup(pid)

    def _scanned_lineage(self, scanned: Entry, ppid: int, ktime_ns: int) -> tuple[Record, ...]:
        """The lineage of an exec that /proc already showed (it ran between attach
        and the scan's read). The scan linked it to its parent's image as /proc
        showed that; if the kernel's record of the parent's own exec came since
        (it too ran during the scan), the parent's entry now holds that image
        under the exec's exec_id, and the child links to it: the parent event's
        exec_id, not the scan's id of the same image."""
        parent = self._live.get(ppid)
        if parent is not None and parent.begin_ns <= ktime_ns:
            return self._lineage(parent)
        return scanned.lineage

    def on_fork(self, rec: ForkRecord) -> None:
        t = rec.task
        parent = self._forker(t.ppid, rec.ktime_ns)
        if parent is None:
            return  # parent gone already; the child's exec/exit will look it up
        self._put(t.pid, Entry(None, self._lineage(parent), t.start_ns, t.start_ns, True, False, t))

    def on_exec_py(self, rec: ExecRecord) -> Record:
        """An exec's event (self.on_exec: collector.enrich._cache when built)."""
        t = rec.task
        pid = t.pid
        previous = self._live.get(pid)
        if previous is not None and previous.start_ns != t.start_ns:
            previous = self._current(pid, t.start_ns)  # coarse /proc start, or a reused pid
        if previous is None:
            lineage = self._lineage(self._lookup(t.ppid) if t.ppid > 0 else None)
        elif previous.cloned:
            lineage = previous.lineage  # first exec after fork: the forker is the parent
        elif rec.ktime_ns < previous.seen_ns:
            lineage = self._scanned_lineage(previous, t.ppid, rec.ktime_ns)
        else:
            lineage = self._lineage(previous)  # exec without fork: the old image is the parent
        namespaces = None
        if self.namespaces:
            namespaces = read_namespaces(pid)
            if namespaces is None:
                self.stats.namespace_misses += 1
        uid = rec.uid
        user = users.user_name(uid)
        redact = self.redact
        # by position, in the schema's order (see records.process_record)
        process: Record = process_record(
            make_exec_id(self.node, rec.ktime_ns, pid),  # exec_id
            lineage[0]["exec_id"] if lineage else None,  # parent_exec_id
            pid, t.tid, t.ppid,  # pid, tid, ppid
            uid, rec.euid, rec.gid, rec.egid, rec.auid,  # uid, euid, gid, egid, auid
            user, t.comm, rec.binary,  # user, comm, binary
            rec.args if redact is _no_redaction else redact(rec.args),  # args
            rec.args_truncated, rec.cwd,  # args_truncated, cwd
            self.clock.to_wall_ns(t.start_ns),  # start_time
            t.cgroup_id, self._container(t.cgroup_id, pid, lineage),  # cgroup_id, container_id
            namespaces, rec.flags,  # namespaces, flags
        )
        if previous is not None:
            self._ended_image(pid, previous, rec.ktime_ns)
        self._put(pid, Entry(process, lineage, rec.ktime_ns, t.start_ns))
        return self._event(PROCESS_EXEC, rec.ktime_ns, process, lineage)

    def on_exit_py(self, rec: ExitRecord) -> Record:
        """An exit's event (self.on_exit: collector.enrich._cache when built)."""
        t = rec.task
        entry = self._live.get(t.pid)
        if entry is not None and entry.start_ns != t.start_ns:
            entry = self._current(t.pid, t.start_ns)  # coarse /proc start, or a reused pid
        if entry is None:
            self.stats.unknown_exits += 1
            entry = self._unknown(t)
        self._live.pop(t.pid, None)
        self._ended_image(t.pid, entry, rec.ktime_ns)
        process = self.process_of(entry)
        if t.tid != process["tid"] or t.ppid != process["ppid"] or \
                t.cgroup_id != process["cgroup_id"]:
            process = SharedRecord(process)  # a new record, complete before anyone sees it
            process["tid"] = t.tid
            process["ppid"] = t.ppid  # the reaper, if the parent died first
            if t.cgroup_id != process["cgroup_id"]:
                process["cgroup_id"] = t.cgroup_id
                process["container_id"] = self._container(t.cgroup_id, t.pid, entry.lineage)
        event = self._event(PROCESS_EXIT, rec.ktime_ns, process, entry.lineage)
        event["exit_code"], event["signal"], event["core_dumped"] = exit_fields(rec.exit_status)
        event["duration_ns"] = max(0, rec.ktime_ns - entry.begin_ns)
        return event


try:
    from collector.enrich._cache import Paths as _Paths
except ImportError:  # installed without a C compiler
    _Paths = None
NATIVE = _Paths is not None  # for tests, the benches and `collector check`


def _native_paths(cache: ProcessCache) -> Any:
    """collector.enrich._cache's exec and exit for this cache, or None: not
    built, or a cache it does not serve (one that reads namespaces). It checks
    the dataclasses' fields and the schema's against the ones it reads and
    fills, and calls the Python methods for every case it does not take."""
    if cache.namespaces or _Paths is None:
        return None
    types = (Entry, ExecRecord, ExitRecord, TaskIds)
    return _Paths(
        cache=cache,
        types=types,
        names=tuple(tuple(f.name for f in fields(t)) for t in types),
        process_fields=field_names("Process"),
        event_fields=field_names("ProcessEvent"),
        shared=SharedRecord,
        exec_py=cache.on_exec_py,
        exit_py=cache.on_exit_py,
        container_py=cache._container,
        node=cache.node,
        clock=cache.clock,
        clock_type=BootClock,
        refresh_ns=_clock.REFRESH_NS,
        redact=None if cache.redact is _no_redaction else cache.redact,
        redact_screen=getattr(cache.redact, "screen", None),
        cgroups=cache.cgroups,
        resolver_type=CgroupResolver,
        make_exec_id=make_exec_id,
        user_name=users.user_name,
        exit_fields=exit_fields,
        exec_type=PROCESS_EXEC,
        exit_type=PROCESS_EXIT,
        ancestors=cache.ancestors,
        max_entries=cache.max_entries,
        ended_max=ENDED_MAX,
    )
