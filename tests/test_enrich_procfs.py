"""The start-up scan: processes running before the collector, read from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from collector.enrich.scan import without_repeats
from tests.helpers import CollectorProcess, stat_value, wait_for

SLEEP = os.path.realpath("/bin/sleep")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def wait_scanned(c: CollectorProcess) -> CollectorProcess:
    """The probes are attached before the scan starts; wait for the scan to end."""
    c.wait_attached()
    wait_for(lambda: any("start-up scan:" in line for line in c.stderr_lines))
    return c


def procfs_events(c: CollectorProcess, pid: int, event_type: str) -> list[dict[str, Any]]:
    return [e for e in c.events() if e["process"]["pid"] == pid
            and e["event_type"] == event_type and "procfs" in e["process"]["flags"]]


def test_sleep_started_before_the_collector(tmp_path: Any) -> None:
    sleeper = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        with CollectorProcess() as c:
            c.wait_attached()
            [ex] = wait_for(lambda: procfs_events(c, sleeper.pid, "process_exec"))
            sleeper.send_signal(signal.SIGTERM)
            assert sleeper.wait() == -signal.SIGTERM
            [exit_] = wait_for(lambda: procfs_events(c, sleeper.pid, "process_exit"))
            assert c.stop() == 0, c.stderr
            events = c.events()
            line = c.stats_line()
    finally:
        sleeper.kill()
        sleeper.wait()
    p = ex["process"]
    assert p["flags"] == ["procfs"]
    assert (p["binary"], p["args"], p["cwd"]) == (SLEEP, ["sleep", "30"], str(tmp_path))
    assert (p["pid"], p["ppid"], p["uid"], p["user"]) == (sleeper.pid, os.getpid(), 0, "root")
    assert p["comm"] == "sleep"
    assert exit_["process"]["exec_id"] == p["exec_id"]
    assert exit_["signal"] == "SIGTERM"
    # its parent is this pytest process, found by the same scan
    [me] = [e for e in events if e["process"]["pid"] == os.getpid()
            and e["event_type"] == "process_exec"]
    assert me["process"]["flags"] == ["procfs"]
    assert ex["parent"] == me["process"]
    assert p["parent_exec_id"] == me["process"]["exec_id"]
    # kernel threads are marked; kthreadd and its children
    kthreadd = [e for e in events if e["process"]["pid"] == 2 and "procfs" in e["process"]["flags"]]
    assert [e["process"]["flags"] for e in kthreadd] == [["procfs", "kernel_thread"]]
    assert (kthreadd[0]["process"]["binary"], kthreadd[0]["process"]["args"]) == ("", [])
    kernel = [e for e in events if "procfs" in e["process"]["flags"]
              and e["event_type"] == "process_exec" and e["process"]["ppid"] == 2]
    assert kernel and all("kernel_thread" in e["process"]["flags"] for e in kernel)
    assert not any("kernel_thread" in e["process"]["flags"] for e in [me, ex])
    # the collector does not report itself
    assert not [e for e in events if e["process"]["pid"] == c.proc.pid]
    scanned = [e for e in events if e["event_type"] == "process_exec"
               and "procfs" in e["process"]["flags"]]
    assert stat_value(line, "procfs") == len(scanned)


def _start_ns(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    return ticks * 1_000_000_000 // CLK_TCK


def test_no_procfs_events_still_seeds_the_cache() -> None:
    exec_ids = []
    for flags in ((), ("--no-procfs-events",)):
        with CollectorProcess(*flags) as c:
            c.wait_attached()
            # a child of ours is linked to us (found by the scan) either way
            child = subprocess.Popen(["sleep", "0"])
            child.wait()
            # by pid and the kernel's ppid: pids wrap at 32768 here, and an earlier
            # process with this pid may have exited while the collector ran
            [child_exit] = wait_for(lambda: [
                e for e in c.events() if e["process"]["pid"] == child.pid  # noqa: B023
                and e["process"]["ppid"] == os.getpid() and e["event_type"] == "process_exit"])
            assert c.stop() == 0, c.stderr
            procfs = [e for e in c.events() if e["event_type"] == "process_exec"
                      and "procfs" in e["process"]["flags"]]
            assert bool(procfs) == (not flags)
            assert stat_value(c.stats_line(), "procfs") == len(procfs)
            assert child_exit["parent"]["pid"] == os.getpid()
            assert child_exit["parent"]["flags"] == ["procfs"]
            exec_ids.append(child_exit["parent"]["exec_id"])
    # the exec_id of a process found in /proc is the same from one run to the next
    assert exec_ids[0] == exec_ids[1]


def test_procfs_start_time_and_exit_link() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        wait_for(lambda: os.readlink(f"/proc/{sleeper.pid}/exe") == SLEEP)
        boot_ns = _start_ns(sleeper.pid)
        wall_minus_boot = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(
            time.CLOCK_BOOTTIME)
        with CollectorProcess("--no-procfs-events") as c:
            wait_scanned(c)
            sleeper.kill()
            sleeper.wait()
            [exit_] = wait_for(lambda: procfs_events(c, sleeper.pid, "process_exit"))
            assert c.stop() == 0, c.stderr
        assert not procfs_events(c, sleeper.pid, "process_exec")
        p = exit_["process"]
        assert (p["binary"], p["args"], p["flags"]) == (SLEEP, ["sleep", "30"], ["procfs"])
        assert exit_["signal"] == "SIGKILL"
        from datetime import datetime

        head, frac = p["start_time"].rstrip("Z").split(".")
        start = int(datetime.fromisoformat(head + "+00:00").timestamp()) * 10**9 + int(frac)
        assert abs(start - (boot_ns + wall_minus_boot)) < 1_000_000  # same tick, < 1 ms skew
        # duration runs from the start /proc gave
        assert exit_["duration_ns"] >= 0
    finally:
        sleeper.kill()
        sleeper.wait()


def test_processes_starting_around_the_scan_are_reported_once(tmp_path: Any) -> None:
    """Processes started before, during and after the attach and the scan: the
    kernel's records and the scan overlap, yet each image is reported once, and
    each exit carries the exec_id of the one exec event reported for it."""
    stop = time.monotonic() + 60
    procs: list[subprocess.Popen[bytes]] = []
    spawning = True

    def spawn() -> None:
        while spawning and time.monotonic() < stop:
            procs.append(subprocess.Popen(["sleep", "0.3"]))
            time.sleep(0.002)

    spawner = threading.Thread(target=spawn)
    spawner.start()
    try:
        time.sleep(0.5)
        with CollectorProcess() as c:
            wait_scanned(c)
            # enough processes start after the scan however loaded the host is
            after_scan = len(procs)
            wait_for(lambda: len(procs) >= after_scan + 120, timeout=50)
            spawning = False
            spawner.join()
            pids = [p.pid for p in procs]
            wait_for(lambda: all(c.of_pid(pid, "process_exit") for pid in pids[-20:]), timeout=30)
            time.sleep(0.5)
            assert c.stop() == 0, c.stderr
    finally:
        spawning = False
        spawner.join()
        for p in procs:
            p.wait()
    events = c.events()
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        by_pid.setdefault(e["process"]["pid"], []).append(e)
    seen = 0
    for pid in pids:
        mine = by_pid.get(pid, [])
        execs = [e for e in mine if e["event_type"] == "process_exec"
                 and e["process"]["binary"] == SLEEP]
        exits = [e for e in mine if e["event_type"] == "process_exit"]
        if not execs and not exits:
            continue  # gone before the collector started
        if not execs and exits[0]["process"]["binary"] == "":
            continue  # exec'd before attach, exited before the scan read it: image unknown
        seen += 1
        assert len(execs) == 1, (pid, [(e["event_type"], e["process"]["flags"]) for e in mine])
        assert len(exits) == 1, pid
        assert exits[0]["process"]["exec_id"] == execs[0]["process"]["exec_id"]
    flags = {f for e in events for f in e["process"]["flags"]}
    assert seen > 100 and {"procfs", "execve"} <= flags


def test_a_repeated_image_still_named_as_a_parent_is_kept() -> None:
    """A shell that exec'd between attach and the scan: the kernel reports its new
    image, but its child, found by the scan, names the scan's exec_id as parent,
    so that event stays: a link always leads to an event."""
    def ev(pid: int, exec_id: str, parent: str | None, ancestors: tuple[str, ...] = ()
           ) -> dict[str, Any]:
        return {"process": {"pid": pid, "exec_id": exec_id, "parent_exec_id": parent},
                "ancestors": [{"exec_id": a} for a in ancestors] or None}

    init, shell, child = ev(1, "i", None), ev(10, "s", "i"), ev(11, "c", "s")
    lone, late = ev(20, "l", "i"), ev(30, "t", "l", ancestors=("l", "i"))
    assert without_repeats([init, shell, child], {10}) == [init, shell, child]
    assert without_repeats([init, shell, lone], {10}) == [init, lone]
    assert without_repeats([init, lone, late], {20}) == [init, lone, late]
    assert without_repeats([init, lone, late], {20, 30}) == [init]


LEADER_EXITS = """
import ctypes, threading, time
threading.Thread(target=time.sleep, args=(30,)).start()
time.sleep(0.1)
ctypes.CDLL(None).pthread_exit(None)  # the main thread goes; the process lives on
"""


def leader_is_a_zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    threads = Path(f"/proc/{pid}/status").read_text().split("Threads:")[1].split()[0]
    return stat.rsplit(")", 1)[1].split()[0] == "Z" and int(threads) > 1


def test_a_process_whose_main_thread_exited_is_still_reported_whole() -> None:
    proc = subprocess.Popen([sys.executable, "-c", LEADER_EXITS, "leader-exits"])
    try:
        wait_for(lambda: leader_is_a_zombie(proc.pid))
        with CollectorProcess() as c:
            [ex] = wait_for(lambda: procfs_events(c, proc.pid, "process_exec"))
            proc.kill()
            proc.wait()
            [exit_] = wait_for(lambda: procfs_events(c, proc.pid, "process_exit"))
            assert c.stop() == 0, c.stderr
    finally:
        proc.kill()
        proc.wait()
    p = ex["process"]
    assert p["binary"] == os.path.realpath(sys.executable)
    assert p["args"][-1] == "leader-exits" and p["cwd"] == os.getcwd()
    assert exit_["process"]["exec_id"] == p["exec_id"] and exit_["signal"] == "SIGKILL"
