"""Record shapes: the same event as our native record, as OCSF 1.8.0 Process
Activity, or as an ECS 9.4.0 process event (`--schema native|ocsf|ecs`).

A sink encodes `shape.json_line(event)` or `shape.datum(event)` instead of
the native encoders: the hook is one call on the sink's worker thread, so
the reader, the process cache and the filters only ever see native events.

Each shape is owned by one Avro schema in schemas/ (native:
process_event.avsc, ocsf: ocsf_process_activity.avsc, ecs:
ecs_process.avsc). `to_record` builds the Avro form from a native event;
the JSON form is derived from that record by the schema (see
collector.shapes.jsonform for how Avro names map to JSON names), so the
JSON lines, the Avro files and the Kafka messages of one shape always agree.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from collector.export.options import SHAPE_NAMES
from collector.schema import schema_dir

NAMES = SHAPE_NAMES  # the shapes by name (spelled in collector.export.options)
Event = dict[str, Any]


@dataclass(frozen=True)
class Shape:
    """One record shape: its schema and its encoders."""

    name: str
    schema_file: str
    to_record: Callable[[Event], dict[str, Any]]

    @functools.cached_property
    def raw_schema(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((schema_dir() / self.schema_file).read_text())
        return result

    @functools.cached_property
    def parsed_schema(self) -> dict[str, Any]:
        import fastavro  # only where Avro is written: its libraries are 8 MiB resident

        result = fastavro.parse_schema(self.raw_schema)
        assert isinstance(result, dict)
        return result

    @functools.cached_property
    def fingerprint(self) -> bytes:
        """CRC-64-AVRO of the canonical form, 8 bytes little-endian (single-object)."""
        from fastavro.schema import fingerprint, to_parsing_canonical_form

        return bytes.fromhex(fingerprint(to_parsing_canonical_form(self.raw_schema), "CRC-64-AVRO"))

    def json_encoder(self) -> Callable[[Event], bytes]:
        """event → JSON line; the native one is the fast encoder itself (no extra call)."""
        if self.name == "native":
            from collector.encode.json import encode_json_line

            return encode_json_line
        return self.json_line

    def json_value_encoder(self) -> Callable[[Event], bytes]:
        """event → the JSON line without its newline (a Kafka message's value)."""
        if self.name == "native":
            from collector.encode.json import encode_json_value

            return encode_json_value
        line = self.json_line
        return lambda event: line(event)[:-1]

    def datum_encoder(self) -> Callable[[Event], bytes]:
        """event → Avro datum; the native one is the fast encoder itself."""
        if self.name == "native":
            from collector.encode.avro import datum

            return datum
        return self.datum

    def json_document(self, event: Event) -> dict[str, Any]:
        return self._json_form(self.to_record(event))

    @functools.cached_property
    def _json_form(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """record → JSON document, compiled from this shape's schema (jsonform)."""
        from collector.shapes.jsonform import converter

        return converter(self.raw_schema)

    def json_line(self, event: Event) -> bytes:
        """The JSON line of this shape (newline-terminated)."""
        if self.name == "native":
            from collector.encode.json import encode_json_line

            return encode_json_line(event)
        return orjson.dumps(self.json_document(event)) + b"\n"

    def datum(self, event: Event) -> bytes:
        """The Avro binary datum of this shape."""
        if self.name == "native":
            from collector.encode.avro import datum

            return datum(event)
        record = self.to_record(event)
        fast = self._fast_datum
        if fast is not None:
            from collector.encode.avro_varint import Slow

            try:
                return fast(record)
            except (Slow, UnicodeEncodeError):  # a value the plan does not expect: fastavro's
                pass
        import fastavro

        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.parsed_schema, record)
        return buf.getvalue()

    @functools.cached_property
    def _fast_datum(self) -> Callable[[dict[str, Any]], bytes] | None:
        """collector.encode.avro's generated encoder for this schema (same bytes as
        fastavro's, several times faster)."""
        from collector.encode.avro import encoder_for

        return encoder_for(self.raw_schema)

    def decode_to_json(self, record: dict[str, Any]) -> bytes:
        """A decoded Avro record of this shape → its JSON line (for `collector consume`)."""
        if self.name == "native":
            from collector.encode.json import encode_json_line

            return encode_json_line(record)
        return orjson.dumps(self._json_form(record)) + b"\n"


def _native(event: Event) -> dict[str, Any]:
    return event


@functools.cache
def get(name: str) -> Shape:
    """The shape called `name` (one of NAMES)."""
    if name == "native":
        from collector.schema import SCHEMA_FILE

        return Shape("native", SCHEMA_FILE, _native)
    if name == "ocsf":
        from collector.shapes import ocsf

        return Shape("ocsf", ocsf.SCHEMA_FILE, ocsf.to_record)
    if name == "ecs":
        from collector.shapes import ecs

        return Shape("ecs", ecs.SCHEMA_FILE, ecs.to_record)
    raise ValueError(f"unknown record shape {name!r}; expected one of {', '.join(NAMES)}")


def by_full_name(full_name: str) -> Shape | None:
    """The shape whose schema has this full name (a writer schema from a registry)."""
    for name in NAMES:
        s = get(name).raw_schema
        ns = s.get("namespace")
        if full_name in (s["name"], f"{ns}.{s['name']}" if ns else s["name"]):
            return get(name)
    return None
