"""Kafka sink benchmarks (issue 5): latency, throughput and CPU cost, against a
real single-node Apache Kafka broker (tests/support/kafka_broker.py, KRaft, one
JVM) started in a temporary directory and pinned to core 1 for the whole run.

Figures, written to bench/results/kafka.json:

1. latency: end-to-end latency from exec to delivery. The real collector
   (`collector run --sink kafka --no-procfs-events`) runs against the broker;
   this script spawns real processes (`/bin/true MARKER i`, posix_spawn and
   wait) at a steady rate (default 200/s for 15 s), then as a burst (as fast
   as one spawner goes). The topic is created with an AdminClient with
   `message.timestamp.type=LogAppendTime`, so each message's timestamp is when
   the broker appended it to its log. For every exec event of ours:
   latency = broker append time − the event's `time` field (the kernel's
   timestamp of the exec, converted to wall time by the collector). Both
   clocks are this machine's CLOCK_REALTIME. The append time has millisecond
   resolution (truncated), so figures are biased low by 0–1 ms. With one
   node and acks=all the delivery report follows the append at once, so this
   is also exec → acknowledged. p50/p99/max/count per run and pooled; the
   JSON and Avro value formats alternate run by run.
2. throughput: the export pipeline into the broker without the kernel, on ONE
   core: synthetic raw records in the kernel layout (built as in
   bench/pipeline_throughput.py) → collector.decode.decode → ProcessCache →
   KafkaSink.encode → KafkaSink.write_batch (which returns only after every
   delivery report), this process pinned to core 0 (sched_setaffinity; the
   librdkafka threads inherit it), the broker JVM to core 1. `inline`: one
   thread, batches of 1000; `worker`: the reader loop puts into a real
   SinkWorker (collector.pipeline.worker) with the Kafka sink's default
   settings. Also µs per event of encode alone and write_batch alone. JSON
   and Avro rounds alternate; medians are reported.
3. cpu: collector CPU time per event during a real exec burst (default 3000
   processes = 6000 events): utime+stime of the collector process
   (/proc/PID/stat, includes the librdkafka threads) from just before the
   burst until its sink reports every event written (acknowledged, for
   Kafka), ÷ events written in that window. Sinks compared, alternated round
   by round: kafka (avro), kafka (json), kafka (avro, compression.type=zstd
   instead of the default lz4), stdout (> /dev/null), file (jsonl, fsync per
   batch). Medians are reported.

The machine has 2 cores and other work runs on it: figures are noisy, which
is why A/B runs alternate and medians are given.

Usage: .venv/bin/python bench/kafka_bench.py [--rate 200] [--seconds 15]
       [--burst 2000] [--latency-rounds 2] [--events 60000] [--rounds 3]
       [--cpu-burst 3000] [--cpu-rounds 3] [--only latency,throughput,cpu]
"""

from __future__ import annotations

