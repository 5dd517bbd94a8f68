"""`collector consume`: read a topic and print what a SIEM would see.

Each message is decoded by its first bytes, so one command reads any of
the collector's formats, even mixed in one topic:
- 0xC3 0x01: Avro single-object encoding; the 8-byte fingerprint must be
  that of schemas/ (otherwise the message names a schema we do not have);
- 0x00: the Confluent wire format; the 4-byte id is looked up in the
  Schema Registry when --schema-registry is given (the writer's schema,
  resolved against ours), else the body is read with schemas/;
- '{': a JSON document, printed as it is.
Output: one JSON line per event, the same shape as `collector run`'s
stdout JSON (timestamps as RFC 3339).

Partitions are assigned directly (no consumer group to join, nothing
committed): the tool only looks, it never moves anybody's offsets. With
--group NAME it is one member of a consumer group instead, as a SIEM's
readers are: the group shares the partitions out, each member prints only
its own, and offsets are committed, so several `collector consume --group`
processes together print every event once. An offset is stored only after
its line was written, and stored offsets are committed when partitions are
taken away in a rebalance and at exit: a partition that moves goes on where
the last member stopped (at-least-once if a member is killed).
"""

from __future__ import annotations

import io
import logging
import signal
import struct
import sys
import threading
import time
import uuid
from typing import Any, BinaryIO

import fastavro
import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from collector import shapes
from collector.encode import avro
from collector.encode.json import encode_json_line
from collector.errors import UsageError
from sinks.kafka.options import RESERVED_OPTIONS, redact, secret_values
from sinks.kafka.producer import LibrdkafkaLogger
from sinks.schema_registry import SchemaRegistry

log = logging.getLogger("collector.consume")


class Decoder:
    """Message value → one JSON line (bytes, newline-terminated)."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry
        self._writers: dict[int, Any] = {}

    def __call__(self, value: bytes) -> bytes:
        if value[:2] == avro.SINGLE_OBJECT_MAGIC:
            for name in shapes.NAMES:  # the fingerprint says which record shape it is
                shape = shapes.get(name)
                if value[2:10] == shape.fingerprint:
                    record = fastavro.schemaless_reader(io.BytesIO(value[10:]),
                                                        shape.parsed_schema, None)
                    return shape.decode_to_json(record)  # type: ignore[arg-type]
            return encode_json_line(avro.decode_framed(value))  # its error names the fingerprint
        if value[:1] == avro.CONFLUENT_MAGIC and len(value) >= 5:
            (schema_id,) = struct.unpack(">I", value[1:5])
            if self.registry is None:
                return encode_json_line(avro.decode_datum(value[5:]))
            writer, shape = self._writer(schema_id)
            record = fastavro.schemaless_reader(io.BytesIO(value[5:]), writer,
                                                shape.parsed_schema)
            return shape.decode_to_json(record)  # type: ignore[arg-type]
        text = value.strip()
        if text[:1] == b"{":
            orjson.loads(text)  # it must be one valid JSON document
            return text + b"\n"
        raise ValueError(f"neither JSON nor Avro (first bytes {value[:4].hex()})")

    def _writer(self, schema_id: int) -> tuple[Any, shapes.Shape]:
        """The writer's schema of this id, and our shape of the same name (its reader)."""
        if schema_id not in self._writers:
            assert self.registry is not None
            raw = self.registry.schema_by_id(schema_id)
            ns = raw.get("namespace")
            full = f"{ns}.{raw['name']}" if ns and "." not in raw["name"] else raw["name"]
            shape = shapes.by_full_name(full)
            if shape is None:
                raise ValueError(f"schema id {schema_id} is {full}, none of the collector's "
                                 "record shapes")
            self._writers[schema_id] = (fastavro.parse_schema(raw), shape)
        result: tuple[Any, shapes.Shape] = self._writers[schema_id]
        return result


