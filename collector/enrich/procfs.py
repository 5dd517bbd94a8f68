"""Read a live process from /proc into a Process record.

Used for processes the kernel probes have not told us about: those running
before the collector started, and parents we never saw exec. Such records
carry the flag "procfs". /proc is racy by nature: a process can vanish
between reads, so every read is allowed to fail and returns None.

Some processes hide their exe and cwd links even from root (e.g. a
non-dumpable init); their binary then falls back to an absolute argv[0].
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from collector.clock import BootClock
from collector.decode import text
from collector.enrich.containers import proc_cgroups


@dataclass(slots=True)
class ProcSnapshot:
    """What /proc says about one thread group."""

    pid: int
    ppid: int
    uid: int
    euid: int
    gid: int
    egid: int
    auid: int | None
    comm: str
    binary: str
    args: list[str]
    cwd: str
    start_ns: int  # CLOCK_BOOTTIME, clock-tick precision
    seen_ns: int  # CLOCK_BOOTTIME just before /proc was read
    kernel_thread: bool
    exited: bool  # a zombie, or exiting: its image (exe, cwd, argv) is gone already
    cgroups: list[tuple[str, str]]  # (controllers, path) per hierarchy; "" is cgroup v2


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_snapshot(pid: int, proc: str = "/proc") -> ProcSnapshot | None:
    base = f"{proc}/{pid}"
    seen_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    try:
        stat = _read(f"{base}/stat")
        status = _read(f"{base}/status")
        cmdline = _read(f"{base}/cmdline")
    except OSError:
        return None
    # comm is in parentheses and may itself contain ") "
    rparen = stat.rfind(b")")
    comm = stat[stat.find(b"(") + 1 : rparen]
    fields = stat[rparen + 2 :].split()
    ppid = int(fields[1])
    flags = int(fields[6])
    start_ticks = int(fields[19])
    ids: dict[bytes, list[int]] = {}
    threads = 1
    for line in status.splitlines():
        if line.startswith((b"Uid:", b"Gid:")):
            ids[line[:3]] = [int(x) for x in line.split()[1:]]
        elif line.startswith(b"Threads:"):
            threads = int(line.split()[1])
    uid, euid = ids.get(b"Uid", [0, 0])[:2]
    gid, egid = ids.get(b"Gid", [0, 0])[:2]
    try:
        auid_raw = int(_read(f"{base}/loginuid"))
        auid: int | None = None if auid_raw == 0xFFFFFFFF else auid_raw
    except (OSError, ValueError):
        auid = None
    kernel_thread = bool(flags & 0x00200000)  # PF_KTHREAD
    leader_gone = fields[0] in (b"Z", b"X") or bool(flags & 0x00000004)  # PF_EXITING
    # A main thread that called pthread_exit is a zombie while the others run on:
    # the process is alive, and its image is read through one of them.
    exited = leader_gone and threads <= 1
    if leader_gone and not exited:
        base, cmdline = _live_task(base, pid, cmdline)
    try:
        binary = text(os.readlink(f"{base}/exe".encode()))
    except OSError:
        binary = ""
    try:
        cwd = text(os.readlink(f"{base}/cwd".encode()))
    except OSError:
        cwd = ""
    # argv is NUL-terminated, unless the process rewrote it (setproctitle)
    args = [text(a) for a in cmdline.removesuffix(b"\0").split(b"\0")] if cmdline else []
    if not binary and args and args[0].startswith("/") and not kernel_thread:
        binary = args[0]
    return ProcSnapshot(
        pid=pid,
        ppid=ppid,
        uid=uid,
        euid=euid,
        gid=gid,
        egid=egid,
        auid=auid,
        comm=text(comm),
        binary=binary,
        args=args,
        cwd=cwd,
        start_ns=BootClock.boot_ns_from_ticks(start_ticks),
        seen_ns=seen_ns,
        kernel_thread=kernel_thread,
        exited=exited,
        cgroups=proc_cgroups(pid) or [],
    )


def _live_task(base: str, pid: int, cmdline: bytes) -> tuple[str, bytes]:
    """The /proc directory of a thread of pid other than its (exited) main thread,
    and its cmdline: what exe, cwd and argv are read through."""
    try:
        tids = [t for t in os.listdir(f"{base}/task") if t != str(pid)]
    except OSError:
        return base, cmdline
    for tid in tids:
        task = f"{base}/task/{tid}"
        try:
            return task, _read(f"{task}/cmdline")
        except OSError:
            continue
    return base, cmdline


def list_pids(proc: str = "/proc") -> list[int]:
    """Thread-group ids of every process, lowest first (parents before children, mostly)."""
    return sorted(int(n) for n in os.listdir(proc) if n.isdigit())