import argparse
import calendar
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import orjson  # noqa: E402
from confluent_kafka import (  # noqa: E402
    OFFSET_BEGINNING,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from pipeline_throughput import _feed, feed_batched, new_cache, raw_records  # noqa: E402

from collector.encode import avro  # noqa: E402
from collector.pipeline.worker import SinkWorker  # noqa: E402
from sinks.kafka import KafkaSink  # noqa: E402
from tests.support.kafka_broker import KafkaBroker  # noqa: E402

COLLECTOR = str(Path(sys.executable).with_name("collector"))
RESULTS = REPO / "bench" / "results"
TICK = os.sysconf("SC_CLK_TCK")
BROKER_CORE = 1
BENCH_CORE = 0
#: the Kafka sink's worker settings in config/collector.toml ([sinks.kafka])
KAFKA_WORKER_SETTINGS = {"queue_events": 10000, "batch_events": 1000, "batch_bytes": 1 << 20,
                         "batch_timeout_ms": 0, "when_full": "block", "retry_initial_ms": 100,
                         "retry_max_ms": 10000, "retry_max_elapsed_s": 300.0}


# -- shared helpers (also used by bench/kafka_compression.py) -------------------------

# "avro" in these results is the single-object encoding (the --kafka-format it had)
_SINK_FMT = {"avro": "avro-single-object"}


def pin_tree(pid: int, cores: set[int]) -> int:
    """Pin every thread of a process (taskset -a -p); new threads inherit it."""
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(int(tid), cores)
            n += 1
    return n


@contextmanager
def broker_running(workdir: Path, core: int | None = BROKER_CORE) -> Iterator[KafkaBroker]:
    """A fresh broker in workdir (jars from the shared cache), pinned to `core`,
    stopped on the way out whatever happens."""
    broker = KafkaBroker(workdir, heap="768m")
    try:
        broker.start(timeout=120)
        if core is not None and broker.pid is not None:
            pin_tree(broker.pid, {core})
        yield broker
    finally:
        broker.stop()


def create_topic(bootstrap: str, name: str, config: dict[str, str] | None = None) -> None:
    """One partition, replication 1, created with an AdminClient; waits for its leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1,
                                            config=config or {})])
    futures[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        t = admin.list_topics(name, timeout=5).topics.get(name)
        if t is not None and t.error is None and t.partitions and t.partitions[0].leader >= 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {name} has no leader after 30 s")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a whole process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def synthetic_events(n_events: int) -> list[dict[str, Any]]:
    """Events as the reader makes them: raw kernel-layout records → decode → cache."""
    events: list[dict[str, Any]] = []
    _feed(new_cache(), raw_records(n_events), events.extend)
    return events


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def summary(values: list[float], digits: int = 3) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    return {"count": len(values), "p50": round(pct(values, 50), digits),
            "p99": round(pct(values, 99), digits), "max": round(max(values), digits),
            "min": round(min(values), digits), "mean": round(statistics.fmean(values), digits)}


def medians(runs: dict[str, list[float]], digits: int = 0) -> dict[str, Any]:
    return {k: {"median": round(statistics.median(v), digits) if v else None,
                "runs": [round(x, digits) for x in v]} for k, v in runs.items()}


def code_state() -> dict[str, Any]:
    """The commit measured, and product files that differed from it (others edit this tree)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True,
                              check=False).stdout
    dirty = [line[3:] for line in git("status", "--porcelain").splitlines()
             if line[3:].startswith(("collector/", "sinks/", "schemas/", "bpf/"))]
    return {"head": git("rev-parse", "HEAD").strip(), "uncommitted_product_files": dirty}


# -- the real collector ----------------------------------------------------------------

