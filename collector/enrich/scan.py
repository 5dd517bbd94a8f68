"""The start-up scan: seed the process cache from /proc.

Runs once, after the probes are attached (so nothing starting during the
scan is missed: its kernel records wait in the ring buffer and are applied
after the scan, in order), on the reader thread (the cache has a single
writer). Parents are entered before their children whatever the pid order
(pids wrap), so every process found has its parent record and exec_id link.
Kernel threads get the flag "kernel_thread". The collector itself is left
out when the kernel ignores it. A process that has already exited (a zombie
not yet reaped) is seeded, so that its exit, if the kernel saw it, has its
parent, but no exec is reported for it: /proc no longer shows its image.
"""

from __future__ import annotations

from typing import Any

from collector.decode import DecodeError, ExecRecord, ForkRecord, decode
from collector.enrich.process_cache import ProcessCache
from collector.enrich.procfs import ProcSnapshot, list_pids, read_snapshot


def _parents_first(snaps: dict[int, ProcSnapshot]) -> list[ProcSnapshot]:
    ordered: list[ProcSnapshot] = []
    placed: set[int] = set()
    for pid in snaps:
        chain = []
        while pid in snaps and pid not in placed:
            placed.add(pid)
            chain.append(snaps[pid])
            pid = snaps[pid].ppid
        ordered.extend(reversed(chain))
    return ordered


def startup_scan(cache: ProcessCache, node_events: bool, ktime_ns: int) -> list[dict[str, Any]]:
    """Read every running process into the cache; return process_exec events
    (flag "procfs") for them when node_events is set."""
    snaps: dict[int, ProcSnapshot] = {}
    for pid in list_pids():
        if pid == cache.ignore_pid or cache.get(pid) is not None:
            continue
        snap = read_snapshot(pid)
        if snap is not None:
            snaps[pid] = snap
    events: list[dict[str, Any]] = []
    cache.stats.scanned += len(snaps)
    for snap in _parents_first(snaps):
        entry = cache.entry_from_snapshot(snap)
        if node_events and not snap.exited:
            events.append(cache.procfs_event(entry, ktime_ns))
    return events


def reported_by_kernel(cache: ProcessCache, raws: list[bytes]) -> set[int]:
    """Pids whose scan event would repeat what the kernel reports: forked after
    the probes attached (their fork record is in the ring buffer, and their
    exec, if any, too), or exec'd before /proc was read (the kernel's exec is
    the image /proc showed). `raws` are the records queued since attach, read
    after the scan, so every scanned process's fork record, if any, is there."""
    pids: set[int] = set()
    for raw in raws:
        try:
            rec = decode(raw)
        except DecodeError:
            continue  # counted when the reader handles it
        if isinstance(rec, ForkRecord):
            pids.add(rec.task.pid)
        elif isinstance(rec, ExecRecord):
            entry = cache.get(rec.task.pid)
            if entry is not None and entry.coarse and rec.ktime_ns < entry.seen_ns:
                pids.add(rec.task.pid)
    return pids


def without_repeats(events: list[dict[str, Any]], repeated: set[int]) -> list[dict[str, Any]]:
    """The scan's events less those of `repeated` pids, except an event that
    another kept one names as its parent or ancestor: a link to an exec_id
    must always lead to an event (at worst, one image is told twice)."""
    needed: set[str] = set()
    kept: list[dict[str, Any]] = []
    for event in reversed(events):  # parents come first: see their children first
        process = event["process"]
        if process["pid"] in repeated and process["exec_id"] not in needed:
            continue
        kept.append(event)
        if process.get("parent_exec_id"):
            needed.add(process["parent_exec_id"])
        for ancestor in event.get("ancestors") or ():
            needed.add(ancestor["exec_id"])
    kept.reverse()
    return kept
