"""Kafka compression benchmark (issue 5): which `compression.type` for the Kafka sink.

The sink's default is lz4 (sinks/kafka/options.py, PRODUCER_DEFAULTS). This compares
none, lz4, zstd, snappy and gzip (librdkafka's default level for each) on
real-looking events, as Avro (single-object) and as JSON message values,
against a real single-node Apache Kafka broker (tests/support/kafka_broker.py)
started in a temporary directory and pinned to core 1; this process (and
so librdkafka's threads) is pinned to core 0.

Events: raw records in the kernel layout (as bench/pipeline_throughput.py
builds them: fork + exec + exit per process) whose binaries, argv, cwd and
comm are taken from the processes running on this machine when the script
starts (/proc/*/exe, cmdline, cwd, comm), the pipeline benchmark's five
commands and ~30 command lines of a typical server (SERVER_COMMANDS: cron,
git, curl, containerd/runc, postgres, compilers ...; several carry a random
token per exec, as temp names and ids do), picked at random (fixed seed),
with unique pids and times
→ collector.decode.decode → ProcessCache → KafkaSink.encode. So exec_id,
times, pids and parents vary as they do for real, and argv is as varied as
this host's.

Per codec, value format and produce-round size (events per write_batch:
1000, a burst, where the worker fills its batches; 100; 10, about what the
collector's rounds hold at a steady 200 execs/s, see bench/results/kafka.json
latency.runs[].steady_events_per_batch; runs with rounds under 100 events
use --small-batch-events events):
- log_bytes_per_event: growth of the partition's .log segment files on the
  broker's disk ÷ events (what the broker stores: record batches as the
  producer compressed them, since the topic keeps compression.type=producer;
  batch headers, keys and the three message headers included);
- producer_cpu_us_per_event: CPU time (user+sys, every thread of this
  process, i.e. Python plus librdkafka's compression) spent in
  KafkaSink.write_batch of pre-encoded records ÷ events (encoding is the same
  for every codec and not counted);
- events_per_s: events ÷ wall time of those write_batch calls (each returns
  after every delivery report, acks=all);
- broker_cpu_us_per_event: the broker JVM's utime+stime ÷ events (it
  decompresses batches to validate them);
- consumer_cpu_us_per_event: CPU of a confluent-kafka Consumer reading the
  run's messages back (decompression on the SIEM's side), including its
  start-up, so only its differences between codecs mean something.
Rounds alternate the codecs (none lz4 zstd snappy gzip, none lz4 ...) so the
drift of this noisy 2-core machine hits each alike; medians are reported.
A first warm-up round is not counted: the broker's JIT makes its first
round several times slower than the next.
Figures go to bench/results/kafka_compression.json.

Usage: .venv/bin/python bench/kafka_compression.py [--events 30000]
       [--small-batch-events 5000] [--rounds 5] [--warmup-rounds 1]
       [--batch-sizes 1000,100,10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from kafka_bench import (  # noqa: E402
    BENCH_CORE,
    BROKER_CORE,
    broker_running,
    code_state,
    create_topic,
    proc_cpu_s,
)
from pipeline_throughput import COMMANDS, SHELL_PID, _exec, _exit, _feed, _fork, new_cache  # noqa: E402

from sinks.kafka import KafkaSink  # noqa: E402
from sinks.kafka.options import PRODUCER_DEFAULTS  # noqa: E402
from tests.support.kafka_broker import KafkaBroker  # noqa: E402

RESULTS = REPO / "bench" / "results"
CODECS = ["none", "lz4", "zstd", "snappy", "gzip"]
FORMATS = ["avro", "json"]


# "avro" in these results is the single-object encoding (the --kafka-format it had)
_SINK_FMT = {"avro": "avro-single-object"}


def host_commands(limit: int = 400) -> list[tuple[str, list[str], bytes, str]]:
    """(binary, argv, comm, cwd) of the processes running here (kernel threads left out)."""
    out = []
    seen = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = [a.decode(errors="backslashreplace") for a in
                    Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")[:-1]]
            binary = os.readlink(f"/proc/{d}/exe")
            cwd = os.readlink(f"/proc/{d}/cwd")
            comm = Path(f"/proc/{d}/comm").read_bytes().strip()[:15]
        except OSError:
            continue
        key = (binary, tuple(argv))
        if argv and key not in seen:
            seen.add(key)
            out.append((binary, argv, comm, cwd))
    out.sort()
    return out[:limit]


#: command lines of a typical server, each with {r} filled by a per-event random token
#: (temp names, hashes, ids: what makes real argv differ from one exec to the next)
_TASK = "/run/containerd/io.containerd.runtime.v2.task/k8s.io/{r}"
SERVER_COMMANDS: list[tuple[str, str, str]] = [
    ("/usr/bin/bash", "bash -c /usr/lib/update-notifier/apt-check --human-readable", "/"),
    ("/usr/bin/sh", "sh -c test -x /usr/sbin/anacron || run-parts --report /etc/cron.daily", "/root"),
    ("/usr/bin/git", "git -C /srv/app fetch --quiet origin refs/heads/main", "/srv/app"),
    ("/usr/bin/git", "git rev-parse --verify {r}", "/srv/app"),
    ("/usr/bin/curl", "curl -fsS -m 10 https://api.internal.example.com/v1/health?id={r}", "/"),
    ("/usr/bin/python3.11", "python3 /opt/monitor/check_disk.py --threshold 90 --mount /var", "/opt/monitor"),
    ("/usr/bin/python3.11", "python3 -m pip install --no-cache-dir -r requirements.txt", "/srv/app"),
    ("/usr/bin/mktemp", "mktemp /tmp/tmp.{r}", "/tmp"),
    ("/usr/bin/rm", "rm -f /tmp/tmp.{r}", "/tmp"),
    ("/usr/bin/gzip", "gzip -9 /var/log/nginx/access.log.{r}", "/var/log/nginx"),
    ("/usr/sbin/logrotate", "/usr/sbin/logrotate /etc/logrotate.conf", "/"),
    ("/usr/bin/systemctl", "systemctl is-active --quiet nginx.service", "/"),
    ("/usr/bin/journalctl", "journalctl -u sshd --since -5min -o json", "/root"),
    ("/usr/bin/ssh", "ssh -o BatchMode=yes deploy@10.0.3.17 uptime", "/home/deploy"),
    ("/usr/sbin/sshd", "sshd: deploy [priv]", "/"),
    ("/usr/bin/sudo", "sudo -n /usr/local/bin/rotate-keys --id {r}", "/home/deploy"),
    ("/usr/local/bin/kubectl", "kubectl get pods -n payments -o json --selector app=api", "/root"),
    ("/usr/bin/containerd-shim-runc-v2", "containerd-shim-runc-v2 -namespace k8s.io -id {r} "
     "-address /run/containerd/containerd.sock", _TASK),
    ("/usr/sbin/runc", "runc --root /run/containerd/runc/k8s.io --log " + _TASK + "/log.json "
     "exec --process /tmp/runc-process{r} {r}", _TASK),
    ("/usr/bin/ls", "ls -la /var/lib/docker/overlay2", "/root"),
    ("/usr/bin/grep", "grep -rn --include=*.py TODO src/", "/home/dev/project"),
    ("/usr/bin/find", "find /var/tmp -type f -mtime +7 -delete", "/"),
    ("/usr/bin/tar", "tar -czf /backup/db-{r}.tar.gz /var/lib/postgresql/15/main", "/"),
    ("/usr/lib/postgresql/15/bin/postgres", "postgres: 15/main: app appdb 10.0.3.21(51522) idle",
     "/var/lib/postgresql/15/main"),
    ("/usr/bin/node", "node /srv/web/node_modules/.bin/next build", "/srv/web"),
    ("/usr/bin/make", "make -j2 -C build all", "/home/dev/project"),
    ("/usr/bin/cc", "cc -O2 -Wall -c -o build/obj/{r}.o src/{r}.c", "/home/dev/project"),
    ("/usr/bin/true", "/bin/true", "/home/dev"),
]


def corpus(n_events: int) -> tuple[list[dict[str, Any]], int]:
    """Events (exec and exit, half each) of n_events / 2 children of one shell, with
    this host's command lines, a typical server's (SERVER_COMMANDS) and the pipeline
    benchmark's; and how many distinct command lines (before tokens) were used."""
    rng = random.Random(5)
    cmds = host_commands()
    cmds += [(b, a, c, "/home/dev/project") for b, a, c in COMMANDS]
    for binary, line, cwd in SERVER_COMMANDS:
        cmds.append((binary, line.split(" "), Path(binary).name.encode()[:15], cwd))
    span = (n_events // 2 + 1) * 10_000
    t = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - span - 1_000_000_000
    raws = [_exec(SHELL_PID, 1, t, t - 10**9, "/usr/bin/bash", ["-bash"], "/home/dev", b"bash")]
    for i in range(n_events // 2):
        pid = 100_000 + i % 200_000
        t += 10_000 + (i * 7919) % 5000  # uneven gaps, as real spawns have
        binary, argv, comm, cwd = cmds[rng.randrange(len(cmds))]
        token = f"{rng.getrandbits(48):012x}"
        argv = [a.replace("{r}", token) for a in argv]
        cwd = cwd.replace("{r}", token)
        raws.append(_fork(pid, SHELL_PID, t))
        raws.append(_exec(pid, SHELL_PID, t + 1000, t, binary, argv, cwd, comm))
        raws.append(_exit(pid, SHELL_PID, t + 5000 + i % 977, t, (i % 3) << 8, comm))
    events: list[dict[str, Any]] = []
    _feed(new_cache(), raws, events.extend)
    return events[1:], len(cmds)  # the shell's own exec left out


def log_bytes(broker: KafkaBroker, topic: str) -> int:
    part = broker.data_dir / f"{topic}-0"
    return sum(f.stat().st_size for f in part.glob("*.log"))


def consume_cpu(bootstrap: str, topic: str, start: int, n: int) -> float:
    """CPU seconds of a consumer reading n messages from offset start."""
    cpu0 = time.process_time()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-" + uuid.uuid4().hex,
                         "enable.auto.commit": "false"})
    try:
        consumer.assign([TopicPartition(topic, 0, start)])
        got, deadline = 0, time.monotonic() + 60
        while got < n and time.monotonic() < deadline:
            for m in consumer.consume(1000, timeout=0.5):
                if m.error() is None:
                    got += 1
        if got < n:
            raise RuntimeError(f"read back {got} of {n} messages from {topic}")
    finally:
        consumer.close()
    return time.process_time() - cpu0