class Collector:
    """`collector run ...` with stdout to /dev/null (or a file) and stderr kept."""

    def __init__(self, *args: str) -> None:
        self.err = tempfile.TemporaryFile()
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
        self.proc = subprocess.Popen([COLLECTOR, "run", *args], stdout=subprocess.DEVNULL,
                                     stderr=self.err, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while b"attached in" not in self.stderr().encode():
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited before attaching:\n{self.stderr()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"collector did not attach in 60 s:\n{self.stderr()}")
            time.sleep(0.01)

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def stats_lines(self) -> list[str]:
        return [line for line in self.stderr().splitlines() if line.startswith("stats:")]

    def sink_counter(self, sink: str, name: str) -> int | None:
        """A counter of one sink in the latest stats line (--stats-interval)."""
        lines = self.stats_lines()
        return counter(lines[-1], sink, name) if lines else None

    def stop(self) -> str:
        """SIGINT, wait for the clean stop; the last stats line."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        lines = self.stats_lines()
        return lines[-1] if lines else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def counter(stats: str, section: str, name: str) -> int:
    """`stats: kernel records=.. | events exec=.. | kafka queued=.. written=..` → a number."""
    for part in stats.removeprefix("stats:").split("|"):
        words = part.split()
        if words and words[0] == section:
            for w in words[1:]:
                if w.startswith(name + "="):
                    return int(w.split("=", 1)[1].split(",")[0].split(":")[-1])
    raise KeyError(f"{section}.{name} not in {stats!r}")


def spawn(marker: str, n: int, rate: float | None) -> list[int]:
    """n × `/bin/true MARKER i` (posix_spawn + waitpid), at `rate`/s or as fast as possible."""
    pids = []
    t0 = time.monotonic()
    for i in range(n):
        if rate:
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        pid = os.posix_spawn("/bin/true", ["/bin/true", marker, str(i)], os.environ)
        os.waitpid(pid, 0)
        pids.append(pid)
    return pids


# -- 1. latency ------------------------------------------------------------------------

def rfc3339_ns(text: str) -> int:
    """'2026-11-25T18:37:11.158462164Z' → ns since the epoch."""
    base, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])


def event_time_ns(event: dict[str, Any]) -> int:
    t = event["time"]
    if isinstance(t, str):
        return rfc3339_ns(t)
    if isinstance(t, int):
        return t
    return int(t.timestamp() * 1e9)  # a datetime (a reader without timestamp-nanos)


def read_topic(bootstrap: str, topic: str, want: int, markers: set[str],
               timeout: float = 60.0) -> tuple[list[tuple[str, dict[str, Any], int]], int]:
    """(marker, event, append ms) for our exec events, and the number of messages whose
    timestamp was not LogAppendTime (must be 0)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-" + uuid.uuid4().hex,
                         "enable.auto.commit": "false"})
    out: list[tuple[str, dict[str, Any], int]] = []
    wrong_ts = 0
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        idle_since = time.monotonic()
        while time.monotonic() < deadline:
            msgs = consumer.consume(1000, timeout=0.3)
            if not msgs and len(out) >= want and time.monotonic() - idle_since > 1.0:
                break
            for msg in msgs:
                idle_since = time.monotonic()
                if msg.error() is not None:
                    continue
                value = msg.value()
                event = orjson.loads(value) if value[:1] == b"{" else avro.decode_framed(value)
                args = event["process"]["args"]
                if event["event_type"] != "process_exec" or len(args) < 2 or args[1] not in markers:
                    continue
                ts_type, ts_ms = msg.timestamp()
                if ts_type != TIMESTAMP_LOG_APPEND_TIME:
                    wrong_ts += 1
                out.append((args[1], event, ts_ms))
    finally:
        consumer.close()
    return out, wrong_ts


