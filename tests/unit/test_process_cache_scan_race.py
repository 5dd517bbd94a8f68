"""A tree that starts while the start-up scan reads /proc: the scan sees the
parent and the child, then the kernel's records of their execs come. The
child's exec must link to the parent's exec event (its exec_id), not to the
scan's id of the same image, which no event carries once the kernel's record
replaced it (the scan's events of both are dropped as repeats)."""

from __future__ import annotations

import time

import pytest

from collector.clock import BootClock
from collector.decode import ExecRecord, ExitRecord, TaskIds
from collector.enrich.containers import CgroupResolver
from collector.enrich.process_cache import ProcessCache
from collector.enrich.procfs import ProcSnapshot

PID0 = 5_000_000  # above any pid_max: /proc knows none of them
TICK = BootClock.boot_ns_from_ticks(1)


def _snap(pid: int, ppid: int, binary: str, start_ns: int, seen_ns: int) -> ProcSnapshot:
    return ProcSnapshot(pid=pid, ppid=ppid, uid=0, euid=0, gid=0, egid=0, auid=None,
                        comm=binary.rsplit("/", 1)[-1], binary=binary, args=[binary], cwd="/",
                        start_ns=start_ns - start_ns % TICK, seen_ns=seen_ns,
                        kernel_thread=False, exited=False, cgroups=[])


def _exec(ktime: int, pid: int, ppid: int, start_ns: int, binary: str) -> ExecRecord:
    task = TaskIds(pid, pid, ppid, start_ns, 1, binary.rsplit("/", 1)[-1])
    return ExecRecord(ktime, task, 0, 0, 0, 0, None, binary, "/", [binary], False, ["execve"])


@pytest.mark.parametrize("native", [True, False])
def test_a_child_exec_the_scan_saw_links_to_its_parents_exec_event(native: bool) -> None:
    cache = ProcessCache("n", BootClock(), ancestors=2, cgroups=CgroupResolver(None),
                         native=native)
    shell, child = PID0, PID0 + 1
    t0 = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - 10**9
    seen = t0 + 5_000_000  # /proc read after both execs
    cache.entry_from_snapshot(_snap(shell, PID0 - 1, "/bin/bash", t0, seen))
    cache.entry_from_snapshot(_snap(child, shell, "/usr/bin/python3", t0 + 1000, seen))
    bash = cache.on_exec(_exec(t0 + 500, shell, PID0 - 1, t0, "/bin/bash"))
    python = cache.on_exec(_exec(t0 + 2000, child, shell, t0 + 1000, "/usr/bin/python3"))
    assert python["parent"] is bash["process"]
    assert python["process"]["parent_exec_id"] == bash["process"]["exec_id"]
    end = cache.on_exit(ExitRecord(seen + 10, TaskIds(child, child, shell, t0 + 1000, 1,
                                                      "python3"), 0))
    assert end["parent"] is bash["process"]
    # a parent that exec'd again after the child's exec is not the child's parent image
    cache2 = ProcessCache("n", BootClock(), cgroups=CgroupResolver(None), native=native)
    cache2.entry_from_snapshot(_snap(shell, PID0 - 1, "/bin/bash", t0, seen))
    scanned = cache2.entry_from_snapshot(_snap(child, shell, "/bin/sh", t0 + 1000, seen))
    cache2.on_exec(_exec(t0 + 3000, shell, PID0 - 1, t0, "/bin/bash"))
    late = cache2.on_exec(_exec(t0 + 2000, child, shell, t0 + 1000, "/bin/sh"))
    assert late["parent"] is scanned.lineage[0]
