"""ProcessEvent → Avro binary, and the framings around it.

- `datum(event)`: the Avro binary encoding of one record (fastavro), the
  body of every framing below;
- `single_object(event)`: Avro single-object encoding (0xC3 0x01, the
  8-byte little-endian CRC-64-AVRO fingerprint of the schema, the datum):
  self-describing enough for a reader that has schemas/ at hand;
- `confluent(event, schema_id)`: the Confluent wire format (magic 0,
  4-byte big-endian registry id, the datum).

The schema is parsed once (collector.schema); records are the same dicts
the JSON encoder writes, timestamps as integer nanoseconds.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from collector.schema import parsed_schema, raw_schema

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


def schema_fingerprint() -> bytes:
    """CRC-64-AVRO (Rabin) fingerprint of the schema's canonical form, 8 bytes LE."""
    # fastavro's hex digest is already the little-endian byte order the spec asks for
    # (re-packing its value with "<Q" reversed it; the Apache reader then rejects it).
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(raw_schema()), "CRC-64-AVRO"))


_FINGERPRINT: bytes | None = None


def _fp() -> bytes:
    global _FINGERPRINT
    if _FINGERPRINT is None:
        _FINGERPRINT = schema_fingerprint()
    return _FINGERPRINT


def datum(event: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, parsed_schema(), event)
    return buf.getvalue()


def single_object(event: dict[str, Any]) -> bytes:
    return SINGLE_OBJECT_MAGIC + _fp() + datum(event)


def confluent(event: dict[str, Any], schema_id: int) -> bytes:
    return CONFLUENT_MAGIC + struct.pack(">I", schema_id) + datum(event)


def decode_datum(body: bytes) -> dict[str, Any]:
    record = schemaless_reader(io.BytesIO(body), parsed_schema(), None)
    if not isinstance(record, dict):
        raise ValueError("an Avro datum that is not a ProcessEvent record")
    return record


def decode_framed(value: bytes) -> dict[str, Any]:
    """Decode a single-object or Confluent-framed message (schema from schemas/)."""
    if value[:2] == SINGLE_OBJECT_MAGIC:
        if value[2:10] != _fp():
            raise ValueError("single-object message with an unknown schema fingerprint "
                             f"{value[2:10].hex()}; this reader has {_fp().hex()}")
        return decode_datum(value[10:])
    if value[:1] == CONFLUENT_MAGIC and len(value) >= 5:
        return decode_datum(value[5:])
    raise ValueError("not an Avro single-object or Confluent-framed message")
