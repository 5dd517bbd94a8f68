"""Kafka cluster benchmarks (issue 14): what replication costs, and what a
failover does to latency. Figures to bench/results/kafka_cluster.json.

1. throughput: the export pipeline without the kernel on ONE core (as in
   bench/kafka_bench.py: synthetic raw records → decode → ProcessCache →
   KafkaSink.encode → KafkaSink.write_batch, every delivery report awaited,
   batches of 1000, producer defaults: acks=all, idempotence, lz4), this
   process pinned to core 0, into (a) the single broker and (b) the
   three-node cluster (tests/support/kafka_cluster.py: replication 3,
   min.insync.replicas=2), every broker JVM pinned to core 1 in both cases,
   the same heap per JVM. One topic per target and format, 6 partitions.
   JSON and Avro alternate, targets alternate, medians of the rounds.
   Broker bytes per event: the size of the topic's log segments (*.log
   files under the partition directories, i.e. what the broker stores:
   record batches, compressed by the producer, with their headers) ÷ the
   events acknowledged into the topic; for the cluster per replica (one
   node's copy) and for all three copies.
2. latency: the real collector (`collector run --sink kafka`, every node in
   --kafka-bootstrap) against the cluster; `/bin/true MARKER i` at a steady
   rate; per exec event: the broker's append time (LogAppendTime topic) −
   the event's kernel time. With acks=all the report follows the append
   once the followers have fetched the record (loopback: milliseconds), so
   this is exec → acknowledged to within that. Steady state, then the same
   load while the leader of the most partitions of the topic is SIGKILLed
   (restarted afterwards): p50/p99/max of both, and of the events whose exec
   fell in the 15 s after the kill.

Usage: .venv/bin/python bench/kafka_cluster_bench.py [--events 60000] [--rounds 3]
       [--rate 100] [--seconds 20] [--only throughput,latency]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import orjson  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_LOG_APPEND_TIME, Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kafka_bench import (  # noqa: E402
    BENCH_CORE,
    BROKER_CORE,
    Collector,
    code_state,
    counter,
    event_time_ns,
    medians,
    pin_tree,
    run_inline,
    spawn,
    summary,
    synthetic_events,
)
from pipeline_throughput import raw_records  # noqa: E402

from collector.encode import avro  # noqa: E402
from tests.support.kafka_broker import KafkaBroker  # noqa: E402
from tests.support.kafka_cluster import NODE_HEAP, KafkaCluster  # noqa: E402

RESULTS = REPO / "bench" / "results"
PARTITIONS = 6


@contextmanager
def targets(workdir: Path) -> Iterator[dict[str, Any]]:
    """The single broker and the cluster, every JVM on BROKER_CORE, same heap."""
    single = KafkaBroker(workdir / "single", heap=NODE_HEAP, num_partitions=PARTITIONS)
    cluster = KafkaCluster(workdir / "cluster", heap=NODE_HEAP, jvm_options=())
    try:
        single.start(timeout=180)
        cluster.start(timeout=240)
        for pid in [single.pid, *(n.pid for n in cluster.nodes.values())]:
            assert pid is not None
            pin_tree(pid, {BROKER_CORE})
        yield {"single": single, "cluster": cluster}
    finally:
        cluster.stop()
        single.stop()


def make_topic(bootstrap: str, name: str, replication: int,
               config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, num_partitions=PARTITIONS,
                                        replication_factor=replication, config=config or {})])
    fut[name].result(60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        t = admin.list_topics(name, timeout=5).topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == PARTITIONS and all(
                p.leader >= 0 and len(p.isrs) == replication for p in t.partitions.values()):
            return
        time.sleep(0.2)
    raise RuntimeError(f"topic {name} not ready")


def log_bytes(data_dirs: list[Path], topic: str) -> int:
    """Bytes of the topic's log segments on these data dirs (all replicas)."""
    total = 0
    for d in data_dirs:
        for part in d.glob(f"{topic}-*"):
            total += sum(f.stat().st_size for f in part.glob("*.log"))
    return total