def latency_run(broker: KafkaBroker, fmt: str, rate: float, seconds: float,
                burst: int) -> dict[str, Any]:
    topic = f"lat-{fmt}-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic, {"message.timestamp.type": "LogAppendTime"})
    steady_m, burst_m = f"steady-{uuid.uuid4().hex[:8]}", f"burst-{uuid.uuid4().hex[:8]}"
    c = Collector("--sink", "kafka", "--kafka-bootstrap", broker.bootstrap, "--kafka-topic", topic,
                  "--kafka-format", _SINK_FMT.get(fmt, fmt), "--no-procfs-events", "--stats-interval", "0.5")
    try:
        spawn("warmup-" + uuid.uuid4().hex[:6], 5, 50)  # connection + metadata before timing
        time.sleep(1.0)
        n_steady = int(rate * seconds)
        t0 = time.monotonic()
        spawn(steady_m, n_steady, rate)
        steady_s = time.monotonic() - t0
        time.sleep(1.0)
        line = c.stats_lines()[-1]
        batches_before_burst = counter(line, "kafka", "batches")
        written_before_burst = counter(line, "kafka", "written")
        t0 = time.monotonic()
        spawn(burst_m, burst, None)
        burst_s = time.monotonic() - t0
        time.sleep(1.0)
        stats = c.stop()
    finally:
        c.kill()
    got, wrong_ts = read_topic(broker.bootstrap, topic, n_steady + burst, {steady_m, burst_m})
    lat: dict[str, list[float]] = {steady_m: [], burst_m: []}
    for marker, event, ts_ms in got:
        lat[marker].append((ts_ms * 1_000_000 - event_time_ns(event)) / 1e6)
    out = {
        "format": fmt,
        "steady": {"processes": n_steady, "spawn_rate_per_s": round(n_steady / steady_s, 1),
                   "received_exec_events": len(lat[steady_m]),
                   "missing": n_steady - len(set(e["process"]["pid"] for m, e, _ in got
                                                 if m == steady_m)),
                   "latency_ms": summary(lat[steady_m])},
        "burst": {"processes": burst, "spawn_rate_per_s": round(burst / burst_s, 1),
                  "received_exec_events": len(lat[burst_m]),
                  "missing": burst - len(set(e["process"]["pid"] for m, e, _ in got
                                             if m == burst_m)),
                  "latency_ms": summary(lat[burst_m])},
        # events per produce round while only the steady load (and this machine's own
        # processes) ran: what the compression of a real batch works on
        "steady_events_per_batch": round(written_before_burst / max(batches_before_burst, 1), 1),
        "messages_without_log_append_time": wrong_ts,
        "final_stats": stats,
        "_raw": lat,
        "_markers": (steady_m, burst_m),
    }
    return out


