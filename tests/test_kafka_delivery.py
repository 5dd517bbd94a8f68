"""The Kafka sink end to end: real processes → real kernel → collector → real
broker, read back by an independent Avro decoder and by `collector consume`."""

from __future__ import annotations

import io
import json
import struct
import warnings
from datetime import UTC, datetime
from typing import Any

import avro.errors
import avro.io
import avro.schema
import pytest
from fastavro.schema import to_parsing_canonical_form

from collector.schema import raw_schema
from tests.helpers import CollectorProcess, stat_value
from tests.kafka_fixtures import Burst, consume_cli, new_topic, no_duplicates, read_topic
from tests.support.kafka_broker import KafkaBroker

pytestmark = pytest.mark.kafka

with warnings.catch_warnings():
    # The official library predates timestamp-nanos; per the Avro spec it reads
    # an unknown logical type as its base type (long), which is what we check.
    warnings.simplefilter("ignore", avro.errors.IgnoredLogicalType)
    AVRO_SCHEMA = avro.schema.parse(json.dumps(raw_schema()))


def rabin_fingerprint(data: bytes) -> int:
    """CRC-64-AVRO as the Avro specification defines it (written out here, so the
    header is not checked with the writer's own code)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


FINGERPRINT = struct.pack("<Q", rabin_fingerprint(to_parsing_canonical_form(raw_schema()).encode()))


def decode_single_object(value: bytes) -> dict[str, Any]:
    """The official Apache Avro library on the datum after the 10-byte header."""
    assert value[:2] == b"\xc3\x01"
    assert value[2:10] == FINGERPRINT
    record: dict[str, Any] = avro.io.DatumReader(AVRO_SCHEMA).read(
        avro.io.BinaryDecoder(io.BytesIO(value[10:])))
    return record


def rfc3339(ns: int) -> str:
    sec, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def as_stdout_json(record: dict[str, Any]) -> dict[str, Any]:
    """What the collector's stdout JSON shows for a decoded record."""
    out = dict(record, time=rfc3339(record["time"]))
    out["process"] = dict(record["process"], start_time=rfc3339(record["process"]["start_time"]))
    if record["parent"] is not None:
        out["parent"] = dict(record["parent"], start_time=rfc3339(record["parent"]["start_time"]))
    return out


def run_kafka(broker: KafkaBroker, topic: str, *args: str, env: dict[str, str] | None = None,
              fmt: str = "avro-single-object") -> CollectorProcess:
    """The collector into the topic; in `fmt` (a later --kafka-format in args wins), by
    default the single-object Avro these tests decode with the Apache library."""
    return CollectorProcess("--sink", "kafka", "--kafka-bootstrap", broker.bootstrap,
                            "--kafka-topic", topic, "--kafka-format", fmt, *args,
                            env=env).wait_attached()


def test_burst_arrives_exactly_once_and_decodes_two_ways(kafka: KafkaBroker) -> None:
    topic = new_topic("burst")
    burst = Burst()
    with run_kafka(kafka, topic) as col:
        burst.spawn(300)
        assert col.stop() == 0, col.stderr
    line = col.stats_line()
    written = stat_value(line, "written", "kafka")
    assert stat_value(line, "queued", "kafka") == written
    assert stat_value(line, "acked", "kafka") == written
    assert stat_value(line, "dropped", "kafka") == 0

    msgs = read_topic(kafka.bootstrap, topic, until=lambda m: len(m) >= written,
                      decode=decode_single_object)
    assert len(msgs) == written  # every acknowledged event is on the topic, nothing else
    records = [m.record for m in msgs]
    burst.assert_exactly_once(records)
    assert no_duplicates(records) == []
    for m, r in zip(msgs, records, strict=True):
        assert m.key == r["process"]["exec_id"].encode()
        assert m.headers == {
            "event-type": r["event_type"].encode(),
            "content-type": b"application/vnd.apache.avro.single-object",
            "schema-fingerprint": FINGERPRINT.hex().encode(),
        }

    cli = consume_cli(kafka.bootstrap, topic)
    assert cli == [as_stdout_json(r) for r in records]


def test_json_is_the_default_format_and_is_the_stdout_line(kafka: KafkaBroker) -> None:
    topic = new_topic("json")
    burst = Burst()
    with CollectorProcess("--sink", "kafka", "--kafka-bootstrap", kafka.bootstrap, "--kafka-topic",
                          topic, "--sink", "stdout").wait_attached() as col:  # no --kafka-format
        burst.spawn(20)
        assert col.stop() == 0, col.stderr
    written = stat_value(col.stats_line(), "written", "kafka")
    msgs = read_topic(kafka.bootstrap, topic, until=lambda m: len(m) >= written)
    stdout_lines = [line.rstrip(b"\n") for line in col.stdout_lines]
    assert [m.value for m in msgs] == stdout_lines  # the same bytes, in the same order
    assert {m.headers["content-type"] for m in msgs} == {b"application/json"}
    burst.assert_exactly_once([json.loads(m.value) for m in msgs])
    assert consume_cli(kafka.bootstrap, topic) == [json.loads(v) for v in stdout_lines]


def test_avro_without_a_registry_is_a_usage_error(kafka: KafkaBroker) -> None:
    """--kafka-format avro is the Confluent wire format: it needs the registry's id."""
    with CollectorProcess("--sink", "kafka", "--kafka-bootstrap", kafka.bootstrap,
                          "--kafka-format", "avro") as col:
        assert col.wait(30) == 2
    assert col.stderr_lines == [
        "collector: config key kafka.schema_registry: required with kafka.format = avro (the "
        "Confluent wire format; --schema-registry URL), or use --kafka-format "
        "avro-single-object or json"]


def test_consume_reads_every_format_in_one_topic(kafka: KafkaBroker) -> None:
    topic = new_topic("mixed")
    bursts = {fmt: Burst() for fmt in ("json", "avro-single-object")}
    for fmt, burst in bursts.items():
        with run_kafka(kafka, topic, fmt=fmt, env={"COLLECTOR_ENRICH_PROCFS_EVENTS": "false"}) as col:
            burst.spawn(3)
            assert col.stop() == 0, col.stderr
    cli = consume_cli(kafka.bootstrap, topic)
    for burst in bursts.values():
        burst.assert_exactly_once(cli)
