"""A/B of the collector's cost per event in an exec storm (issue 15's method).

Two (or more) builds of the collector — e.g. a checkout of main in its own
venv and this branch — are run alternated in one session, each traced storm
between two untraced ones (U A U B U B U A U ...; the second round reversed),
so the machine's drift from minute to minute hits every side alike.

Per traced run: the storm rate (2 workers posix_spawning `/bin/true MARKER`)
and its ratio to the mean of the untraced runs either side; the collector's
CPU from /proc/PID/task/*/sched `se.sum_exec_runtime` (ns; /proc/PID/stat's
10 ms ticks are too coarse) ÷ (2 × processes spawned), i.e. per exec+exit
event of our own storm; its peak RSS (VmHWM); kernel drops; and the lines of
its output that carry this run's marker against 2 × processes + 4 (the
spawners' own exec and exit carry it too) (0 lost means
every exec and exit of the storm was written).

Usage:
  .venv/bin/python bench/fastpath_ab.py --side base=/tmp/base/.venv/bin/collector \
      --side branch=.venv/bin/collector --sink stdout --rounds 2 --seconds 20
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
import uuid
from pathlib import Path

from capture_bench import build_spawner, spawned  # bench/ is the script's folder

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"



def sched_ns(pid: int) -> int:
    """CPU of every live thread of pid, in ns (se.sum_exec_runtime is in ms with 6 decimals)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "sched").read_text().splitlines():
                if line.startswith("se.sum_exec_runtime"):
                    total += round(float(line.split(":")[1]) * 1e6)
                    break
        except OSError:
            pass
    return total


def hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def storm(spawner: str, seconds: float, marker: str) -> int:
    procs = [subprocess.Popen([spawner, str(seconds), marker], stdout=subprocess.PIPE)
             for _ in range(2)]
    return sum(spawned(p.communicate()[0]) for p in procs)


def counter(stats: str, name: str) -> int:
    for part in stats.split():
        if part.startswith(name + "="):
            return int(part.split("=")[1])
    raise KeyError(name)


def traced(collector: str, sink: str, spawner: str, seconds: float,
           workdir: Path, extra: list[str]) -> dict[str, object]:
    marker = "fpab" + uuid.uuid4().hex[:12]
    out_path = workdir / "out.jsonl"
    args = [collector, "run", "--sink", sink, *extra]
    if sink == "file":
        args += ["--file-path", str(out_path)]
    err = tempfile.TemporaryFile()
    with open(out_path if sink == "stdout" else os.devnull, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        while True:  # attached and past the start-up scan
            err.seek(0)
            if b"start-up scan" in err.read():
                break
            if proc.poll() is not None:
                err.seek(0)
                raise SystemExit(f"collector exited: {err.read().decode()[-500:]}")
            time.sleep(0.01)
        time.sleep(0.3)
        cpu0 = sched_ns(proc.pid)
        t0 = time.monotonic()
        n = storm(spawner, seconds, marker)
        took = time.monotonic() - t0
        time.sleep(0.5)  # the reader and sinks finish what is queued
        cpu = sched_ns(proc.pid) - cpu0
        rss = hwm_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    err.seek(0)
    text = err.read().decode()
    stats = [line for line in text.splitlines() if line.startswith("stats:")][-1]
    seen = int(subprocess.run(["grep", "-c", marker, str(out_path)], capture_output=True,
                              text=True).stdout.strip() or 0)
    out_path.unlink(missing_ok=True)
    return {"processes": n, "per_s": round(n / took), "cpu_s": round(cpu / 1e9, 3),
            "cpu_us_per_event": round(cpu / 1e3 / max(2 * n, 1), 2), "peak_rss_mib": rss,
            "kernel_drops": counter(stats, "drops"), "marker_lines": seen,
            "lost": 2 * n + 4 - seen, "rc": proc.returncode}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", action="append", required=True, help="NAME=path/to/collector")
    ap.add_argument("--sink", default="stdout", choices=["stdout", "file"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--extra", default="", help="more `collector run` arguments, space-separated")
    ap.add_argument("--out", type=Path, default=RESULTS / "fastpath_ab_run.json")
    a = ap.parse_args()
    sides = dict(s.split("=", 1) for s in a.side)
    extra = a.extra.split()
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="fastpath-ab-") as d:
        work = Path(d)
        spawner = build_spawner(work)
        storm(spawner, 3.0, "warmup")
        base = [storm(spawner, a.seconds, "untraced") / a.seconds]
        for r in range(a.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                row = traced(sides[name], a.sink, spawner, a.seconds, work, extra)
                base.append(storm(spawner, a.seconds, "untraced") / a.seconds)
                row["ratio"] = round(row["per_s"] / ((base[-2] + base[-1]) / 2), 3)  # type: ignore[operator]
                row.update(side=name, round=r)
                runs.append(row)
                print(json.dumps(row), flush=True)
    summary: dict[str, object] = {}
    for name in sides:
        mine = [r for r in runs if r["side"] == name]
        summary[name] = {k: {"median": statistics.median(r[k] for r in mine),  # type: ignore[misc]
                             "min": min(r[k] for r in mine), "max": max(r[k] for r in mine)}  # type: ignore[type-var]
                         for k in ("cpu_us_per_event", "ratio", "peak_rss_mib", "lost", "kernel_drops")}
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sink": a.sink,
           "seconds": a.seconds, "sides": sides, "untraced_per_s": [round(b) for b in base],
           "runs": runs, "summary": summary}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    sys.exit(main())
