"""Export pipeline throughput without the kernel (issue 4), on one core.

Synthetic raw records in the kernel layout (collector.probe.layout: fork,
exec, exit per process, argv and paths like a shell's children) go
through the same code as the collector's reader and the file sink's worker:

    decode → ProcessCache → FileSink.encode → FileSink.write_batch (a real file)

Measured per format (JSON lines; Avro OCF with deflate and with null):
- `inline`: one thread does every stage, batches of 1000 (the floor);
- `inline_fsync_never`: the same for JSON lines with file.fsync = never, to
  show how much of the time is the fdatasync per batch (the default, batch);
- `worker`: the reader loop puts into a SinkWorker whose thread encodes and
  writes, as `collector run` does, both threads pinned to the same core;
- `stages`: µs per event of decode, decode+cache, and the encoder alone,
  so the cost of each module can be read off by difference;
- a cProfile top-15 (by own time) of the inline pipeline.

Rounds alternate the formats (A B C A B C ...) so drift on this noisy
machine hits each alike; medians are reported. Aims: ≥150,000 events/s for
JSON lines, ≥60,000 for Avro. Figures go to bench/results/pipeline_throughput.json.

Usage: .venv/bin/python bench/pipeline_throughput.py [--events 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from collector.clock import BootClock  # noqa: E402
from collector.decode import decode  # noqa: E402
from collector.encode.avro import datum as avro_datum  # noqa: E402
from collector.encode.json import encode_json_line, json_record  # noqa: E402
from collector.enrich.containers import cgroup2_mount  # noqa: E402
from collector.enrich.process_cache import ProcessCache  # noqa: E402
from collector.export import Sink  # noqa: E402
from collector.pipeline.reader import Reader  # noqa: E402
from collector.pipeline.worker import SinkWorker  # noqa: E402
from collector.probe.layout import EXEC_FIXED, EXIT_EVENT, FORK_EVENT, HEADER, EventKind  # noqa: E402
from sinks.file import FileSink  # noqa: E402
from sinks.file.framing import OcfFraming  # noqa: E402

RESULTS = REPO / "bench" / "results"
AIMS = {"jsonl": 150_000, "avro": 60_000}
SHELL_PID = 4242


def _own_cgroup_id() -> int:
    """The cgroup v2 id of this process's cgroup, so records carry a real one.

    (A made-up id, as this benchmark used before, exists nowhere: the
    resolver looked for it in /proc for every exec, an open(2) per event that
    a collector never pays for the cgroups that really exist. Falls back to 1,
    the root cgroup, which is answered without a lookup.)"""
    mount = cgroup2_mount()
    try:
        with open("/proc/self/cgroup") as f:
            path = next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))
        return os.stat(f"{mount}{path}").st_ino if mount else 1
    except (OSError, StopIteration):
        return 1


CGROUP_ID = _own_cgroup_id()
FORMATS = [("jsonl", "null"), ("avro", "deflate"), ("avro", "null")]


def _path(p: str) -> bytes:
    """Leaf-first NUL-terminated components, as the BPF path walk writes them."""
    return b"".join(c.encode() + b"\0" for c in reversed(p.strip("/").split("/")))


def _exec(pid: int, ppid: int, t: int, start: int, binary: str, argv: list[str], cwd: str,
          comm: bytes) -> bytes:
    b, c = _path(binary), _path(cwd)
    a = b"".join(x.encode() + b"\0" for x in argv)
    fixed = EXEC_FIXED.pack(EventKind.EXEC, 0, t, pid, pid, ppid, 0, start, CGROUP_ID, comm,
                            1000, 1000, 1000, 1000, 1000, 0, len(b), len(c), len(a), len(a))
    return fixed + b + c + a


def _fork(pid: int, ppid: int, t: int) -> bytes:
    return FORK_EVENT.pack(EventKind.FORK, FORK_EVENT.size, t, pid, pid, ppid, 0, t, CGROUP_ID,
                           b"bash")


def _exit(pid: int, ppid: int, t: int, start: int, status: int, comm: bytes) -> bytes:
    return EXIT_EVENT.pack(EventKind.EXIT, EXIT_EVENT.size, t, pid, pid, ppid, 0, start,
                           CGROUP_ID, comm, status, 0)


COMMANDS = [
    ("/usr/bin/git", ["git", "status", "--porcelain"], b"git"),
    ("/usr/bin/grep", ["grep", "-rn", "TODO", "src/"], b"grep"),
    ("/usr/bin/ls", ["ls", "-la", "/var/log"], b"ls"),
    ("/usr/bin/python3.11", ["python3", "-m", "pytest", "-q", "tests/test_x.py"], b"python3"),
    ("/usr/bin/true", ["/bin/true"], b"true"),
]


def raw_records(n_events: int) -> list[bytes]:
    """fork + exec + exit for n_events / 2 children of one shell (that shell first).

    Times are boot-clock nanoseconds just before now (like records read from the
    ring buffer), and the three records of a process share its start time, as the
    kernel's do."""
    span = (n_events // 2 + 1) * 10_000
    t = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - span - 1_000_000_000
    out = [_exec(SHELL_PID, 1, t, t - 10**9, "/usr/bin/bash", ["-bash"], "/home/dev", b"bash")]
    for i in range(n_events // 2):
        pid = 100_000 + i % 200_000
        t += 10_000
        binary, argv, comm = COMMANDS[i % len(COMMANDS)]
        out.append(_fork(pid, SHELL_PID, t))
        out.append(_exec(pid, SHELL_PID, t + 1000, t, binary, argv, "/home/dev/project", comm))
        out.append(_exit(pid, SHELL_PID, t + 5000, t, (i % 3) << 8, comm))
    return out


def new_cache() -> ProcessCache:
    return ProcessCache("bench-node", BootClock())


def _feed(cache: ProcessCache, raws: list[bytes],
          emit: Callable[[list[dict[str, Any]]], None], poll: int = 512) -> int:
    """The reader's work: collector.pipeline.reader.Reader.handle itself (no filter
    configured, as by default), fed `poll` records at a time as ring-buffer polls
    return them; `emit` gets each poll's events. Returns the events emitted."""
    reader = Reader(None, cache, emit, procfs_scan=False)  # type: ignore[arg-type]  # no probe
    for i in range(0, len(raws), poll):
        reader.handle(raws[i : i + poll])
    return reader.stats.execs + reader.stats.exits


def feed_batched(cache: ProcessCache, raws: list[bytes], sink: Sink, batch: int = 1000) -> int:
    """_feed into one sink on this thread: encode each event, write_batch every `batch`
    events and the rest at the end; returns the events written."""
    pending: list[Any] = []
    encode = sink.encode

    def emit(events: list[dict[str, Any]]) -> None:
        for event in events:
            pending.append(encode(event))
            if len(pending) >= batch:
                sink.write_batch(pending)
                pending.clear()

    n = _feed(cache, raws, emit)
    if pending:
        sink.write_batch(pending)
    return n


def _sink(d: Path, fmt: str, codec: str, fsync: str = "batch") -> FileSink:
    sink = FileSink({"path": str(d / f"events.{fmt}"), "format": fmt, "avro_codec": codec,
                     "max_bytes": 0, "fsync": fsync})
    sink.open()
    return sink


def run_inline(raws: list[bytes], fmt: str, codec: str, batch: int = 1000,
               fsync: str = "batch") -> tuple[float, int]:
    """One thread: decode → cache → encode → write_batch; (seconds, events)."""
    with tempfile.TemporaryDirectory() as d:
        sink = _sink(Path(d), fmt, codec, fsync)
        cache = new_cache()
        t0 = time.perf_counter()
        n = feed_batched(cache, raws, sink, batch)
        sink.close()
        return time.perf_counter() - t0, n


def run_worker(raws: list[bytes], fmt: str, codec: str) -> tuple[float, int, dict[str, int]]:
    """The reader loop puts into a SinkWorker (its own thread), as `collector run` does."""
    with tempfile.TemporaryDirectory() as d:
        sink = FileSink({"path": str(Path(d) / f"events.{fmt}"), "format": fmt,
                         "avro_codec": codec, "max_bytes": 0})
        settings = {"queue_events": 10000, "batch_events": 1000, "batch_bytes": 1 << 20,
                    "batch_timeout_ms": 200, "when_full": "block", "retry_initial_ms": 100,
                    "retry_max_ms": 10000, "retry_max_elapsed_s": 300.0}
        w = SinkWorker(sink, settings)
        w.start()
        cache = new_cache()
        t0 = time.perf_counter()
        n = _feed(cache, raws, w.put_many)
        ok = w.drain(600)
        dt = time.perf_counter() - t0
        st = w.stats
        assert ok and st.written == n, (st.written, n)
        return dt, n, {"batches": st.batches, "written": st.written}


def stages(raws: list[bytes]) -> dict[str, float]:
    """µs per emitted event of each stage alone. Outputs are dropped as they are made
    (as the pipeline does): keeping 10^5 results alive would time the allocator."""
    def per_event(fn: Callable[[], int]) -> float:
        t0 = time.perf_counter()
        n = fn()
        return (time.perf_counter() - t0) / n * 1e6

    n_events = sum(1 for r in raws if HEADER.unpack_from(r)[0] != EventKind.FORK)

    def decode_only() -> int:
        for r in raws:
            decode(r)
        return n_events

    events: list[dict[str, Any]] = []

    def each(fn: Callable[[Any], Any]) -> Callable[[], int]:
        def run() -> int:
            for e in events:
                fn(e)
            return len(events)
        return run

    decode_us = per_event(decode_only)
    out = {"decode_us": decode_us,
           "process_cache_us": per_event(lambda: _feed(new_cache(), raws, events.extend))
           - decode_us,
           "encode_json_us": per_event(each(encode_json_line)),
           "of_which_json_record_us": per_event(each(json_record)),
           "of_which_orjson_dumps_us": per_event(each(orjson.dumps))}
    for codec in ("deflate", "null"):
        framing = OcfFraming(codec, os.urandom(16))  # the block builder alone, no file

        def avro_blocks(framing: OcfFraming = framing) -> int:
            for i in range(0, len(events), 1000):
                framing.block([avro_datum(e) for e in events[i : i + 1000]])
            return len(events)

        out[f"encode_avro_{codec}_us"] = per_event(avro_blocks)
    with tempfile.TemporaryDirectory() as d:
        for fsync in ("batch", "never"):
            sink = FileSink({"path": str(Path(d) / f"w-{fsync}.jsonl"), "max_bytes": 0,
                             "fsync": fsync})
            sink.open()
            lines = [encode_json_line(e) for e in events[:1000]]

            def write(sink: FileSink = sink, lines: list[bytes] = lines) -> int:
                for _ in range(0, len(events), 1000):
                    sink.write_batch(lines)
                return len(events)

            out[f"file_write_jsonl_fsync_{fsync}_us"] = per_event(write)
            sink.close()
    return {k: round(v, 3) for k, v in out.items()}


def profile(raws: list[bytes], fmt: str, codec: str, top: int = 15) -> list[dict[str, Any]]:
    prof = cProfile.Profile()
    prof.enable()
    run_inline(raws, fmt, codec)
    prof.disable()
    st = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in st.stats.values())  # type: ignore[attr-defined]
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    out = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in rows:
        short = os.path.relpath(file, REPO) if file.startswith(str(REPO)) else os.path.basename(file)
        where = f"{short}:{line}"
        out.append({"function": f"{where}({func})", "calls": nc, "tottime_s": round(tt, 3),
                    "cumtime_s": round(ct, 3), "share_of_total": round(tt / total, 3)})
    return out


def _code_state() -> str:
    """The commit measured, and whether the tree had changes on top of it."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                "collector", "sinks", "bench/pipeline_throughput.py"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile-events", type=int, default=60_000)
    args = ap.parse_args()
    os.sched_setaffinity(0, {0})  # taskset -c 0: every thread made from here on shares core 0

    raws = raw_records(args.events)
    inline: dict[str, list[float]] = {f"{f}/{c}": [] for f, c in FORMATS}
    worker: dict[str, list[float]] = {f"{f}/{c}": [] for f, c in FORMATS}
    no_fsync: dict[str, list[float]] = {"jsonl/null": []}
    run_inline(raws[:20_000], "jsonl", "null")  # warm caches (users, imports)
    for r in range(args.rounds):
        for fmt, codec in FORMATS:
            dt, n = run_inline(raws, fmt, codec)
            inline[f"{fmt}/{codec}"].append(n / dt)
            dt, n, _ = run_worker(raws, fmt, codec)
            worker[f"{fmt}/{codec}"].append(n / dt)
            print(f"round {r + 1} {fmt}/{codec}: inline {inline[f'{fmt}/{codec}'][-1]:,.0f}/s, "
                  f"worker {worker[f'{fmt}/{codec}'][-1]:,.0f}/s", flush=True)
        dt, n = run_inline(raws, "jsonl", "null", fsync="never")
        no_fsync["jsonl/null"].append(n / dt)
        print(f"round {r + 1} jsonl/null fsync=never: inline {n / dt:,.0f}/s", flush=True)

    stage_us = stages(raws[: 3 * 30_000])
    prof_raws = raws[: args.profile_events * 3 // 2]
    profiles = {f"{fmt}/{codec}": profile(prof_raws, fmt, codec)
                for fmt, codec in [("jsonl", "null"), ("avro", "deflate")]}

    def summary(runs: dict[str, list[float]]) -> dict[str, Any]:
        return {k: {"median_events_per_s": round(statistics.median(v)),
                    "runs": [round(x) for x in v]} for k, v in runs.items()}

    result = {
        "what": "decode → ProcessCache → FileSink (encode + write_batch to a real file, fsync "
                "per batch), one core (sched_setaffinity {0}), synthetic fork+exec+exit records "
                f"(5 commands under one shell, cgroup id {CGROUP_ID}: this host's own)",
        "code": _code_state(),
        "events_per_run": args.events,
        "rounds": args.rounds,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "aims_events_per_s": AIMS,
        "inline": summary(inline),
        "worker": summary(worker),
        "inline_fsync_never": summary(no_fsync),
        "stage_us_per_event": stage_us,
        "profile_top15_by_tottime": profiles,
    }
    for mode, runs in (("inline", inline), ("worker", worker), ("inline_fsync_never", no_fsync)):
        for key, v in runs.items():
            aim = AIMS[key.split("/")[0]]
            result[mode][key]["ratio_to_aim"] = round(statistics.median(v) / aim, 3)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "pipeline_throughput.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("inline", "worker", "inline_fsync_never",
                                             "stage_us_per_event")}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