def latency(broker: KafkaBroker, args: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    pooled: dict[str, dict[str, list[float]]] = {}
    for r in range(args.latency_rounds):
        for fmt in ("json", "avro"):
            res = latency_run(broker, fmt, args.rate, args.seconds, args.burst)
            steady_m, burst_m = res.pop("_markers")
            raw = res.pop("_raw")
            p = pooled.setdefault(fmt, {"steady": [], "burst": []})
            p["steady"] += raw[steady_m]
            p["burst"] += raw[burst_m]
            runs.append(res)
            print(f"latency round {r + 1} {fmt}: steady {res['steady']['latency_ms']} "
                  f"burst {res['burst']['latency_ms']} "
                  f"missing {res['steady']['missing']}+{res['burst']['missing']}", flush=True)
    return {
        "definition": "latency = broker append time (topic message.timestamp.type=LogAppendTime, "
                      "ms resolution, truncated) − the exec event's `time` field (kernel "
                      "CLOCK_BOOTTIME at sched_process_exec, converted to wall time by the "
                      "collector); both clocks are this machine's CLOCK_REALTIME. Single node, "
                      "acks=all: the delivery report follows the append at once. Figures are "
                      "biased low by 0-1 ms (ms truncation of the append time).",
        "collector": "collector run --sink kafka --kafka-format {json|avro} --no-procfs-events "
                     "(producer defaults: acks=all, idempotence, lz4, linger.ms=5)",
        "load": {"steady": f"/bin/true MARKER i at {args.rate}/s for {args.seconds} s "
                           "(posix_spawn + waitpid, one spawner)",
                 "burst": f"{args.burst} × /bin/true as fast as one spawner goes"},
        "pooled_ms": {fmt: {k: summary(v) for k, v in d.items()} for fmt, d in pooled.items()},
        "runs": runs,
    }


# -- 2. throughput on one core ------------------------------------------------------------

def new_sink(bootstrap: str, topic: str, fmt: str, options: dict[str, str] | None = None) -> KafkaSink:
    sink = KafkaSink({"bootstrap": bootstrap, "topic": topic, "format": _SINK_FMT.get(fmt, fmt),
                      "options": options or {}})
    sink.open()
    return sink


def warm(sink: KafkaSink, event: dict[str, Any]) -> None:
    """One delivered message: connection, metadata and the idempotent producer id are
    set up before timing starts."""
    sink.write_batch([sink.encode(event)])


def run_inline(bootstrap: str, topic: str, fmt: str, raws: list[bytes], warm_event: dict[str, Any],
               batch: int = 1000) -> dict[str, float]:
    sink = new_sink(bootstrap, topic, fmt)
    try:
        warm(sink, warm_event)
        cache = new_cache()
        cpu0, t0 = time.process_time(), time.perf_counter()
        n = feed_batched(cache, raws, sink, batch)
        dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        assert sink.delivery.acked == n + 1, (sink.delivery.acked, n)
    finally:
        sink.close()
    return {"events": n, "events_per_s": n / dt, "cpu_us_per_event": cpu / n * 1e6}


def run_worker(bootstrap: str, topic: str, fmt: str, raws: list[bytes],
               warm_event: dict[str, Any]) -> dict[str, float]:
    sink = KafkaSink({"bootstrap": bootstrap, "topic": topic, "format": _SINK_FMT.get(fmt, fmt)})
    w = SinkWorker(sink, KAFKA_WORKER_SETTINGS)
    w.start()
    drained = False
    try:
        w.put(warm_event)
        deadline = time.monotonic() + 30
        while w.stats.written < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        cache = new_cache()
        cpu0, t0 = time.process_time(), time.perf_counter()
        n = _feed(cache, raws, w.put_many)
        ok, drained = w.drain(600), True
        dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        st = w.stats
        assert ok and st.written == n + 1, (ok, st.written, n)
        return {"events_per_s": n / dt, "cpu_us_per_event": cpu / n * 1e6,
                "events_per_batch": (st.written - 1) / max(st.batches - 1, 1)}
    finally:
        if not drained:  # failed half-way: stop the worker and close the sink anyway
            w.drain(5)


def split(bootstrap: str, topic: str, fmt: str, events: list[dict[str, Any]]) -> dict[str, float]:
    """µs per event of KafkaSink.encode alone and of write_batch alone (pre-encoded, 1000)."""
    sink = new_sink(bootstrap, topic, fmt)
    try:
        warm(sink, events[0])
        t0 = time.perf_counter()
        recs = [sink.encode(e) for e in events]
        enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(0, len(recs), 1000):
            sink.write_batch(recs[i : i + 1000])
        wr = time.perf_counter() - t0
        value_bytes = statistics.fmean(len(r) for r in recs)
    finally:
        sink.close()
    return {"encode_us": enc / len(events) * 1e6, "write_batch_us": wr / len(events) * 1e6,
            "mean_value_bytes": value_bytes}


def throughput(broker: KafkaBroker, args: argparse.Namespace) -> dict[str, Any]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {BENCH_CORE})  # librdkafka threads made from here on inherit it
    try:
        raws = raw_records(args.events)
        events = synthetic_events(min(args.events, 30_000))
        topics = {fmt: f"tput-{fmt}-{uuid.uuid4().hex[:8]}" for fmt in ("json", "avro")}
        for t in topics.values():
            create_topic(broker.bootstrap, t)
        inline: dict[str, list[float]] = {"json": [], "avro": []}
        inline_cpu: dict[str, list[float]] = {"json": [], "avro": []}
        worker: dict[str, list[float]] = {"json": [], "avro": []}
        per_batch: dict[str, list[float]] = {"json": [], "avro": []}
        stage: dict[str, dict[str, list[float]]] = {f: {} for f in ("json", "avro")}
        broker_cpu: dict[str, list[float]] = {"json": [], "avro": []}
        assert broker.pid is not None
        for r in range(args.rounds):
            for fmt in ("json", "avro"):
                b0 = proc_cpu_s(broker.pid)
                res = run_inline(broker.bootstrap, topics[fmt], fmt, raws, events[0])
                broker_cpu[fmt].append((proc_cpu_s(broker.pid) - b0) / res["events"] * 1e6)
                inline[fmt].append(res["events_per_s"])
                inline_cpu[fmt].append(res["cpu_us_per_event"])
                wres = run_worker(broker.bootstrap, topics[fmt], fmt, raws, events[0])
                worker[fmt].append(wres["events_per_s"])
                per_batch[fmt].append(wres["events_per_batch"])
                for k, v in split(broker.bootstrap, topics[fmt], fmt, events).items():
                    stage[fmt].setdefault(k, []).append(v)
                print(f"throughput round {r + 1} {fmt}: inline {res['events_per_s']:,.0f}/s "
                      f"({res['cpu_us_per_event']:.1f} µs CPU/event), worker "
                      f"{wres['events_per_s']:,.0f}/s", flush=True)
    finally:
        os.sched_setaffinity(0, before)
    return {
        "what": "synthetic fork+exec+exit raw records → decode → ProcessCache → KafkaSink.encode → "
                "KafkaSink.write_batch (every delivery report awaited, acks=all, lz4), this "
                "process on core 0 (sched_setaffinity, librdkafka threads included), the broker "
                "JVM on core 1; events/s of exec+exit events; medians of alternated rounds",
        "events_per_run": args.events,
        "rounds": args.rounds,
        "inline_events_per_s": medians(inline),
        "inline_process_cpu_us_per_event": medians(inline_cpu, 2),
        "worker_events_per_s": medians(worker),
        "worker_events_per_batch": medians(per_batch, 1),
        "broker_cpu_us_per_event_inline": medians(broker_cpu, 2),
        "stage_us_per_event": {fmt: {k: round(statistics.median(v), 2) for k, v in d.items()}
                               for fmt, d in stage.items()},
    }