def run(broker: KafkaBroker, topic: str, codec: str, fmt: str, records: list[Any],
        batch: int) -> dict[str, float]:
    sink = KafkaSink({"bootstrap": broker.bootstrap, "topic": topic, "format": _SINK_FMT.get(fmt, fmt),
                      "options": {"compression.type": codec}})
    sink.open()
    assert broker.pid is not None
    try:
        sink.write_batch(records[:1])  # connection, metadata, producer id: not timed
        size0, offset0 = log_bytes(broker, topic), sink.delivery.acked
        b0 = proc_cpu_s(broker.pid)
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(0, len(records), batch):
            sink.write_batch(records[i : i + batch])
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        broker_cpu = proc_cpu_s(broker.pid) - b0
        n = sink.delivery.acked - offset0
        assert n == len(records), (n, len(records))
        grown = log_bytes(broker, topic) - size0
    finally:
        sink.close()
    # offsets: the topic holds earlier rounds; this run's messages are the last n
    end = consumer_end(broker.bootstrap, topic)
    ccpu = consume_cpu(broker.bootstrap, topic, end - n, n)
    return {"log_bytes_per_event": grown / n, "producer_cpu_us_per_event": cpu / n * 1e6,
            "events_per_s": n / wall, "broker_cpu_us_per_event": broker_cpu / n * 1e6,
            "consumer_cpu_us_per_event": ccpu / n * 1e6}


