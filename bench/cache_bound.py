"""Cache-bound benchmark (issue 6): does the process cache stay bounded, and
what does enrichment cost the reader thread?

Figures, written to bench/results/cache_bound.json:
- rounds: a real collector (`collector run`, events to /dev/null) watches
  ROUNDS rounds of N short-lived processes (a sh loop of /bin/true, spawned
  from this script, not from the collector). Before and after each round:
  the cache size and counters from the stats line, the collector's RSS
  (VmRSS) and CPU time. Bounded means: cache back to its size before the
  round, RSS flat from one round to the next, no evictions.
- enrich_us_per_process: the cache alone, in this process, fed fork + exec
  + exit records for N pids (no kernel, no sink): the reader's enrichment
  work per process lifecycle, with default redaction on.
- redact_us: argv redaction per exec, for argv without and with a secret.
- cgroup_walk_ms: one walk of the cgroup v2 tree (what an unknown cgroup
  id costs when its process is gone), as the tree is and with 1,000 extra
  cgroups created for the measurement (removed afterwards).

Usage: .venv/bin/python bench/cache_bound.py [--processes 20000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collector.clock import BootClock  # noqa: E402
from collector.decode import ExecRecord, ExitRecord, ForkRecord, TaskIds  # noqa: E402
from collector.enrich.containers import CgroupResolver, cgroup2_mount  # noqa: E402
from collector.enrich.process_cache import ProcessCache  # noqa: E402
from collector.enrich.procfs import read_snapshot  # noqa: E402
from collector.filter.redact import ArgvRedactor  # noqa: E402

COLLECTOR = str(Path(sys.executable).with_name("collector"))
RESULTS = REPO / "bench" / "results"
TICK = os.sysconf("SC_CLK_TCK")


def counters(stats_line: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)\b", stats_line)}


def proc_status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Collector:
    """`collector run` with a stats line every second; events go to /dev/null."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([COLLECTOR, "run", "--stats-interval", "0.5"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()
        self.wait(lambda: any("start-up scan:" in s for s in self.lines), 30)

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait(self, cond: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("collector: " + "\n".join(self.lines[-10:]))
            time.sleep(0.05)

    def stats(self) -> dict[str, int]:
        """Counters from a stats line printed after this call."""
        n = len(self.lines)
        self.wait(lambda: any(s.startswith("stats:") for s in self.lines[n:]), 10)
        return counters([s for s in self.lines[n:] if s.startswith("stats:")][-1])

    def sample(self) -> dict[str, Any]:
        st = self.stats()
        return {
            "cache": st["cache"], "evictions": st["evictions"], "released": st["released"],
            "unknown_exits": st["unknown_exits"], "drops": st["drops"], "exec": st["exec"],
            "exit": st["exit"],
            "rss_mib": round(proc_status_kib(self.proc.pid, "VmRSS") / 1024, 1),
            "cpu_s": proc_cpu_s(self.proc.pid),
        }

    def stop(self) -> None:
        self.proc.send_signal(2)
        self.proc.wait(60)


def churn_round(c: Collector, n: int) -> dict[str, Any]:
    before = c.sample()
    started = time.monotonic()
    subprocess.run(["sh", "-c", f"i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done"],
                   check=True)
    spawn_s = time.monotonic() - started
    # caught up: every exec and exit of the round has been through the cache
    c.wait(lambda: counters([s for s in c.lines if s.startswith("stats:")][-1])["exit"]
           >= before["exit"] + n + 1, 120)
    after = c.sample()
    events = (after["exec"] - before["exec"]) + (after["exit"] - before["exit"])
    return {
        "processes": n,
        "spawn_s": round(spawn_s, 2),
        "before": {k: v for k, v in before.items() if k != "cpu_s"},
        "after": {k: v for k, v in after.items() if k != "cpu_s"},
        "collector_cpu_s": round(after["cpu_s"] - before["cpu_s"], 2),
        "cpu_us_per_event": round((after["cpu_s"] - before["cpu_s"]) / max(events, 1) * 1e6, 1),
    }


def enrich_cost(n: int) -> float:
    """µs of cache work per process lifecycle (fork + exec + exit records)."""
    cache = ProcessCache("bench", BootClock(), 65536, redact=ArgvRedactor([], True),
                         cgroups=CgroupResolver(cgroup2_mount()))
    snap = read_snapshot(os.getpid())
    assert snap is not None
    me, now = os.getpid(), time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    cgroup_id = cache.process_of(cache.entry_from_snapshot(snap))["cgroup_id"] or 1
    records = []
    for i in range(n):
        pid, t = 4_000_000 + i, now + i * 1000
        records.append((
            ForkRecord(t, TaskIds(pid, pid, me, t, cgroup_id, "python3")),
            ExecRecord(t + 10, TaskIds(pid, pid, me, t, cgroup_id, "true"), 0, 0, 0, 0, None,
                       "/usr/bin/true", "/work/main", ["/bin/true", "--flag", "value"], False,
                       ["execve"]),
            ExitRecord(t + 20, TaskIds(pid, pid, me, t, cgroup_id, "true"), 0),
        ))
    size = len(cache)  # this process and its ancestors, read from /proc
    started = time.perf_counter()
    for fork, exec_, exit_ in records:
        cache.on_fork(fork)
        cache.on_exec(exec_)
        cache.on_exit(exit_)
    took = time.perf_counter() - started
    assert len(cache) == size  # every exited child released
    return took / n * 1e6


def redact_cost() -> dict[str, float]:
    redact = ArgvRedactor([], True)
    out = {}
    for name, argv in (("plain", ["/usr/bin/python3", "-m", "pytest", "tests/", "-k", "cache"]),
                       ("secret", ["mysql", "-u", "root", "--password=hunter2", "db"])):
        n = 50_000
        started = time.perf_counter()
        for _ in range(n):
            redact(argv)
        out[name] = round((time.perf_counter() - started) / n * 1e6, 2)
    return out


def cgroup_walk_ms() -> dict[str, Any]:
    mount = cgroup2_mount()
    if mount is None:
        return {"skipped": "no cgroup v2 mount"}

    def walk() -> tuple[float, int]:
        times = []
        for _ in range(5):
            r = CgroupResolver(mount)
            r._walk_for(-1)  # an id no cgroup has: a full walk
            times.append(r.stats.scan_ns / 1e6)
        return statistics.median(times), len(r._paths)

    as_is, n0 = walk()
    root = Path(mount) / f"pc-bench-{secrets.token_hex(4)}"
    root.mkdir()
    try:
        for i in range(1000):  # 100 pods of 10 containers
            d = root / f"pod{i // 10}"
            d.mkdir(exist_ok=True)
            (d / f"docker-{secrets.token_hex(32)}.scope").mkdir()
        grown, n1 = walk()
    finally:
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            d.rmdir()
        root.rmdir()
    return {"cgroups": n0, "walk_ms": round(as_is, 2),
            "cgroups_plus_1000": n1, "walk_plus_1000_ms": round(grown, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    c = Collector()
    try:
        rounds = [churn_round(c, args.processes) for _ in range(args.rounds)]
    finally:
        c.stop()
    for r in rounds:
        print(f"{r['processes']} processes in {r['spawn_s']} s: cache {r['before']['cache']} → "
              f"{r['after']['cache']}, RSS {r['before']['rss_mib']} → {r['after']['rss_mib']} MiB, "
              f"evictions {r['after']['evictions']}, drops {r['after']['drops']}, "
              f"{r['cpu_us_per_event']} µs CPU/event")
    result = {
        "rounds": rounds,
        "enrich_us_per_process": round(enrich_cost(50_000), 2),
        "redact_us": redact_cost(),
        "cgroup_walk": cgroup_walk_ms(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cache_bound.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
