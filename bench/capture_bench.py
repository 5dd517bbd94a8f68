"""Capture benchmark (issue 3): what the collector costs and sustains.

Figures, written to bench/results/capture.json:
- attach_s: from starting `collector run` to "attached" (probes loaded);
- burst: events/s the collector keeps up with while N processes are spawned
  as fast as possible, its CPU time (user+sys) per event, its peak RSS;
- storm slowdown: the rate of an exec storm (two parallel spawners of
  /bin/true) with the collector running ÷ without it. Runs alternate
  A B A B ... so drift on this noisy 2-core machine hits both sides;
  the median of the per-pair ratios is reported.

Usage: .venv/bin/python bench/capture_bench.py [--pairs 3] [--storm-seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLLECTOR = str(Path(sys.executable).with_name("collector"))
RESULTS = REPO / "bench" / "results"
TICK = os.sysconf("SC_CLK_TCK")



def build_spawner(workdir: Path) -> str:
    """The storm worker of every bench (bench/storm/spawner.c, built by its Makefile):
    `spawner SECONDS [MARKER]` prints the processes spawned and the spawns failed."""
    exe = workdir / "spawner"
    subprocess.run(["make", "-s", "-C", str(Path(__file__).resolve().parent / "storm"),
                    f"OUT={workdir}", str(exe)], check=True)
    return str(exe)


def spawned(out: bytes) -> int:
    """The count a spawner printed."""
    return int(out.split()[0])


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class Collector:
    """`collector run` with stdout to /dev/null and stderr kept for the stats line."""

    def __init__(self, *args: str) -> None:
        self.err = tempfile.TemporaryFile()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([COLLECTOR, "run", *args], stdout=subprocess.DEVNULL,
                                     stderr=self.err, stdin=subprocess.DEVNULL)
        self.attach_s = self._wait_attached()

    def _wait_attached(self) -> float:
        while True:
            self.err.seek(0)
            if b"attached in" in self.err.read():
                return time.monotonic() - self.t0
            if self.proc.poll() is not None:
                raise SystemExit("collector exited before attaching")
            time.sleep(0.005)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)
        self.err.seek(0)
        text = self.err.read().decode()
        return [line for line in text.splitlines() if line.startswith("stats:")][-1]


def counter(stats: str, name: str) -> int:
    for part in stats.split():
        if part.startswith(name + "="):
            return int(part.split("=")[1])
    raise KeyError(name)


def burst(n: int) -> dict[str, float]:
    c = Collector()
    time.sleep(0.5)  # let the start-up scan pass
    cpu0 = proc_cpu_s(c.proc.pid)
    t0 = time.monotonic()
    for _ in range(n):
        subprocess.run(["/bin/true"], check=True)
    spawn_s = time.monotonic() - t0
    time.sleep(0.5)  # the reader drains what is queued
    cpu = proc_cpu_s(c.proc.pid) - cpu0
    hwm = proc_hwm_kib(c.proc.pid)
    stats = c.stop()
    events = counter(stats, "exec") + counter(stats, "exit")
    return {
        "processes": n,
        "events": events,
        "events_per_s": round(events / spawn_s),
        "collector_cpu_s": round(cpu, 3),
        "cpu_us_per_event": round(cpu / max(events, 1) * 1e6, 2),
        "peak_rss_mib": round(hwm / 1024, 1),
        "kernel_drops": counter(stats, "drops"),
        "attach_s": round(c.attach_s, 3),
    }


def storm(spawner: str, seconds: float) -> float:
    procs = [subprocess.Popen([spawner, str(seconds)], stdout=subprocess.PIPE) for _ in range(2)]
    total = sum(spawned(p.communicate()[0]) for p in procs)
    return total / seconds


def traced_storm(spawner: str, seconds: float) -> tuple[float, dict[str, object]]:
    c = Collector()
    time.sleep(0.5)  # the start-up scan
    cpu0 = proc_cpu_s(c.proc.pid)
    rate = storm(spawner, seconds)
    cpu = proc_cpu_s(c.proc.pid) - cpu0
    stats = c.stop()
    events = counter(stats, "exec") + counter(stats, "exit")
    return rate, {"collector_cpu_s": round(cpu, 2), "kernel_drops": counter(stats, "drops"),
                  "events": events, "cpu_us_per_event": round(cpu / max(events, 1) * 1e6, 2)}


def slowdown(spawner: str, pairs: int, seconds: float) -> dict[str, object]:
    """Pairs in A B, B A, A B ... order (drift within a pair cancels across pairs),
    after one untimed warm-up storm (page cache, CPU frequency)."""
    storm(spawner, min(seconds, 5.0))
    rows = []
    for i in range(pairs):
        if i % 2 == 0:
            base = storm(spawner, seconds)
            traced, info = traced_storm(spawner, seconds)
        else:
            traced, info = traced_storm(spawner, seconds)
            base = storm(spawner, seconds)
        rows.append({"order": "without,with" if i % 2 == 0 else "with,without",
                     "without_per_s": round(base), "with_per_s": round(traced),
                     "ratio": round(traced / base, 3), **info})
        print(rows[-1], flush=True)
    return {"pairs": rows, "median_ratio": statistics.median(r["ratio"] for r in rows),
            "storm_seconds": seconds, "spawners": 2,
            "what": "rate of 2 parallel posix_spawn(/bin/true) loops with the collector "
                    "running (stdout to /dev/null) ÷ without it"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--storm-seconds", type=float, default=20.0)
    ap.add_argument("--burst", type=int, default=5000)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        spawner = build_spawner(Path(d))
        out = {"burst": burst(args.burst)}
        print(out["burst"], flush=True)
        out["storm"] = slowdown(spawner, args.pairs, args.storm_seconds)
    out["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (RESULTS / "capture.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
