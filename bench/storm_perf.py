"""Where the collector's CPU goes in an exec storm, by shared object and symbol (perf).

py-spy (bench/storm.py --profile) sees Python frames of Python threads only, and
its wall-clock samples count a thread that waits in a syscall or for the GIL as
busy where it stands. `perf record` samples CPU time of every thread of the
collector (librdkafka's included) and the kernel work done on its behalf, but
cannot name Python functions on 3.11. Together they rank the levers.

For each sink: the collector starts as bench/storm.py starts it (a broker for
the Kafka sinks), `perf record -F 499 -g -p PID` runs through a storm of
--seconds, and `perf report` tables (by thread and shared object; by symbol,
top 30) go to bench/results/storm_perf_<sink>.txt.

Usage (root): .venv/bin/python bench/storm_perf.py [--sinks stdout,kafka-json] [--seconds 8]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import storm  # noqa: E402  # bench/storm.py: its Collector, KafkaServers and storm()


def report(data: Path, sort: str, top: int) -> str:
    out = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "-g", "none",
                          "--sort", sort, "--stdio"], capture_output=True, text=True, check=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    return "\n".join(lines[:top])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sinks", default="stdout,kafka-json")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--freq", type=int, default=499, help="perf samples per second")
    ap.add_argument("--collector", default=str(storm.DEFAULT_COLLECTOR))
    ap.add_argument("--rewarm-mib", type=int, default=512,
                    help="guest memory written and freed again before every storm")
    ap.add_argument("--warm-mib", type=int, default=4096,
                    help="guest memory written and freed first (bench/guest_memory.py)")
    args = ap.parse_args()
    sinks = [s for s in args.sinks.split(",") if s]
    storm.build()  # the spawner (a fresh clone has none)
    work = Path(tempfile.mkdtemp(prefix="storm-perf-", dir=storm.SHM))
    storm.guest_memory.warm(args.warm_mib)  # new guest pages cost 10x: not in the profile
    servers = storm.KafkaServers()
    if any(s.startswith("kafka") for s in sinks):
        servers.start(work, avro="kafka-avro" in sinks)
    try:
        for sink in sinks:
            storm.guest_memory.warm(args.rewarm_mib)  # pages just freed are handed out first
            c = storm.Collector(args.collector, "", sink)
            c.broker, c.registry = servers.broker, servers.registry
            run = work / sink
            run.mkdir()
            c.start(run)
            data = run / "perf.data"
            rec = subprocess.Popen(["perf", "record", "-F", str(args.freq), "-g", "-p",
                                    str(c.d.proc.pid), "-o", str(data)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                s = storm.storm(args.seconds)
                rec.send_signal(signal.SIGINT)
                rec.wait(60)
            except BaseException:
                # a failed storm must not leave perf (or the collector) running: one
                # left behind took both CPUs for 45 minutes of later benchmarks
                rec.kill()
                c.d.proc.kill()
                raise
            res = c.stop(s.pids)
            when = time.strftime("%FT%TZ", time.gmtime())
            text = (f"# bench/storm_perf.py {sink}: {s.spawned} processes at {s.rate:.0f}/s, "
                    f"{res['seen']} of {2 * s.spawned} events seen ({when})\n"
                    f"\n## by thread and shared object\n{report(data, 'comm,dso', 20)}\n"
                    f"\n## by symbol (top 30)\n{report(data, 'sym', 30)}\n")
            out = storm.RESULTS / f"storm_perf_{sink}.txt"
            out.write_text(text)
            print(text)
    finally:
        servers.stop()


if __name__ == "__main__":
    main()
