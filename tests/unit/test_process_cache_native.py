"""collector.enrich._cache (C) against its reference, ProcessCache.on_exec_py /
on_exit_py: the same events, in the same key order, sharing the same records,
and the same cache state after the same kernel facts; and the regular cases
are taken in C (a fast path that always handed back to Python would pass the
comparison and be worth nothing)."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from collector.clock import BootClock
from collector.decode import ExecRecord, ExitRecord, ForkRecord, TaskIds
from collector.enrich import process_cache
from collector.enrich.containers import CgroupResolver
from collector.enrich.process_cache import ENDED_MAX, ProcessCache
from collector.filter.redact import ArgvRedactor

# above any pid_max: a /proc read of them finds nothing, on every machine
PID0 = 5_000_000
CONTAINER = "c" * 64


def _resolver() -> CgroupResolver:
    cg = CgroupResolver(None)
    cg._remember(100, CONTAINER)  # a cgroup known to be a container's
    return cg  # 1 (the root) answers None; 300 is never known: each ask goes to Python


def test_the_package_was_built_with_it() -> None:
    assert process_cache.NATIVE and ProcessCache("n", BootClock()).native


class Storm:
    """Kernel facts of a random process tree: forks held back or sent, execs with
    and without fork, exits with codes and signals, reaped by init, from
    another thread or cgroup, pids reused after a lost exit, unknown exits."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.now = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - 10**9
        self.next_pid = PID0
        self.alive: dict[int, TaskIds] = {}

    def _tick(self) -> int:
        self.now += self.rnd.randint(1, 5000)
        return self.now

    def _task(self, pid: int, ppid: int, start_ns: int, cgroup: int) -> TaskIds:
        return TaskIds(pid=pid, tid=pid, ppid=ppid, start_ns=start_ns, cgroup_id=cgroup,
                       comm=self.rnd.choice(["sh", "true", "python3"]))

    def _exec(self, t: TaskIds) -> ExecRecord:
        r = self.rnd
        args = [t.comm, *r.choice([[], ["-c", "true"], ["--password", "hunter2"],
                                   ["token=abc123", "x"]])]
        return ExecRecord(self._tick(), t, r.choice([0, 1000]), 0, 0, 0,
                          r.choice([None, 1000]), f"/usr/bin/{t.comm}", "/tmp", args,
                          r.random() < 0.1, ["execve"])

    def records(self, n: int) -> list[Any]:
        r, out = self.rnd, []
        while len(out) < n:
            op = r.random()
            if op < 0.45 or not self.alive:  # a new process
                pid = self.next_pid
                self.next_pid += 1
                ppid = r.choice([*list(self.alive)[-8:], 0, PID0 - 1])  # PID0 - 1: never cached
                start = self._tick()
                t = self._task(pid, ppid, start, r.choice([1, 1, 100, 300]))
                if r.random() < 0.4:
                    out.append(ForkRecord(start, t))
                if r.random() < 0.85:
                    out.append(self._exec(t))
                self.alive[pid] = t
            elif op < 0.55:  # exec without fork
                out.append(self._exec(self.alive[r.choice(list(self.alive))]))
            elif op < 0.60:  # the pid reused: the old one's exit was lost
                old = self.alive[r.choice(list(self.alive))]
                t = self._task(old.pid, old.ppid, self._tick(), old.cgroup_id)
                self.alive[old.pid] = t
                out.append(self._exec(t))
            elif op < 0.62:  # an exit of a process never seen
                t = self._task(self.next_pid, PID0 - 1, self._tick(), 1)
                self.next_pid += 1
                out.append(ExitRecord(self._tick(), t, 0))
            else:
                t = self.alive.pop(r.choice(list(self.alive)))
                ppid = PID0 - 1 if r.random() < 0.2 else t.ppid  # reaped after its parent died
                tid = t.pid + 1 if r.random() < 0.1 else t.tid
                cgroup = 100 if r.random() < 0.05 else t.cgroup_id
                status = r.choice([0, 0, 3 << 8, 9, 0x80 | 11, 255 << 8])
                out.append(ExitRecord(self._tick(), TaskIds(t.pid, tid, ppid, t.start_ns,
                                                            cgroup, t.comm), status))
        return out


def _feed(cache: ProcessCache, records: list[Any]) -> list[dict[str, Any]]:
    events = []
    for rec in records:
        if isinstance(rec, ExecRecord):
            events.append(cache.on_exec(rec))
        elif isinstance(rec, ExitRecord):
            events.append(cache.on_exit(rec))
        else:
            cache.on_fork(rec)
    return events


