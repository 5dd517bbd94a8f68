"""Metrics benchmark (issue 13): what serving Prometheus metrics costs, and how big
the shipped artefacts are.

Figures, written to bench/results/metrics.json:
- storm: collector CPU per event in an exec storm (two posix_spawn(/bin/true)
  loops) with --metrics-address and a scrape of /metrics every second, vs
  without metrics; runs alternate off/on, on/off, ... (drift on this noisy
  2-core machine hits both sides), the median of the per-pair ratios is kept;
- scrape: the collector's own CPU per scrape (many scrapes of an idle
  collector, CPU before/after), the wall time per scrape and the body size;
- wheel_bytes: the collector's wheel (with its BPF object), `pip wheel . --no-deps`;
- image_bytes: the image `make image` builds, as podman reports it.

Usage: .venv/bin/python bench/metrics_bench.py [--pairs 3] [--storm-seconds 10]
       [--scrapes 300] [--no-image]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from capture_bench import Collector, build_spawner, counter, proc_cpu_s, storm

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def metrics_url(c: Collector) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        c.err.seek(0)
        m = re.search(rb"metrics on (http://\S+)/metrics", c.err.read())
        if m:
            return m.group(1).decode()
        time.sleep(0.01)
    raise SystemExit("the collector printed no metrics address")


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
        return body


def storm_run(spawner: str, seconds: float, metrics: bool) -> dict[str, object]:
    c = Collector(*(["--metrics-address", "127.0.0.1:0"] if metrics else []))
    scrapes = 0
    stop = threading.Event()
    if metrics:
        url = metrics_url(c) + "/metrics"

        def scraper() -> None:
            nonlocal scrapes
            while not stop.wait(1.0):
                get(url)
                scrapes += 1

        t = threading.Thread(target=scraper, daemon=True)
    time.sleep(0.5)  # the start-up scan
    cpu0 = proc_cpu_s(c.proc.pid)
    if metrics:
        t.start()
    rate = storm(spawner, seconds)
    stop.set()
    cpu = proc_cpu_s(c.proc.pid) - cpu0
    stats = c.stop()
    events = counter(stats, "exec") + counter(stats, "exit")
    return {"metrics": metrics, "storm_per_s": round(rate), "events": events,
            "scrapes": scrapes, "collector_cpu_s": round(cpu, 2),
            "cpu_us_per_event": round(cpu / max(events, 1) * 1e6, 3),
            "kernel_drops": counter(stats, "drops")}


def storm_pairs(spawner: str, pairs: int, seconds: float) -> dict[str, object]:
    storm(spawner, min(seconds, 5.0))  # warm-up: page cache, CPU frequency
    rows = []
    for i in range(pairs):
        order = (False, True) if i % 2 == 0 else (True, False)
        runs = {m: storm_run(spawner, seconds, m) for m in order}
        off, on = runs[False], runs[True]
        row = {"order": "off,on" if i % 2 == 0 else "on,off", "off": off, "on": on,
               "cpu_per_event_ratio": round(float(on["cpu_us_per_event"])  # type: ignore[arg-type]
                                            / float(off["cpu_us_per_event"]), 3)}  # type: ignore[arg-type]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {
        "pairs": rows,
        "median_cpu_per_event_ratio": statistics.median(
            float(r["cpu_per_event_ratio"]) for r in rows),  # type: ignore[arg-type]
        "median_cpu_us_per_event_off": round(statistics.median(
            float(r["off"]["cpu_us_per_event"]) for r in rows), 3),  # type: ignore[index]
        "median_cpu_us_per_event_on": round(statistics.median(
            float(r["on"]["cpu_us_per_event"]) for r in rows), 3),  # type: ignore[index]
        "storm_seconds": seconds, "spawners": 2, "scrape_interval_s": 1.0,
        "what": "collector CPU (user+sys) per event during 2 parallel posix_spawn(/bin/true) "
                "loops, stdout to /dev/null; on = --metrics-address and /metrics scraped every "
                "second",
    }


def scrape_cost(n: int) -> dict[str, object]:
    c = Collector("--metrics-address", "127.0.0.1:0")
    url = metrics_url(c) + "/metrics"
    time.sleep(1.0)  # the start-up scan
    body = get(url)
    idle0 = proc_cpu_s(c.proc.pid)
    time.sleep(3.0)
    idle_cpu_per_s = (proc_cpu_s(c.proc.pid) - idle0) / 3.0
    cpu0 = proc_cpu_s(c.proc.pid)
    t0 = time.monotonic()
    for _ in range(n):
        get(url)
    wall = time.monotonic() - t0
    cpu = proc_cpu_s(c.proc.pid) - cpu0 - idle_cpu_per_s * wall
    c.stop()
    return {"scrapes": n, "collector_cpu_ms_per_scrape": round(cpu / n * 1e3, 3),
            "wall_ms_per_scrape": round(wall / n * 1e3, 3), "body_bytes": len(body),
            "idle_collector_cpu_ms_per_s": round(idle_cpu_per_s * 1e3, 2),
            "what": "back-to-back GET /metrics of an idle collector; its CPU over the run, "
                    "less its idle CPU rate, divided by the scrapes"}


def wheel_size() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "--disable-pip-version-check", "-w", d, str(REPO)], check=True)
        (whl,) = Path(d).glob("*.whl")
        return {"wheel": whl.name, "wheel_bytes": whl.stat().st_size}


def image_size() -> dict[str, object]:
    subprocess.run(["make", "-s", "-C", str(REPO), "image"], check=True,
                   stdout=subprocess.DEVNULL)
    name = subprocess.run(["make", "-s", "-C", str(REPO), "print-image"], check=True,
                          capture_output=True, text=True).stdout.strip()
    size = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", name],
                          check=True, capture_output=True, text=True).stdout.strip()
    rootfs = REPO / "build" / "image" / "rootfs.tar"
    return {"image": name, "image_bytes": int(size),
            "base_rootfs_tar_bytes": rootfs.stat().st_size if rootfs.exists() else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--storm-seconds", type=float, default=10.0)
    ap.add_argument("--scrapes", type=int, default=300)
    ap.add_argument("--no-image", action="store_true", help="skip building the image")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        spawner = build_spawner(Path(d))
        result: dict[str, object] = {"storm": storm_pairs(spawner, args.pairs, args.storm_seconds)}
    result["scrape"] = scrape_cost(args.scrapes)
    print(json.dumps(result["scrape"]), flush=True)
    result.update(wheel_size())
    if not args.no_image:
        result.update(image_size())
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    result["commit"] = commit
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "metrics.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "storm"}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