def consume(*, bootstrap: str, topic: str, options: dict[str, str], schema_registry: str | None,
            from_beginning: bool, max_events: int | None, idle_timeout: float | None,
            out: BinaryIO | None = None, group: str | None = None) -> int:
    """Print the topic's events as JSON lines; the exit code for the CLI."""
    stream = out if out is not None else sys.stdout.buffer
    for key in options:
        if key in RESERVED_OPTIONS and key != "on_delivery":
            raise UsageError(f"--kafka-option {key}: not allowed here; {RESERVED_OPTIONS[key]}")
    conf: dict[str, Any] = {
        "group.id": group or f"collector-consume-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": "true" if group else "false",
        "enable.auto.offset.store": "false",
        **({"auto.offset.reset": "earliest" if from_beginning else "latest"} if group else {}),
        **options,
        "bootstrap.servers": bootstrap,
    }
    secrets = secret_values(conf)
    errors: list[str] = []
    conf["error_cb"] = lambda e: errors.append(redact(e.str(), secrets))
    conf["logger"] = LibrdkafkaLogger(secrets)
    try:
        consumer = Consumer(conf)
    except (KafkaException, ValueError, TypeError) as exc:
        arg = exc.args[0] if exc.args else exc
        text = arg.str() if isinstance(arg, KafkaError) else str(arg)
        raise UsageError(f"--kafka-option: {redact(text, secrets)}") from None
    decode = Decoder(SchemaRegistry(schema_registry) if schema_registry else None)
    previous = _stop_on_signals()
    try:
        partitions = _wait_for_topic(consumer, topic, idle_timeout, errors)
        if partitions is None:
            return 1
        if group:
            _join(consumer, topic, group)
        else:
            start = OFFSET_BEGINNING if from_beginning else OFFSET_END
            consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        return _loop(consumer, decode, stream, max_events, idle_timeout, store=bool(group))
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_for_topic(consumer: Consumer, topic: str, idle_timeout: float | None,
                    errors: list[str]) -> list[int] | None:
    """The topic's partition ids, once it exists (waiting up to idle_timeout)."""
    deadline = time.monotonic() + (idle_timeout if idle_timeout is not None else 10.0)
    said = False
    while True:
        try:
            meta = consumer.list_topics(topic, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
            t = meta.topics.get(topic)
            if t is not None and t.error is None and t.partitions:
                return sorted(t.partitions)
            why = f"topic {topic} does not exist"
        except KafkaException as exc:
            why = f"broker not reachable: {errors[-1] if errors else exc.args[0].str()}"
        if time.monotonic() >= deadline:
            print(f"collector consume: {why}", file=sys.stderr, flush=True)
            return None
        if not said and idle_timeout is None:
            print(f"collector consume: {why}; waiting", file=sys.stderr, flush=True)
            said = True
        time.sleep(0.5)


_stopping = threading.Event()


def _stop_on_signals() -> dict[int, Any]:
    """SIGINT/SIGTERM end the loop after the current batch, so the consumer is
    closed (a group member commits and leaves at once). A KeyboardInterrupt raised
    inside librdkafka's consume() instead surfaces as a SystemError traceback.
    Returns the handlers to put back."""
    _stopping.clear()
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda _s, _f: _stopping.set())
    return previous


def _join(consumer: Consumer, topic: str, group: str) -> None:
    """Subscribe as a group member; say on stderr which partitions are ours."""

    def on_assign(_c: Consumer, parts: list[TopicPartition]) -> None:
        ids = ",".join(str(p.partition) for p in sorted(parts, key=lambda p: p.partition))
        print(f"collector consume: group {group}: assigned partitions {ids or 'none'} of {topic}",
              file=sys.stderr, flush=True)

    def on_revoke(c: Consumer, _parts: list[TopicPartition]) -> None:
        try:  # what we printed is done: the next owner starts after it
            c.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                print(f"collector consume: commit at rebalance failed: {exc.args[0].str()}",
                      file=sys.stderr, flush=True)

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)


def _loop(consumer: Consumer, decode: Decoder, stream: BinaryIO, max_events: int | None,
          idle_timeout: float | None, store: bool = False) -> int:
    count = bad = 0
    last = time.monotonic()
    while (max_events is None or count < max_events) and not _stopping.is_set():
        want = 500 if max_events is None else min(500, max_events - count)
        msgs = consumer.consume(num_messages=want, timeout=0.2)
        lines: list[bytes] = []
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    print(f"collector consume: {err.str()}", file=sys.stderr, flush=True)
                continue
            value = msg.value()
            try:
                if value is None:
                    raise ValueError("no value (tombstone)")
                lines.append(decode(value))
                count += 1
            except Exception as exc:
                bad += 1
                print(f"collector consume: partition {msg.partition()} offset {msg.offset()}: "
                      f"cannot decode: {exc}", file=sys.stderr, flush=True)
        if lines:
            stream.write(b"".join(lines))
            stream.flush()
        if store and msgs:  # printed: may be committed
            ends: dict[tuple[str, int], int] = {}
            for m in msgs:
                t, p, o = m.topic(), m.partition(), m.offset()
                if m.error() is None and t is not None and p is not None and o is not None:
                    ends[(t, p)] = o + 1
            if ends:
                consumer.store_offsets(offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()])
        if msgs:
            last = time.monotonic()
        elif idle_timeout is not None and time.monotonic() - last >= idle_timeout:
            break
    if bad:
        print(f"collector consume: {bad} message(s) could not be decoded", file=sys.stderr,
              flush=True)
        return 1
    return 0
