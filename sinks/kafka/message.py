"""Event → Kafka message: the value in the configured framing, the key
(exec_id, so a process's exec and exit land in one partition, in order) and
the headers of its event type."""

from __future__ import annotations

from dataclasses import dataclass

from collector.encode import avro
from collector.encode.json import encode_json_line
from collector.export import Event
from collector.schema import EVENT_TYPES

CONTENT_TYPES = {
    "json": "application/json",
    "avro": "application/vnd.apache.avro.single-object",
    "confluent": "application/vnd.confluent.avro",
}
Headers = dict[str, list[tuple[str, str | bytes | None]]]  # event type → message headers


@dataclass(slots=True)
class Message:
    """One message: value, key and event type (which picks its headers).
    len() is its size in bytes, which the core's batch_bytes limit counts."""

    value: bytes
    key: bytes
    event_type: str

    def __len__(self) -> int:
        return len(self.value) + len(self.key)


class Framing:
    """How values are written: JSON, Avro single-object, or Confluent (once the
    registry gave the schema's id)."""

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        self.schema_id: int | None = None
        self._fingerprint = avro.schema_fingerprint().hex()

    def encode(self, event: Event) -> Message:
        if self.format == "json":
            value = encode_json_line(event)[:-1]  # the stdout line; an exact-size copy
        elif self.schema_id is not None:
            value = avro.confluent(event, self.schema_id)
        else:
            value = avro.single_object(event)
        return Message(value, event["process"]["exec_id"].encode(), event["event_type"])

    def headers(self, registry: bool) -> Headers:
        if registry:
            kind, identity = "confluent", [("schema-id", str(self.schema_id or 0).encode())]
        else:
            kind = self.format
            identity = [("schema-fingerprint", self._fingerprint.encode())]
        base = [("content-type", CONTENT_TYPES[kind].encode()), *identity]
        return {t: [("event-type", t.encode()), *base] for t in EVENT_TYPES}
