"""The per-event Python stages of two or more trees, alternated in one run (issue 15).

For each tree (a checkout, or `mypyc:PATH` for a copy of PATH whose hot
modules mypyc compiles first), a child interpreter with only that tree on
its path times, on the synthetic records of bench/pipeline_throughput.py:
decode alone, decode + the process cache (the reader's work) minus decode,
and the JSON line encoder alone, in µs per emitted event (best of 5 passes).
The trees run A B ... then reversed, --rounds times, so the machine's drift
hits each alike; medians per tree go to bench/results/stages_ab.json.

Usage: .venv/bin/python bench/stages_ab.py [--rounds 4] [LABEL=]TREE [LABEL=]TREE ...
e.g.   .venv/bin/python bench/stages_ab.py before=/tmp/old . mypyc=mypyc:.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
# the modules the storm profile ranks first (bench/results/storm_profile.md)
MYPYC_MODULES = ("collector/decode.py", "collector/enrich/process_cache.py",
                 "collector/enrich/exec_id.py", "collector/encode/json.py",
                 "collector/encode/timefmt.py")

CHILD = r"""
import json, sys, time
tree = sys.argv[1]
import collector.decode
assert collector.decode.__file__.startswith(tree), collector.decode.__file__
sys.path.append(sys.argv[2])  # bench/, for pipeline_throughput's record builder
import pipeline_throughput as pt
from collector.decode import decode
from collector.encode.json import encode_json_line

raws = pt.raw_records(60000)
n = sum(1 for r in raws if pt.HEADER.unpack_from(r)[0] != pt.EventKind.FORK)

def timed(fn):
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e6

def decode_all():
    for r in raws:
        decode(r)

best = {"decode_us": [], "cache_us": [], "json_us": []}
for _ in range(5):
    events = []
    d = timed(decode_all) / n
    c = timed(lambda: pt._feed(pt.new_cache(), raws, events.extend)) / n - d
    def encode_all():
        for e in events:
            encode_json_line(e)
    j = timed(encode_all) / len(events)
    for k, v in (("decode_us", d), ("cache_us", c), ("json_us", j)):
        best[k].append(v)
print(json.dumps({k: min(v) for k, v in best.items()}
                 | {"compiled": collector.decode.__file__.endswith(".so")}))
"""


def compiled_copy(src: Path, work: Path) -> Path:
    """A copy of the tree with MYPYC_MODULES compiled in place by mypyc."""
    dst = work / "tree"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist"))
    mypyc = Path(sys.executable).parent / "mypyc"
    subprocess.run([str(mypyc), *MYPYC_MODULES], cwd=dst, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return dst


def measure(tree: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-P", "-c", CHILD, str(tree), str(REPO / "bench")],
                         env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trees", nargs="+", metavar="[LABEL=]TREE")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", default=str(RESULTS / "stages_ab.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees: list[tuple[str, Path]] = []
        for i, spec in enumerate(args.trees):
            label, _, path = spec.rpartition("=") if "=" in spec else (f"t{i}", "", spec)
            if path.startswith("mypyc:"):
                work = Path(tmp) / f"{i}"
                work.mkdir()
                trees.append((label, compiled_copy(Path(path[6:]).resolve(), work)))
            else:
                trees.append((label, Path(path).resolve()))
        runs: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
        for r in range(args.rounds):
            for label, tree in (trees if r % 2 == 0 else trees[::-1]):
                got = measure(tree)
                runs[label].append(got)
                print(f"round {r} {label}: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in got.items() if k.endswith("_us")), flush=True)
    summary = {label: {k: statistics.median(x[k] for x in rs) for k in rs[0] if k.endswith("_us")}
               for label, rs in runs.items()}
    for label, med in summary.items():
        med["total_us"] = sum(med.values())
        print(f"{label}: " + ", ".join(f"{k} {v:.3f}" for k, v in med.items()))
    Path(args.out).write_text(json.dumps({"trees": {lb: str(t) for lb, t in trees},
                                          "rounds": runs, "median": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
