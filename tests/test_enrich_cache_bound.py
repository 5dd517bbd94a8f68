"""The process cache stays bounded: released on exit, capped with counted
evictions, and swept when the kernel lost exits. Real processes, real
collector; the counters are read from its stats line."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
from typing import Any

import pytest

from tests.helpers import CollectorProcess, wait_for

TRUE = os.path.realpath("/bin/true")


def counters(line: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)\b", line)}


def next_stats(c: CollectorProcess) -> dict[str, int]:
    """Counters from the next stats line (the collector prints one per interval)."""
    n = len(c.stderr_lines)
    line = wait_for(lambda: [s for s in c.stderr_lines[n:] if s.startswith("stats:")])[-1]
    return counters(line)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def scanned(c: CollectorProcess) -> int:
    c.wait_attached()
    line = wait_for(lambda: [s for s in c.stderr_lines if "start-up scan:" in s])[0]
    return int(line.split("scan:")[1].split()[0])


@pytest.mark.slow
def test_20000_short_lived_processes_leave_the_cache_as_it_was() -> None:
    n = 20_000
    marker = f"cache-bound-{secrets.token_hex(4)}"
    with CollectorProcess("--stats-interval", "0.5") as c:
        scanned(c)
        before = next_stats(c)
        rss_before = rss_kib(c.proc.pid)
        loop = subprocess.run(
            ["sh", "-c", f'i=0; while [ $i -lt {n} ]; do /bin/true {marker}; i=$((i+1)); done'],
            check=True)
        assert loop.returncode == 0
        wait_for(lambda: counters([s for s in c.stderr_lines if s.startswith("stats:")][-1])
                 ["exit"] >= before["exit"] + n + 1, timeout=120)
        after = next_stats(c)
        rss_after = rss_kib(c.proc.pid)
        assert c.stop(signal.SIGINT) == 0, c.stderr
        events = c.events()
    print(f"cache {before['cache']} -> {after['cache']}, RSS {rss_before} -> {rss_after} KiB")
    # every process went through the cache: exec and exit linked, parent = the loop's sh
    ours = [e for e in events if e["process"]["args"] == ["/bin/true", marker]]
    execs = [e for e in ours if e["event_type"] == "process_exec"]
    exits = [e for e in ours if e["event_type"] == "process_exit"]
    assert (len(execs), len(exits)) == (n, n)
    assert {e["process"]["exec_id"] for e in execs} == {e["process"]["exec_id"] for e in exits}
    assert len({e["parent"]["exec_id"] for e in ours}) == 1
    assert all(e["process"]["flags"] == ["execve"] for e in ours)
    # and left it: nothing evicted, nothing lost, no growth beyond what other
    # activity on the machine adds in the meantime (20,000 entries if exits leaked)
    assert after["drops"] == 0
    assert after["evictions"] == before["evictions"] == 0
    assert after["unknown_exits"] == before["unknown_exits"]
    assert after["cache"] - before["cache"] < 50


def test_cap_evicts_the_oldest_and_counts() -> None:
    cap = 16
    with CollectorProcess("--stats-interval", "0.5",
                          env={"COLLECTOR_ENRICH_CACHE_MAX_ENTRIES": str(cap)}) as c:
        found = scanned(c)
        assert found > cap  # every machine runs more than 16 processes
        at_scan = next_stats(c)
        # full at the scan; each exit seen since then (any process on this busy host) may
        # have freed one entry that no exec has refilled yet
        assert cap - at_scan["exit"] <= at_scan["cache"] <= cap
        assert at_scan["evictions"] >= found - cap
        sleepers = [subprocess.Popen(["sleep", "30"]) for _ in range(2 * cap)]
        wait_for(lambda: all(os.path.exists(f"/proc/{p.pid}") for p in sleepers))
        for p in sleepers:
            p.kill()
            p.wait()
        pids = {p.pid for p in sleepers}

        def all_exits() -> list[dict[str, Any]] | None:
            found = [e for e in c.events() if e["event_type"] == "process_exit"
                     and e["process"]["pid"] in pids]
            return found if len(found) == len(pids) else None

        exits = wait_for(all_exits)
        final = next_stats(c)
        assert c.stop() == 0, c.stderr
    assert final["cache"] <= cap
    assert final["evictions"] >= at_scan["evictions"] + len(pids) - cap
    # a sleeper evicted before it exited is reported from the kernel's facts alone
    unknown = [e for e in exits if e["process"]["flags"] == ["unknown"]]
    assert len(unknown) >= len(pids) - cap
    assert final["unknown_exits"] - at_scan["unknown_exits"] >= len(unknown)
    for e in unknown:
        assert e["signal"] == "SIGKILL"
        assert e["process"]["comm"] == "sleep"
        assert e["parent"]["pid"] == os.getpid()  # looked up again, from /proc if need be


@pytest.mark.slow
def test_exits_lost_by_the_kernel_are_swept() -> None:
    """A one-page ring buffer under a burst loses records; execs whose exit was
    lost are released by the sweep once their pid is gone from /proc."""
    with CollectorProcess("--stats-interval", "0.5",
                          env={"COLLECTOR_CAPTURE_RING_BUFFER_BYTES": "4096",
                               "COLLECTOR_ENRICH_SWEEP_INTERVAL_S": "1"}) as c:
        scanned(c)
        before = next_stats(c)
        # Only an exit lost after its exec was kept leaves an entry behind. The
        # processes live 50 ms, longer than one drain of the ring (25 ms), so the
        # ring is full at their exec and at their exit independently.
        subprocess.run(["sh", "-c", "i=0; while [ $i -lt 2000 ]; do /bin/sleep 0.05 & "
                        "i=$((i+1)); done; wait"], check=True)
        burst = next_stats(c)
        assert burst["drops"] > before["drops"]  # the kernel did lose records
        assert burst["cache"] - before["cache"] >= 50, (before, burst)  # exits among them
        # two sweeps later the leaked entries are gone
        settled: dict[str, Any] = wait_for(
            lambda: (s := next_stats(c))["released"] > 0 and s["cache"] - before["cache"] < 50
            and s, timeout=15)
        assert c.stop() == 0, c.stderr
    assert settled["released"] > 0
    assert settled["evictions"] == 0
