"""Issue 11's A/B: the pipeline and capture benchmarks, before and after a change,
alternated in one session (A B B A ..., so drift hits both sides alike).

Each side is a checkout with its own bench/ scripts and a Python that runs
them (a venv where that checkout's `collector` is installed, or any venv with
the checkout first on sys.path: pipeline_throughput.py puts its own checkout
there; capture_bench.py runs the `collector` beside that Python). Each run's
figures are read from the side's bench/results/ after the run.

Usage:
  .venv/bin/python bench/export_core_ab.py \
      --side before=/tmp/pre:/tmp/pre/.venv/bin/python \
      --side after=/tmp/cur:/tmp/cur/.venv/bin/python --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def pipeline(tree: Path, python: str, events: int, rounds: int) -> dict[str, Any]:
    subprocess.run([python, str(tree / "bench" / "pipeline_throughput.py"), "--events",
                    str(events), "--rounds", str(rounds), "--profile-events", "10000"],
                   check=True, cwd=tree, stdout=subprocess.DEVNULL)
    d = json.loads((tree / "bench" / "results" / "pipeline_throughput.json").read_text())
    out = {f"{mode} {fmt} events/s": v["median_events_per_s"]
           for mode in ("inline", "worker") for fmt, v in d[mode].items()}
    out["inline jsonl fsync=never events/s"] = \
        d["inline_fsync_never"]["jsonl/null"]["median_events_per_s"]
    return out


def capture(tree: Path, python: str, pairs: int, seconds: float, burst: int) -> dict[str, Any]:
    subprocess.run([python, str(tree / "bench" / "capture_bench.py"), "--pairs", str(pairs),
                    "--storm-seconds", str(seconds), "--burst", str(burst)],
                   check=True, cwd=tree, stdout=subprocess.DEVNULL)
    d = json.loads((tree / "bench" / "results" / "capture.json").read_text())
    storm = d["storm"]["pairs"]
    return {
        "storm ratio with/without": d["storm"]["median_ratio"],
        "storm cpu us/event": statistics.median(p["cpu_us_per_event"] for p in storm),
        "storm kernel drops": sum(p["kernel_drops"] for p in storm),
        "burst cpu us/event": d["burst"]["cpu_us_per_event"],
        "burst events/s": d["burst"]["events_per_s"],
        "burst peak RSS MiB": d["burst"]["peak_rss_mib"],
        "attach s": d["burst"]["attach_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", action="append", required=True, help="NAME=TREE:PYTHON")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--pipeline-rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--storm-seconds", type=float, default=10.0)
    ap.add_argument("--burst", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "export_core_ab.json")
    a = ap.parse_args()
    sides = {}
    for s in a.side:
        name, rest = s.split("=", 1)
        tree, python = rest.split(":", 1)
        sides[name] = (Path(tree), python)
    names = list(sides)
    runs: list[dict[str, Any]] = []
    for r in range(a.rounds):
        for name in (names if r % 2 == 0 else list(reversed(names))):
            tree, python = sides[name]
            row = {"round": r, "side": name,
                   **pipeline(tree, python, a.events, a.pipeline_rounds),
                   **capture(tree, python, a.pairs, a.storm_seconds, a.burst)}
            runs.append(row)
            print(json.dumps(row), flush=True)
    compare: dict[str, Any] = {}
    first, last = names[0], names[-1]
    for key in runs[0]:
        if key in ("round", "side"):
            continue
        per = {n: [r[key] for r in runs if r["side"] == n] for n in names}
        entry: dict[str, Any] = dict(per)
        base = statistics.median(per[first])
        if base:
            entry[f"{last}_over_{first}"] = round(statistics.median(per[last]) / base, 3)
        compare[key] = entry
    out = {"what": "A B B A in one session (bench/export_core_ab.py): pipeline_throughput.py "
                   f"(--events {a.events} --rounds {a.pipeline_rounds}; medians of its rounds) and "
                   f"capture_bench.py (--pairs {a.pairs} --storm-seconds {a.storm_seconds} "
                   f"--burst {a.burst}) of each side's own checkout",
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "sides": {n: {"tree": str(t), "python": p} for n, (t, p) in sides.items()},
           "compare": compare, "runs": runs}
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(compare, indent=2))


if __name__ == "__main__":
    main()
