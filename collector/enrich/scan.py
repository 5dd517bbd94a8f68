"""The start-up scan: seed the process cache from /proc.

Runs once, after the probes are attached (so nothing starting during the
scan is missed), on the reader thread (the cache has a single writer).
"""

from __future__ import annotations

from typing import Any

from collector.enrich.process_cache import ProcessCache
from collector.enrich.procfs import list_pids, read_snapshot


def startup_scan(cache: ProcessCache, node_events: bool, ktime_ns: int) -> list[dict[str, Any]]:
    """Read every running process into the cache; return process_exec events
    (flag "procfs") for them when node_events is set."""
    events: list[dict[str, Any]] = []
    for pid in list_pids():
        if cache.get(pid) is not None:
            continue
        snap = read_snapshot(pid)
        if snap is None:
            continue
        entry = cache.entry_from_snapshot(snap)
        if node_events:
            events.append(cache.procfs_event(entry, ktime_ns))
    return events
