"""Backends benchmark (issue 10): what CO-RE and bcc each cost.

Figures, written to bench/results/backends.json, for each backend:
- start: wall time from starting `collector run` to its "attached" line
  (Python start-up, BTF parse and bcc's compile included), the collector's
  own "attached in" figure, its CPU time and peak RSS (VmHWM) at attach;
- storm: collector CPU time (user+sys) per event while two posix_spawn
  loops of /bin/true run, the storm rate, kernel drops, peak RSS.
Runs alternate A B B A (then again) so drift on this noisy 2-core machine
hits both backends alike; medians are reported.

bcc compiles against the header tree `make setup` merged under the download
cache, found by the collector itself (BCC_KERNEL_SOURCE is unset, as on a fresh
machine), with struct offsets from this kernel's BTF.

Usage: .venv/bin/python bench/backends.py [--rounds 2] [--storm-seconds 10]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.capture_bench import build_spawner, counter, proc_cpu_s, proc_hwm_kib, storm
from collector.probe.bcc import KERNEL_SOURCE_ENV, kernel_source

REPO = Path(__file__).resolve().parent.parent
COLLECTOR = str(Path(sys.executable).with_name("collector"))
RESULTS = REPO / "bench" / "results"
BACKENDS = ("core", "bcc")


class Collector:
    """`collector run --backend B`, stdout to /dev/null, stderr kept."""

    def __init__(self, backend: str) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("COLLECTOR_") and k != KERNEL_SOURCE_ENV}
        env["COLLECTOR_BACKEND"] = backend
        self.err = tempfile.TemporaryFile()
        t0 = time.monotonic()
        self.proc = subprocess.Popen([COLLECTOR, "run", "--no-procfs-events"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.err,
                                     stdin=subprocess.DEVNULL)
        line = self._wait_attached()
        self.wall_s = time.monotonic() - t0
        self.self_reported_s = float(line.split("attached in ")[1].split("s")[0])
        self.cpu_at_attach_s = proc_cpu_s(self.proc.pid)
        self.hwm_at_attach_kib = proc_hwm_kib(self.proc.pid)

    def _wait_attached(self) -> str:
        while True:
            self.err.seek(0)
            for line in self.err.read().decode().splitlines():
                if "attached in" in line:
                    return line
            if self.proc.poll() is not None:
                self.err.seek(0)
                raise SystemExit(f"collector exited before attaching: {self.err.read().decode()}")
            time.sleep(0.002)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)
        self.err.seek(0)
        return [s for s in self.err.read().decode().splitlines() if s.startswith("stats:")][-1]


def order(rounds: int) -> list[str]:
    """A B B A, repeated."""
    return [b for _ in range(rounds) for b in ("core", "bcc", "bcc", "core")]


def start_once(backend: str) -> dict[str, float]:
    c = Collector(backend)
    row = {"wall_s": round(c.wall_s, 3), "self_reported_s": c.self_reported_s,
           "cpu_s": round(c.cpu_at_attach_s, 2), "peak_rss_mib": round(c.hwm_at_attach_kib / 1024, 1)}
    c.stop()
    return row


def storm_once(backend: str, spawner: str, seconds: float) -> dict[str, float]:
    c = Collector(backend)
    time.sleep(0.5)
    cpu0 = proc_cpu_s(c.proc.pid)
    rate = storm(spawner, seconds)
    cpu = proc_cpu_s(c.proc.pid) - cpu0
    hwm = proc_hwm_kib(c.proc.pid)
    stats = c.stop()
    events = counter(stats, "exec") + counter(stats, "exit")
    return {"storm_per_s": round(rate), "events": events, "collector_cpu_s": round(cpu, 2),
            "cpu_us_per_event": round(cpu / max(events, 1) * 1e6, 2),
            "kernel_drops": counter(stats, "drops"), "peak_rss_mib": round(hwm / 1024, 1)}


def median_of(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2, help="A B B A rounds")
    ap.add_argument("--storm-seconds", type=float, default=10.0)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    os.environ.pop(KERNEL_SOURCE_ENV, None)
    src = kernel_source()
    if src is None:
        raise SystemExit("backends: no kernel header tree found: run `make setup`")
    out: dict[str, object] = {"order": "A B B A per round (A = core, B = bcc)",
                              "rounds": args.rounds, "kernel": os.uname().release,
                              "bcc_headers": str(src.path), "bcc_offsets": "btf"}
    starts: dict[str, list[dict[str, float]]] = {b: [] for b in BACKENDS}
    for b in order(args.rounds):
        starts[b].append(start_once(b))
        print("start", b, starts[b][-1], flush=True)
    storms: dict[str, list[dict[str, float]]] = {b: [] for b in BACKENDS}
    with tempfile.TemporaryDirectory() as d:
        spawner = build_spawner(Path(d))
        storm(spawner, 3.0)  # warm-up
        for b in order(args.rounds):
            storms[b].append(storm_once(b, spawner, args.storm_seconds))
            print("storm", b, storms[b][-1], flush=True)
    out["backends"] = {b: {"start_median": median_of(starts[b]), "start_runs": starts[b],
                           "storm_median": median_of(storms[b]), "storm_runs": storms[b]}
                       for b in BACKENDS}
    out["storm_seconds"] = args.storm_seconds
    out["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (RESULTS / "backends.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({b: {"start": v["start_median"], "storm": v["storm_median"]}  # type: ignore[index]
                      for b, v in out["backends"].items()}, indent=2))  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