def consumer_end(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-" + uuid.uuid4().hex})
    try:
        return int(c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        c.close()


def verdict(table: dict[str, dict[str, Any]]) -> str:
    """One sentence per table: where lz4 stands on bytes and on producer CPU."""
    def med(codec: str, key: str) -> float:
        return float(table[codec][key]["median"])

    by_bytes = sorted(CODECS, key=lambda c: med(c, "log_bytes_per_event"))
    compressing = [c for c in CODECS if c != "none"]
    by_cpu = sorted(compressing, key=lambda c: med(c, "producer_cpu_us_per_event"))
    lz4_b, best_b = med("lz4", "log_bytes_per_event"), med(by_bytes[0], "log_bytes_per_event")
    none_b = med("none", "log_bytes_per_event")
    return (f"smallest on disk: {by_bytes[0]} ({best_b:.0f} B/event); lz4 {lz4_b:.0f} B/event "
            f"({none_b / lz4_b:.2f}x smaller than none, {lz4_b / best_b:.2f}x the smallest); "
            f"producer CPU, cheapest first: "
            + ", ".join(f"{c} {med(c, 'producer_cpu_us_per_event'):.1f}" for c in by_cpu)
            + f" µs/event (none {med('none', 'producer_cpu_us_per_event'):.1f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=30_000, help="events per run, big rounds")
    ap.add_argument("--small-batch-events", type=int, default=5_000,
                    help="events per run when the round size is under 100")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup-rounds", type=int, default=1,
                    help="rounds run first and not counted (the broker JVM's JIT warms up)")
    ap.add_argument("--batch-sizes", default="1000,100,10", help="events per produce round")
    ap.add_argument("--out", type=Path, default=RESULTS / "kafka_compression.json")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]

    events, n_cmds = corpus(max(args.events, args.small_batch_events))
    results: dict[tuple[int, str, str], dict[str, list[float]]] = {}
    value_bytes: dict[str, float] = {}
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kafka-compression-") as d, \
            broker_running(Path(d) / "kafka") as broker:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {BENCH_CORE})  # librdkafka threads made from here inherit it
        try:
            encoded: dict[str, list[Any]] = {}
            for fmt in FORMATS:
                enc = KafkaSink({"bootstrap": broker.bootstrap, "topic": "unused",
                                 "format": _SINK_FMT.get(fmt, fmt)})
                encoded[fmt] = [enc.encode(e) for e in events]
                enc.close()
                value_bytes[fmt] = statistics.fmean(len(r) for r in encoded[fmt])
            topics = {}
            for b in batches:
                for fmt in FORMATS:
                    for codec in CODECS:
                        topics[b, fmt, codec] = f"cmp-{b}-{fmt}-{codec}-{uuid.uuid4().hex[:6]}"
                        create_topic(broker.bootstrap, topics[b, fmt, codec])
            for r in range(-args.warmup_rounds, args.rounds):
                for b in batches:
                    n = args.events if b >= 100 else args.small_batch_events
                    for fmt in FORMATS:
                        for codec in CODECS:
                            res = run(broker, topics[b, fmt, codec], codec, fmt,
                                      encoded[fmt][:n], b)
                            label = "warm-up" if r < 0 else f"round {r + 1}"
                            print(f"{label} batch {b} {fmt} {codec}: "
                                  f"{res['log_bytes_per_event']:.0f} B/event, producer "
                                  f"{res['producer_cpu_us_per_event']:.1f} µs/event, "
                                  f"{res['events_per_s']:,.0f}/s, broker "
                                  f"{res['broker_cpu_us_per_event']:.1f} µs/event", flush=True)
                            if r < 0:
                                continue
                            slot = results.setdefault((b, fmt, codec), {})
                            for k, v in res.items():
                                slot.setdefault(k, []).append(v)
        finally:
            os.sched_setaffinity(0, before)

    tables: dict[str, Any] = {}
    for b in batches:
        for fmt in FORMATS:
            table = {codec: {k: {"median": round(statistics.median(v), 2),
                                 "runs": [round(x, 2) for x in v]}
                             for k, v in results[b, fmt, codec].items()} for codec in CODECS}
            none_b = table["none"]["log_bytes_per_event"]["median"]
            for codec in CODECS:
                table[codec]["ratio_vs_none"] = round(
                    none_b / table[codec]["log_bytes_per_event"]["median"], 2)
            tables[f"batch_{b}/{fmt}"] = {"events_per_run": args.events if b >= 100
                                          else args.small_batch_events,
                                          "verdict": verdict(table), "codecs": table}
    result = {
        "what": "compression.type none/lz4/zstd/snappy/gzip through KafkaSink.write_batch of "
                "pre-encoded real-looking events (this host's command lines), per value format "
                "and produce-round size; medians of rounds that alternate the codecs",
        "bytes_measured": "growth of the broker's partition .log files (on-disk record "
                          "batches, as compressed by the producer; topic compression.type="
                          "producer) ÷ events",
        "command": "bench/kafka_compression.py " + " ".join(sys.argv[1:]),
        "code": code_state(),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "broker": f"Apache Kafka 4.1.1 single node (KRaft), pinned to core {BROKER_CORE}; "
                  f"producer process pinned to core {BENCH_CORE}",
        "producer_settings": {k: v for k, v in PRODUCER_DEFAULTS.items() if k != "client.id"},
        "current_default": PRODUCER_DEFAULTS["compression.type"],
        "corpus": {"events": len(events), "distinct_command_lines": n_cmds,
                   "mean_value_bytes": {k: round(v, 1) for k, v in value_bytes.items()}},
        "rounds": args.rounds,
        "warmup_rounds_not_counted": args.warmup_rounds,
        "results": tables,
        "wall_s": round(time.monotonic() - t_start, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    for key, t in tables.items():
        print(f"{key}: {t['verdict']}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
