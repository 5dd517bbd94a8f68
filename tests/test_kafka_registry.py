"""Avro in the Confluent wire format, with the schema auto-registered.

The registry is tests/support/schema_registry.py (its docstring says why no
real one runs here); the broker, the kernel and the collector are real.
Values are decoded independently: the official Apache Avro library, with
the schema fetched from the registry by the id in each message.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
from typing import Any

import avro.errors
import avro.io
import avro.schema
import pytest

from collector.schema import raw_schema
from sinks.schema_registry import SchemaRegistry
from tests.helpers import CollectorProcess, stat_value, wait_for
from tests.kafka_fixtures import Burst, consume_cli, new_topic, no_duplicates, read_topic
from tests.support.kafka_broker import KafkaBroker
from tests.support.schema_registry import SchemaRegistryStandIn
from tests.test_kafka_delivery import as_stdout_json, run_kafka

pytestmark = pytest.mark.kafka

NO_SCAN = {"COLLECTOR_ENRICH_PROCFS_EVENTS": "false"}
REGISTRY_PASSWORD = "registry-pa55word"


def confluent_decoder(registry: SchemaRegistryStandIn) -> Any:
    """Magic 0, big-endian id, Avro binary read with the registry's schema of that id."""
    readers: dict[int, Any] = {}

    def decode(value: bytes) -> tuple[int, dict[str, Any]]:
        assert value[:1] == b"\x00"
        (schema_id,) = struct.unpack(">I", value[1:5])
        if schema_id not in readers:
            with warnings.catch_warnings():  # timestamp-nanos: read as long, per the spec
                warnings.simplefilter("ignore", avro.errors.IgnoredLogicalType)
                readers[schema_id] = avro.io.DatumReader(
                    avro.schema.parse(json.dumps(registry.schema(schema_id))))
        record = readers[schema_id].read(avro.io.BinaryDecoder(io.BytesIO(value[5:])))
        return schema_id, record

    return decode


def test_schema_is_registered_and_every_message_carries_its_id(kafka: KafkaBroker) -> None:
    registry = SchemaRegistryStandIn(user="siem", password=REGISTRY_PASSWORD).start()
    # an unrelated schema first, so the collector's id is not 1 by luck
    url = f"http://siem:{REGISTRY_PASSWORD}@127.0.0.1:{registry.port}"
    assert SchemaRegistry(url).register("other-value", {"type": "string"}) == 1
    topic = new_topic("registry")
    burst = Burst()
    try:
        with run_kafka(kafka, topic, "--schema-registry", url, env=NO_SCAN) as col:
            burst.spawn(50)
            assert col.stop() == 0, col.stderr
        written = stat_value(col.stats_line(), "written", "kafka")
        assert written == stat_value(col.stats_line(), "acked", "kafka") > 0
        assert registry.subjects == {"other-value": [1], f"{topic}-value": [2]}
        assert registry.schema(2) == raw_schema()  # the schema of schemas/, as it is
        assert REGISTRY_PASSWORD not in col.stderr

        msgs = read_topic(kafka.bootstrap, topic, until=lambda m: len(m) >= written,
                          decode=confluent_decoder(registry))
        assert len(msgs) == written
        assert {m.record[0] for m in msgs} == {2}
        records = [m.record[1] for m in msgs]
        burst.assert_exactly_once(records)
        assert no_duplicates(records) == []
        for m, r in zip(msgs, records, strict=True):
            assert m.key == r["process"]["exec_id"].encode()
            assert m.headers == {"event-type": r["event_type"].encode(),
                                 "content-type": b"application/vnd.confluent.avro",
                                 "schema-id": b"2"}
        # what a SIEM sees through the registry: the same events as stdout JSON
        cli = consume_cli(kafka.bootstrap, topic, "--schema-registry", url)
        assert cli == [as_stdout_json(r) for r in records]
        assert ("GET", "/schemas/ids/2") in registry.requests
    finally:
        registry.stop()


def test_registering_again_at_restart_reuses_the_id(kafka: KafkaBroker) -> None:
    registry = SchemaRegistryStandIn().start()
    topic = new_topic("reregister")
    try:
        for _ in range(2):
            with run_kafka(kafka, topic, "--schema-registry", registry.url, env=NO_SCAN) as col:
                Burst().spawn(3)
                assert col.stop() == 0, col.stderr
        assert registry.subjects == {f"{topic}-value": [1]}
        posts = [r for r in registry.requests if r[0] == "POST"]
        assert posts == [("POST", f"/subjects/{topic}-value/versions")] * 2
    finally:
        registry.stop()


def test_registry_down_at_start_events_wait_then_arrive(kafka: KafkaBroker) -> None:
    registry = SchemaRegistryStandIn()  # not started yet: nothing listens on its port
    topic = new_topic("registry-late")
    burst = Burst()
    try:
        with run_kafka(kafka, topic, "--schema-registry", registry.url, env=NO_SCAN) as col:
            wait_for(lambda: "cannot open yet" in col.stderr, timeout=30)
            burst.spawn(20)  # these wait in the sink's queue
            registry.start()
            msgs = read_topic(kafka.bootstrap, topic, timeout=60, decode=confluent_decoder(registry),
                              until=lambda m: burst.complete([x.record[1] for x in m]))
            assert col.stop() == 0, col.stderr
        lines = [s for s in col.stderr_lines if "schema registry" in s]
        assert lines and all(f"schema registry {registry.url} unreachable" in s for s in lines)
        burst.assert_exactly_once([m.record[1] for m in msgs])
        assert stat_value(col.stats_line(), "dropped", "kafka") == 0
    finally:
        registry.stop()


def test_registry_refusing_the_credentials_stops_at_start_in_one_line(kafka: KafkaBroker) -> None:
    registry = SchemaRegistryStandIn(user="siem", password=REGISTRY_PASSWORD).start()
    wrong = "not-the-" + REGISTRY_PASSWORD
    topic = new_topic("registry-auth")
    try:
        with CollectorProcess("--sink", "kafka", "--kafka-bootstrap", kafka.bootstrap,
                              "--kafka-topic", topic, "--schema-registry",
                              f"http://siem:{wrong}@127.0.0.1:{registry.port}") as col:
            assert col.wait(60) == 4
        assert col.stderr_lines == [
            f"collector: schema registry {registry.url}: POST /subjects/{topic}-value/versions "
            "answered 401 Unauthorized"]
        assert wrong not in col.stderr and REGISTRY_PASSWORD not in col.stderr
    finally:
        registry.stop()
