"""`make bench`: every benchmark, one after the other, never two at once.

Benchmarks on this 2-core machine only mean something when nothing else
runs, so they run in sequence, each in its own process with its default
options; each writes its figures to bench/results/<name>.json. A failing
one is reported and the others still run; the exit code is 1 if any failed.

Usage: .venv/bin/python bench/run_all.py [NAME ...]   (default: all)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ALL = ["capture_bench", "pipeline_throughput", "cache_bound", "kafka_bench", "kafka_compression",
       "metrics_bench", "backends"]


def main() -> int:
    names = sys.argv[1:] or ALL
    unknown = [n for n in names if n not in ALL]
    if unknown:
        print(f"run_all: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(ALL)}",
              file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, str(BENCH / f"{name}.py")])
        print(f"== {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in "
              f"{time.monotonic() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"run_all: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"figures in {BENCH / 'results'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
