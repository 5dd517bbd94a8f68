"""What single calls on the per-event path cost, to rank the levers of issue 15.

- Kafka: Producer.produce() of a 1 KB message into librdkafka's local queue
  (no broker: nothing is sent; the queue is purged after each variant), with
  the sink's headers and a report callback made per message (a partial),
  one callback for all (by keyword and by position, as the sink calls it), no
  callback, and neither headers nor callback.
- stdout: the CPU of one write(2) of a storm-sized poll (155 JSON lines of
  1 KB) into a 1 MiB pipe that `cat` drains, per line.
- The Process record: process_record() called with its 21 values by keyword
  and by position.
- A Kafka JSON value: the JSON line without its newline by slicing (two
  copies) and by the C encoder's value() (one), the sink's whole encode, and
  len() of its messages (the batcher's batch_bytes sizes).
- A Kafka JSON round's Python work per message (encode, len, produce), the C
  Message and produce loop against their Python references.

Variants alternate over --rounds; the best of each goes to
bench/results/per_call_costs.json (ns per call or per line).

Usage: .venv/bin/python bench/per_call_costs.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from confluent_kafka import Producer  # noqa: E402

from collector.enrich.records import process_record  # noqa: E402
from collector.schema import field_names  # noqa: E402

N = 50_000
F_SETPIPE_SZ = 1031


def produce_costs(rounds: int) -> dict[str, float]:
    p = Producer({"bootstrap.servers": "127.0.0.1:1", "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 2_000_000, "delivery.report.only.error": True,
                  "linger.ms": 5, "compression.type": "lz4", "enable.idempotence": True,
                  "acks": "all", "log_level": 0})
    value, key = b"x" * 1000, b"dm06NDg5Njk4NjMyNTI1MjoxNTUxMA"
    headers = [("event-type", b"process_exec"), ("content-type", b"application/json")]

    def report(i: int, err: Any, msg: Any) -> None:
        pass

    def one(err: Any, msg: Any) -> None:
        pass

    variants = {
        "headers_and_a_partial_per_message": lambda i: p.produce(
            "t", value, key, headers=headers, on_delivery=functools.partial(report, i)),
        "headers_and_one_callback": lambda i: p.produce("t", value, key, headers=headers,
                                                        on_delivery=one),
        "headers_and_one_callback_by_position": lambda i: p.produce(
            "t", value, key, -1, one, None, 0, headers),
        "headers_no_callback": lambda i: p.produce("t", value, key, headers=headers),
        "no_headers_no_callback": lambda i: p.produce("t", value, key),
    }
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for i in range(N):
                fn(i)
            ns = (time.perf_counter() - t0) / N * 1e9
            best[name] = min(best.get(name, ns), ns)
            p.purge()
            p.poll(0)
    return best


def pipe_write_cost(rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        r, w = os.pipe()
        fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
        cat = subprocess.Popen(["cat"], stdin=r, stdout=subprocess.DEVNULL)
        os.close(r)
        batch = b"".join([b"x" * 1040 + b"\n"] * 155)
        t0 = time.process_time()
        for _ in range(2000):
            os.write(w, batch)
        cpu = time.process_time() - t0
        os.close(w)
        cat.wait()
        best = min(best, cpu / (2000 * 155) * 1e9)
    return best


def record_costs(rounds: int) -> dict[str, float]:
    names = field_names("Process")
    # call sites written out, as in collector/enrich/process_cache.py (not ** or *)
    space: dict[str, Any] = {"process_record": process_record}
    exec("def by_keyword(v):\n    return process_record("
         + ", ".join(f"{n}=v" for n in names) + ")\n"
         "def by_position(v):\n    return process_record(" + ", ".join("v" for _ in names)
         + ")\n", space)
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name in ("by_keyword", "by_position"):
            call = functools.partial(space[name], 1)
            t0 = time.perf_counter()
            for _ in range(N):
                call()
            ns = (time.perf_counter() - t0) / N * 1e9
            best[name] = min(best.get(name, ns), ns)
    return best


def kafka_value_costs(rounds: int) -> dict[str, float]:
    """A Kafka JSON value: the stdout line cut (two copies) against Encoder.value (one),
    and the sink's whole encode (value, key, Message), on the events of a synthetic
    storm (bench/pipeline_throughput.py: decode + the process cache, as in the reader),
    a poll of 1000 at a time, as the batcher maps them."""
    sys.path.insert(0, str(REPO / "bench"))
    from pipeline_throughput import _feed, new_cache, raw_records

    from collector.encode.json import encode_json_line, encode_json_value
    from collector.pipeline.runner import tune_gc
    from sinks.kafka.message import Framing

    events: list[Any] = []
    _feed(new_cache(), raw_records(20_000), events.extend)
    tune_gc()  # as the collector runs: start-up frozen, gen0 threshold raised
    variants = {"line_cut": lambda e: encode_json_line(e)[:-1], "value": encode_json_value,
                "framing_encode_json": Framing("json").encode}
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            out: list[Any] = []
            for i in range(0, len(events), 1000):
                out.extend(map(fn, events[i : i + 1000]))
            ns = (time.perf_counter() - t0) / len(events) * 1e9
            best[name] = min(best.get(name, ns), ns)
        t0 = time.perf_counter()
        for i in range(0, len(out), 1000):
            sizes = list(map(len, out[i : i + 1000]))  # the last variant's: Messages
        ns = (time.perf_counter() - t0) / len(out) * 1e9
        best["message_len"] = min(best.get("message_len", ns), ns)
        del out, sizes
    return best


def kafka_round_costs(rounds: int) -> dict[str, float]:
    """A Kafka JSON round's per-message Python work, as the sink does it: encode
    (Framing: value, key, Message), len() of each (batch_bytes), then produce() of
    each into librdkafka's queue (no broker; purged after each round), with the C
    Message and produce loop against their Python references (MessagePy,
    produce_all_py), both by position; and the reference loop by keyword, as
    before. Per message, events of a synthetic storm, 1000 a round."""
    sys.path.insert(0, str(REPO / "bench"))
    from pipeline_throughput import _feed, new_cache, raw_records

    from collector.pipeline.encoding import sizes_of
    from collector.pipeline.runner import tune_gc
    from sinks.kafka import message
    from sinks.kafka import producer as kp

    events: list[Any] = []
    _feed(new_cache(), raw_records(20_000), events.extend)
    tune_gc()
    p = Producer({"bootstrap.servers": "127.0.0.1:1", "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 2_000_000, "delivery.report.only.error": True,
                  "linger.ms": 5, "compression.type": "lz4", "enable.idempotence": True,
                  "acks": "all", "log_level": 0})
    headers = message.Framing("json").headers()
    callbacks = [functools.partial(lambda i, e, m: None, i) for i in range(1000)]

    def by_keyword(produce: Any, topic: str, items: Any, start: int, cbs: Any, hdrs: Any,
                   refusals: Any) -> None:
        for i, msg in enumerate(items):
            produce(topic, msg.value, msg.key, headers=hdrs[msg.event_type], on_delivery=cbs[i])

    variants = {"native": (message.Message, kp.produce_all),
                "reference_by_position": (message.MessagePy, kp.produce_all_py),
                "reference_by_keyword": (message.MessagePy, by_keyword)}
    native_message = message.Message
    best: dict[str, float] = {}
    try:
        for r in range(rounds):
            order = list(variants.items())
            for name, (cls, produce_all) in order if r % 2 == 0 else order[::-1]:
                message.Message = cls  # type: ignore[misc]  # what Framing builds
                encode = message.Framing("json").encode
                t0 = time.perf_counter()
                for i in range(0, len(events), 1000):
                    items = list(map(encode, events[i : i + 1000]))
                    sizes_of(items)
                    produce_all(p.produce, "t", items, 0, callbacks, headers, kp.REFUSALS)
                ns = (time.perf_counter() - t0) / len(events) * 1e9
                best[name] = min(best.get(name, ns), ns)
                p.purge()
                p.poll(0)
    finally:
        message.Message = native_message  # type: ignore[misc]
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "per_call_costs.json"))
    args = ap.parse_args()
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "kafka_produce_ns": produce_costs(args.rounds),
           "stdout_pipe_write_ns_per_line": pipe_write_cost(args.rounds),
           "process_record_ns": record_costs(args.rounds),
           "kafka_json_value_ns": kafka_value_costs(max(args.rounds, 5)),
           "kafka_json_round_ns_per_message": kafka_round_costs(max(args.rounds, 5))}
    print(json.dumps(out, indent=2))
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
