"""Event → Kafka message: the value in the configured framing, the key
(exec_id, so a process's exec and exit land in one partition, in order) and
the headers of its event type."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collector import shapes
from collector.export import Event
from collector.schema import EVENT_TYPES
from sinks.kafka.native import native_part

CONTENT_TYPES = {
    "json": "application/json",
    "avro-single-object": "application/vnd.apache.avro.single-object",
    "avro": "application/vnd.confluent.avro",
}
Headers = dict[str, list[tuple[str, str | bytes | None]]]  # event type → message headers


@dataclass(slots=True)
class MessagePy:
    """One message: value, key and event type (which picks its headers).
    len() is its size in bytes, which the core's batch_bytes limit counts.
    The reference of sinks.kafka._produce.Message (C: one is made and sized
    per event), and Message when the package was built without it."""

    value: bytes
    key: bytes
    event_type: str

    def __len__(self) -> int:
        return len(self.value) + len(self.key)


_NATIVE: type[MessagePy] | None = native_part("Message")
NATIVE = _NATIVE is not None  # for tests, the benches and `collector check`
if TYPE_CHECKING:
    Message = MessagePy
else:
    Message = _NATIVE if _NATIVE is not None else MessagePy


class Framing:
    """How values of one record shape (collector.shapes) are written: JSON, Avro
    single-object, or Confluent (once the registry gave the schema's id)."""

    def __init__(self, fmt: str, schema: str = "native") -> None:
        # here, not at import: the CLI imports every sink class for its options,
        # and fastavro's libraries are 8 MiB resident in a collector without Kafka
        from collector.encode import avro

        self._single_object_magic = avro.SINGLE_OBJECT_MAGIC
        self._confluent_magic = avro.CONFLUENT_MAGIC
        self.format = fmt
        self.shape = shapes.get(schema)
        self.schema_id: int | None = None
        self._json = self.shape.json_value_encoder()
        self._datum = self.shape.datum_encoder()
        self._fingerprint = self.shape.fingerprint.hex()
        # one method per format, picked here: no test of the format per event
        self.encode = self._encoder(fmt)  # type: ignore[method-assign,assignment]

    def _encoder(self, fmt: str) -> Callable[[Event], Message]:
        return {"json": self._encode_json, "avro-single-object": self._encode_single,
                "avro": self._encode_confluent}[fmt]

    def encode(self, event: Event) -> Message:  # replaced by the format's own in __init__
        return self._encoder(self.format)(event)

    def _encode_json(self, event: Event) -> Message:
        return Message(self._json(event), event["process"]["exec_id"].encode(),
                       event["event_type"])

    def _encode_single(self, event: Event) -> Message:
        value = self._single_object_magic + self.shape.fingerprint + self._datum(event)
        return Message(value, event["process"]["exec_id"].encode(), event["event_type"])

    def _encode_confluent(self, event: Event) -> Message:
        assert self.schema_id is not None  # open() registered the schema before any event
        value = self._confluent_magic + struct.pack(">I", self.schema_id) + self._datum(event)
        return Message(value, event["process"]["exec_id"].encode(), event["event_type"])

    def headers(self) -> Headers:
        kind = self.format
        identity: list[tuple[str, str | bytes | None]] = []
        if kind == "avro":
            identity = [("schema-id", str(self.schema_id or 0).encode())]
        elif kind == "avro-single-object":
            identity = [("schema-fingerprint", self._fingerprint.encode())]
        base = [("content-type", CONTENT_TYPES[kind].encode()), *identity]
        return {t: [("event-type", t.encode()), *base] for t in EVENT_TYPES}
