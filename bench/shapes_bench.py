"""What a record shape costs per event: native vs OCSF vs ECS (issue 12).

For each shape, the sink-side encoders the collector calls once per event:
`json` (the JSON line: stdout, files, Kafka's default format), `avro` (the
Avro datum: Avro files, Kafka avro and avro-single-object), and `record`
(the shape's Avro form alone, which both start from). Events are real
pipeline output: kernel records packed as the BPF program writes them,
decoded and enriched by ProcessCache (tests/unit/test_encode_avro_fast.py's
corpus), execs and exits alternating, 1 in 5 with three ancestors and
namespaces. Two argv corpora: `hostile` (quotes, newlines, non-UTF-8:
every command line needs shell quoting) and `plain` (`/usr/bin/ls -la
/tmp`-like, the common case).

Best of `--repeats` passes over the corpus (the least disturbed on a shared
2-core machine), in µs per event, written to bench/results/shapes.json
under `--label` (runs of other code versions keep their own label).

Usage: .venv/bin/python bench/shapes_bench.py [--label current] [--repeats 9]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collector import shapes  # noqa: E402
from tests.unit.test_encode_avro_fast import make_events  # noqa: E402

RESULTS = REPO / "bench" / "results" / "shapes.json"


def corpora() -> dict[str, list[dict[str, Any]]]:
    hostile = make_events(200) + make_events(50, ancestors=3, namespaces=True)
    plain = copy.deepcopy(hostile)
    for i, event in enumerate(plain):
        for p in (event["process"], event["parent"], *(event.get("ancestors") or [])):
            if p is not None:
                p["args"] = ["/usr/bin/ls", "-la", f"/tmp/dir{i}"]
    return {"hostile": hostile, "plain": plain}


def per_event_us(fn: Callable[[dict[str, Any]], Any], events: list[dict[str, Any]],
                 repeats: int) -> float:
    for e in events:  # warm: compiled encoders, caches
        fn(e)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for e in events:
            fn(e)
        best = min(best, time.perf_counter() - t)
    return round(best / len(events) * 1e6, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="current")
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    table: dict[str, dict[str, dict[str, float]]] = {}
    for corpus, events in corpora().items():
        for name in ("native", "ocsf", "ecs"):
            s = shapes.get(name)
            row = table.setdefault(corpus, {}).setdefault(name, {})
            for kind, fn in (("json", s.json_encoder()), ("avro", s.datum_encoder()),
                             ("record", s.to_record)):
                row[kind] = per_event_us(fn, events, args.repeats)
            print(corpus, name, row, flush=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("runs", {})[args.label] = {
        "us_per_event": table, "events": len(events), "repeats": args.repeats,
        "python": platform.python_version(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime())}
    results["method"] = __doc__.split("\n\n")[1].replace("\n", " ")
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