def throughput(t: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    single: KafkaBroker = t["single"]
    cluster: KafkaCluster = t["cluster"]
    spec = {"single": (single.bootstrap, 1, [single.data_dir]),
            "cluster": (cluster.bootstrap, 3, [n.data_dir for n in cluster.nodes.values()])}
    raws = raw_records(args.events)
    warm_event = synthetic_events(10)[0]
    topics = {(tg, fmt): f"tput-{tg}-{fmt}-{uuid.uuid4().hex[:6]}"
              for tg in spec for fmt in ("json", "avro")}
    for (tg, _fmt), name in topics.items():
        make_topic(spec[tg][0], name, spec[tg][1])
    rate: dict[str, list[float]] = {f"{tg}-{fmt}": [] for tg, fmt in topics}
    cpu: dict[str, list[float]] = {f"{tg}-{fmt}": [] for tg, fmt in topics}
    acked: dict[str, int] = {f"{tg}-{fmt}": 0 for tg, fmt in topics}
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {BENCH_CORE})  # librdkafka threads made from here on inherit it
    try:
        for r in range(args.rounds):
            for fmt in ("json", "avro"):
                for tg in (("single", "cluster") if r % 2 == 0 else ("cluster", "single")):
                    res = run_inline(spec[tg][0], topics[(tg, fmt)], fmt, raws, warm_event)
                    key = f"{tg}-{fmt}"
                    rate[key].append(res["events_per_s"])
                    cpu[key].append(res["cpu_us_per_event"])
                    acked[key] += int(res["events"]) + 1  # + the warm-up message
                    print(f"throughput round {r + 1} {key}: {res['events_per_s']:,.0f} events/s "
                          f"({res['cpu_us_per_event']:.1f} µs CPU/event)", flush=True)
    finally:
        os.sched_setaffinity(0, before)
    time.sleep(2)  # followers catch up before the copies are measured
    stored: dict[str, dict[str, float]] = {}
    for (tg, fmt), name in topics.items():
        total = log_bytes(spec[tg][2], name)
        copies = spec[tg][1]
        key = f"{tg}-{fmt}"
        stored[key] = {"events": acked[key], "bytes_all_copies": total,
                       "bytes_per_event_per_copy": round(total / copies / acked[key], 1),
                       "bytes_per_event_all_copies": round(total / acked[key], 1)}
    return {
        "what": "synthetic fork+exec+exit raw records → decode → ProcessCache → KafkaSink.encode → "
                "KafkaSink.write_batch (batches of 1000, every delivery report awaited; producer "
                "defaults acks=all, idempotence, lz4), this process on core 0 with its librdkafka "
                f"threads; every broker JVM on core 1, heap {NODE_HEAP}; topics of {PARTITIONS} "
                "partitions; single broker = replication 1, cluster = replication 3, "
                "min.insync.replicas 2; medians of alternated rounds",
        "events_per_run": args.events,
        "rounds": args.rounds,
        "events_per_s": medians(rate),
        "process_cpu_us_per_event": medians(cpu, 2),
        "cluster_over_single": {fmt: round(
            sorted(rate[f"cluster-{fmt}"])[len(rate[f"cluster-{fmt}"]) // 2]
            / sorted(rate[f"single-{fmt}"])[len(rate[f"single-{fmt}"]) // 2], 3)
            for fmt in ("json", "avro")},
        "broker_storage": stored,
    }


def read_execs(bootstrap: str, topic: str, want: int, markers: set[str],
               timeout: float = 120.0) -> tuple[list[tuple[dict[str, Any], int]], int]:
    """(exec event, append ms) of our markers from every partition, and the number of
    messages whose timestamp is not LogAppendTime (must be 0)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-" + uuid.uuid4().hex,
                         "enable.auto.commit": "false", "log_level": 0})
    out: list[tuple[dict[str, Any], int]] = []
    wrong = 0
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        deadline = time.monotonic() + timeout
        idle = time.monotonic()
        while time.monotonic() < deadline:
            msgs = consumer.consume(1000, timeout=0.3)
            if not msgs and len(out) >= want and time.monotonic() - idle > 1.0:
                break
            for msg in msgs:
                idle = time.monotonic()
                if msg.error() is not None:
                    continue
                value = msg.value()
                event = orjson.loads(value) if value[:1] == b"{" else avro.decode_framed(value)
                args = event["process"]["args"]
                if event["event_type"] != "process_exec" or len(args) < 2 or args[1] not in markers:
                    continue
                ts_type, ts_ms = msg.timestamp()
                wrong += ts_type != TIMESTAMP_LOG_APPEND_TIME
                out.append((event, ts_ms))
    finally:
        consumer.close()
    return out, wrong


def latency_run(cluster: KafkaCluster, rate: float, seconds: float, kill: bool) -> dict[str, Any]:
    topic = f"lat-{'failover' if kill else 'steady'}-{uuid.uuid4().hex[:8]}"
    make_topic(cluster.bootstrap, topic, 3, {"message.timestamp.type": "LogAppendTime"})
    marker = f"lat-{uuid.uuid4().hex[:8]}"
    c = Collector("--sink", "kafka", "--kafka-bootstrap", cluster.bootstrap, "--kafka-topic", topic,
                  "--no-procfs-events", "--stats-interval", "1")
    victim = None
    kill_ns = None
    try:
        spawn("warmup-" + uuid.uuid4().hex[:6], 5, 50)
        time.sleep(1.0)
        n = int(rate * seconds)
        if kill:
            leaders = [s.leader for s in cluster.partitions(topic)[topic].values()]
            victim = max(set(leaders), key=leaders.count)
            first = int(rate * 3)  # 3 s of steady load, then the kill, the rest after it
            spawn(marker, first, rate)
            kill_ns = time.time_ns()
            cluster.kill_node(victim)
            spawn(marker + "-b", n - first, rate)
        else:
            spawn(marker, n, rate)
        time.sleep(2.0)
        deadline = time.monotonic() + 120
        while (counter(c.stats_lines()[-1], "kafka", "written") < 2 * n
               and time.monotonic() < deadline):
            time.sleep(0.5)
        stats = c.stop()
    finally:
        c.kill()
    markers = {marker, marker + "-b"}
    got, wrong_ts = read_execs(cluster.bootstrap, topic, n, markers)
    if victim is not None:
        cluster.start_node(victim)
        cluster.wait_isr_full()
    lat_all: list[float] = []
    lat_after: list[float] = []
    for event, ts_ms in got:
        ms = (ts_ms * 1_000_000 - event_time_ns(event)) / 1e6
        lat_all.append(ms)
        if kill_ns is not None and 0 <= event_time_ns(event) - kill_ns <= 15e9:
            lat_after.append(ms)
    out: dict[str, Any] = {"processes": n, "received_exec_events": len(got),
                           "missing": n - len({e["process"]["pid"] for e, _t in got}),
                           "latency_ms": summary(lat_all),
                           "messages_without_log_append_time": wrong_ts, "final_stats": stats}
    if kill:
        out["killed_node"] = victim
        out["latency_ms_first_15s_after_kill"] = summary(lat_after)
    return out


def latency(cluster: KafkaCluster, args: argparse.Namespace) -> dict[str, Any]:
    runs = {}
    for kind in ("steady", "failover"):
        res = latency_run(cluster, args.rate, args.seconds, kill=kind == "failover")
        runs[kind] = res
        print(f"latency {kind}: {res['latency_ms']} missing {res['missing']}", flush=True)
    return {
        "definition": "latency = broker append time (LogAppendTime, ms, truncated) − the exec "
                      "event's kernel time (as wall time); acks=all, replication 3, "
                      "min.insync.replicas 2; the report follows the append once a follower "
                      "fetched the record",
        "collector": "collector run --sink kafka --kafka-bootstrap <3 nodes> --no-procfs-events "
                     "(producer defaults)",
        "load": f"/bin/true MARKER i at {args.rate}/s for {args.seconds} s; failover: the node "
                "leading most partitions of the topic SIGKILLed after 3 s",
        **runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--only", default="throughput,latency")
    ap.add_argument("--out", type=Path, default=RESULTS / "kafka_cluster.json")
    args = ap.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    result: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "brokers": "Apache Kafka 4.1.1 KRaft: one single-node broker, and a three-node cluster "
                   "(each node broker+controller, one quorum), every JVM pinned to core "
                   f"{BROKER_CORE}, heap {NODE_HEAP}",
        "command": "bench/kafka_cluster_bench.py " + " ".join(sys.argv[1:]),
        "code": code_state(),
    }
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kafka-cluster-bench-") as d, \
            targets(Path(d)) as t:
        if "throughput" in parts:
            result["throughput"] = throughput(t, args)
        if "latency" in parts:
            result["latency"] = latency(t["cluster"], args)
    result["wall_s"] = round(time.monotonic() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