def _entry_state(e: process_cache.Entry) -> tuple[Any, ...]:
    return (e.process, e.lineage, e.begin_ns, e.start_ns, e.cloned, e.coarse, e.forked,
            e.seen_ns, e.end_ns)


def _sharing(events: list[dict[str, Any]]) -> list[tuple[int, ...]]:
    """Which earlier event's record each event's process and parent are (by identity)."""
    seen: dict[int, int] = {}
    out = []
    for i, ev in enumerate(events):
        row = []
        for rec in (ev["process"], ev["parent"]):
            row.append(seen.setdefault(id(rec), i) if rec is not None else -1)
        out.append(tuple(row))
    return out


@pytest.mark.parametrize("ancestors", [0, 2])
@pytest.mark.parametrize("redact", [False, True])
@pytest.mark.parametrize("max_entries", [65536, 40])
def test_the_same_events_and_state_as_the_python_reference(
        ancestors: int, redact: bool, max_entries: int) -> None:
    records = Storm(seed=ancestors * 10 + redact + max_entries).records(3 * ENDED_MAX)
    clock = BootClock()
    caches = [ProcessCache("node-a", clock, max_entries, ancestors=ancestors,
                           redact=ArgvRedactor([], defaults=True) if redact else None,
                           cgroups=_resolver(), native=native) for native in (True, False)]
    assert [c.native for c in caches] == [True, False]
    fast, ref = (_feed(c, records) for c in caches)
    assert fast == ref
    assert [list(e) for e in fast] == [list(e) for e in ref]  # key order: the JSON line's
    assert [list(e["process"]) for e in fast] == [list(e["process"]) for e in ref]
    assert [type(e["process"]) for e in fast] == [type(e["process"]) for e in ref]
    assert _sharing(fast) == _sharing(ref)
    a, b = caches
    assert list(a._live) == list(b._live)  # the LRU's order too
    assert [_entry_state(e) for e in a._live.values()] == \
        [_entry_state(e) for e in b._live.values()]
    for attr in ("_ended", "_ended_before"):
        assert list(getattr(a, attr)) == list(getattr(b, attr))
        assert [_entry_state(e) for e in getattr(a, attr).values()] == \
            [_entry_state(e) for e in getattr(b, attr).values()]
    assert a.stats == b.stats
    assert a.cgroups.stats == b.cgroups.stats
    assert getattr(a.redact, "redacted", 0) == getattr(b.redact, "redacted", 0)
    if max_entries < 100:
        assert a.stats.evictions > 0
    if redact:
        assert not any("hunter2" in e["process"]["args"] for e in fast)
        assert a.redact.redacted > 0  # type: ignore[attr-defined]


def test_the_regular_exec_and_exit_are_taken_in_c(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for name in ("on_exec_py", "on_exit_py"):
        method = getattr(ProcessCache, name)
        monkeypatch.setattr(ProcessCache, name,
                            lambda self, rec, _m=method, _n=name: calls.append(_n) or _m(self, rec))
    cache = ProcessCache("n", BootClock(), cgroups=_resolver())
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    storm = Storm(1)
    parent = TaskIds(PID0, PID0, 0, now - 100, 1, "sh")
    cache.on_exec(storm._exec(parent))  # no parent (ppid 0): regular
    child = TaskIds(PID0 + 1, PID0 + 1, PID0, now - 50, 1, "true")
    cache.on_fork(ForkRecord(now - 50, child))
    cache.on_exec(storm._exec(child))  # after its fork: regular
    exit_ = cache.on_exit(ExitRecord(now, child, 9))  # killed: regular, named by Python
    assert exit_["signal"] == "SIGKILL" and exit_["exit_code"] is None
    assert calls == []
    # the cases it hands back: a parent not cached, an exit that changes the record
    cache.on_exec(storm._exec(TaskIds(PID0 + 2, PID0 + 2, PID0 - 1, now, 1, "x")))
    cache.on_exit(ExitRecord(now, TaskIds(PID0, PID0, 1, now - 100, 1, "sh"), 0))
    assert calls == ["on_exec_py", "on_exit_py"]


def test_a_cache_that_reads_namespaces_is_served_by_python() -> None:
    assert not ProcessCache("n", BootClock(), namespaces=True).native