# -- 3. collector CPU per event --------------------------------------------------------------

CPU_CONFIGS: dict[str, tuple[str, list[str]]] = {
    "kafka-avro": ("kafka", ["--sink", "kafka", "--kafka-format", "avro-single-object"]),
    "kafka-json": ("kafka", ["--sink", "kafka", "--kafka-format", "json"]),
    "kafka-avro-zstd": ("kafka", ["--sink", "kafka", "--kafka-format", "avro-single-object",
                                  "--kafka-option", "compression.type=zstd"]),
    "stdout-json": ("stdout", ["--sink", "stdout"]),
    "file-jsonl": ("file", ["--sink", "file", "--file-format", "jsonl"]),
}


def cpu_run(broker: KafkaBroker, name: str, n: int, workdir: Path) -> dict[str, float]:
    sink, flags = CPU_CONFIGS[name]
    extra: list[str] = []
    if sink == "kafka":
        topic = f"cpu-{name}-{uuid.uuid4().hex[:8]}"
        create_topic(broker.bootstrap, topic)
        extra = ["--kafka-bootstrap", broker.bootstrap, "--kafka-topic", topic]
    elif sink == "file":
        extra = ["--file-path", str(workdir / f"{uuid.uuid4().hex[:8]}.jsonl")]
    c = Collector(*flags, *extra, "--no-procfs-events", "--stats-interval", "0.2")
    try:
        spawn("warmup-" + uuid.uuid4().hex[:6], 5, 50)
        time.sleep(1.0)
        base = c.sink_counter(sink, "written") or 0
        cpu0 = proc_cpu_s(c.proc.pid)
        t0 = time.monotonic()
        spawn("cpu-" + uuid.uuid4().hex[:6], n, None)
        spawn_s = time.monotonic() - t0
        deadline = time.monotonic() + 60
        while True:  # until the sink has written (acknowledged) the whole burst
            written = c.sink_counter(sink, "written") or 0
            if written - base >= 2 * n or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        cpu = proc_cpu_s(c.proc.pid) - cpu0
        done_s = time.monotonic() - t0
        stats = c.stop()
    finally:
        c.kill()
    events = written - base
    return {"events": events, "cpu_s": cpu, "cpu_us_per_event": cpu / max(events, 1) * 1e6,
            "spawn_rate_per_s": n / spawn_s, "all_written_after_s": done_s,
            "kernel_drops": counter(stats, "kernel", "drops")}


