"""The images that ended, kept for fork records the kernel sends late: the most
recent ENDED_MAX at least, never more than twice as many."""

from __future__ import annotations

import time

from collector.clock import BootClock
from collector.decode import ExitRecord, ForkRecord, TaskIds
from collector.enrich.containers import CgroupResolver
from collector.enrich.process_cache import ENDED_MAX, ProcessCache


def _cache() -> ProcessCache:
    return ProcessCache("n", BootClock(), cgroups=CgroupResolver(None))


def _task(pid: int, ppid: int, start_ns: int) -> TaskIds:
    return TaskIds(pid=pid, tid=pid, ppid=ppid, start_ns=start_ns, cgroup_id=1, comm="c")


def test_the_last_ended_images_are_kept_and_the_memory_is_bounded() -> None:
    cache = _cache()
    t0 = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - 10**9
    pids = range(2_000_000, 2_000_000 + 5 * ENDED_MAX)
    for i, pid in enumerate(pids):
        cache.on_exit(ExitRecord(t0 + 10 * i + 5, _task(pid, 0, t0 + 10 * i), 0))
    kept = {**cache._ended_before, **cache._ended}
    assert len(kept) <= 2 * ENDED_MAX
    assert set(pids[-ENDED_MAX:]) <= set(kept)
    # a late fork record of the newest of them still finds its forker's image
    last = pids[-1]
    cache.on_fork(ForkRecord(t0 + 10 * (len(pids) - 1) + 1, _task(42, last, t0)))
    forked = cache.get(42)
    assert forked is not None and forked.lineage[0]["pid"] == last


def test_a_late_fork_finds_the_older_image_of_a_pid_that_ended_twice() -> None:
    cache = _cache()
    t0 = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - 10**9
    cache.on_exit(ExitRecord(t0 + 100, _task(7_000_001, 0, t0), 0))  # first image: t0..t0+100
    for i in range(ENDED_MAX):  # fill a generation: the first image moves to the older one
        cache.on_exit(ExitRecord(t0 + 200 + i, _task(7_100_000 + i, 0, t0 + 150), 0))
    cache.on_exit(ExitRecord(t0 + 2000, _task(7_000_001, 0, t0 + 1000), 0))  # pid reused
    cache.on_fork(ForkRecord(t0 + 50, _task(43, 7_000_001, t0 + 50)))  # forked by the first
    forked = cache.get(43)
    assert forked is not None
    assert forked.lineage[0]["start_time"] == cache.clock.to_wall_ns(t0)


def test_a_late_fork_skips_an_image_that_had_ended_before_the_fork() -> None:
    """pids wrap: the image that ended under the forker's pid may be an earlier
    process's, which cannot have forked after its end."""
    cache = _cache()
    t0 = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - 10**9
    cache.on_exit(ExitRecord(t0 + 100, _task(7_000_002, 0, t0), 0))  # ran t0..t0+100
    for i in range(ENDED_MAX):  # and again from the older generation
        cache.on_exit(ExitRecord(t0 + 200 + i, _task(7_200_000 + i, 0, t0 + 150), 0))
    # a later process with the same pid, never seen by the cache, forks at t0+5000
    cache.on_fork(ForkRecord(t0 + 5000, _task(44, 7_000_002, t0 + 5000)))
    assert cache.get(44) is None  # no wrong parent: the child's exec looks it up
    # while a fork within the image's life still finds it
    cache.on_fork(ForkRecord(t0 + 50, _task(45, 7_000_002, t0 + 50)))
    forked = cache.get(45)
    assert forked is not None
    assert forked.lineage[0]["start_time"] == cache.clock.to_wall_ns(t0)