def cpu(broker: KafkaBroker, args: argparse.Namespace) -> dict[str, Any]:
    per: dict[str, list[float]] = {k: [] for k in CPU_CONFIGS}
    rate: dict[str, list[float]] = {k: [] for k in CPU_CONFIGS}
    detail: dict[str, list[dict[str, float]]] = {k: [] for k in CPU_CONFIGS}
    with tempfile.TemporaryDirectory(prefix="kafka-bench-file-") as d:
        for r in range(args.cpu_rounds):
            for name in CPU_CONFIGS:
                res = cpu_run(broker, name, args.cpu_burst, Path(d))
                per[name].append(res["cpu_us_per_event"])
                rate[name].append(res["spawn_rate_per_s"])
                detail[name].append({k: round(v, 3) for k, v in res.items()})
                print(f"cpu round {r + 1} {name}: {res['cpu_us_per_event']:.1f} µs/event "
                      f"({res['events']:.0f} events, spawn {res['spawn_rate_per_s']:.0f}/s)",
                      flush=True)
    med = {k: statistics.median(v) for k, v in per.items()}
    ref = med["stdout-json"]
    return {
        "what": f"collector utime+stime (/proc/PID/stat) from just before a burst of "
                f"{args.cpu_burst} × /bin/true (one spawner, as fast as it goes) until the sink "
                "reports the whole burst written (Kafka: acknowledged) ÷ events written in that "
                "window; --no-procfs-events; configs alternated round by round; medians",
        "cpu_us_per_event": medians(per, 1),
        "spawn_rate_per_s": medians(rate, 0),
        "kafka_adds_us_per_event_vs_stdout": {k: round(v - ref, 1) for k, v in med.items()
                                              if k.startswith("kafka")},
        "ratio_to_stdout": {k: round(v / ref, 2) for k, v in med.items()},
        "runs": detail,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=200.0, help="steady spawn rate (processes/s)")
    ap.add_argument("--seconds", type=float, default=15.0, help="steady phase length")
    ap.add_argument("--burst", type=int, default=2000, help="processes in the latency burst")
    ap.add_argument("--latency-rounds", type=int, default=2, help="rounds of json+avro")
    ap.add_argument("--events", type=int, default=60_000, help="events per throughput run")
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds of json+avro")
    ap.add_argument("--cpu-burst", type=int, default=3000, help="processes per CPU burst")
    ap.add_argument("--cpu-rounds", type=int, default=3, help="rounds of the CPU configs")
    ap.add_argument("--only", default="latency,throughput,cpu",
                    help="comma-separated subset of latency,throughput,cpu")
    ap.add_argument("--out", type=Path, default=RESULTS / "kafka.json")
    args = ap.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if os.geteuid() != 0 and ("latency" in parts or "cpu" in parts):
        raise SystemExit("latency and cpu run the real collector: run as root")

    result: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "broker": "Apache Kafka 4.1.1, single node KRaft (tests/support/kafka_broker.py), "
                  f"pinned to core {BROKER_CORE}, 1 partition per topic",
        "command": "bench/kafka_bench.py " + " ".join(sys.argv[1:]),
        "code": code_state(),
    }
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kafka-bench-") as d, \
            broker_running(Path(d) / "kafka") as broker:
        if "cpu" in parts:
            result["cpu"] = cpu(broker, args)
        if "latency" in parts:
            result["latency"] = latency(broker, args)
        if "throughput" in parts:
            result["throughput"] = throughput(broker, args)
    result["wall_s"] = round(time.monotonic() - t_start, 1)
    if args.out.exists() and set(parts) != {"latency", "throughput", "cpu"}:
        old = json.loads(args.out.read_text())  # a partial run keeps the other figures
        old.update(result)
        result = old
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
