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

Speed: fastavro writes one of our events in about 19 µs, mostly spent
choosing union branches by validating the value against each one. `datum`
instead runs the encoder functions of collector/encode/avro_generated.py,
generated from the schema by avro_gen.py and checked in (readable, in
tracebacks and profiles; a test regenerates and compares it): one per
record type, straight-line code per field, and the encoding of a
SharedRecord (a Process record shown by many events) kept on the record.
The bytes are the same: Avro's binary encoding has one form per value
(tests/test_encode_avro_fast.py compares it with fastavro's, and the file
sink's blocks with fastavro's Writer). Anything the generated code does not
expect (a datetime, fastavro's tuple notation, a wrong type, a missing
field) is handed to fastavro whole, so its conversions and its errors are
unchanged. Every event fastavro encodes is counted (`avro_fallbacks=` on the
stats line): a generated module that does not match the schema (not
regenerated) makes every datum fastavro's, and says so once.
"""

from __future__ import annotations

import functools
import io
import logging
import struct
from collections.abc import Callable
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from collector.encode.avro_gen import schema_id
from collector.encode.avro_varint import Slow, zigzag_varint
from collector.schema import SharedRecord, parsed_schema, raw_schema

log = logging.getLogger("collector.encode")

__all__ = ["CONFLUENT_MAGIC", "SINGLE_OBJECT_MAGIC", "confluent", "datum", "decode_datum",
           "decode_framed", "fallbacks", "fast_path", "generated_encoder", "native_encoder",
           "schema_fingerprint", "single_object", "slow_datum", "zigzag_varint"]

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


def slow_datum(event: dict[str, Any]) -> bytes:
    """fastavro's encoding of one event (the reference, and the fallback)."""
    buf = io.BytesIO()
    schemaless_writer(buf, parsed_schema(), event)
    return buf.getvalue()


Encoder = Callable[[dict[str, Any]], bytes]

try:
    from collector.encode._avro import Plan as _Plan
except ImportError:  # installed without a C compiler
    _Plan = None
NATIVE = _Plan is not None  # for tests, the benches and `collector check`


def native_encoder(schema: dict[str, Any]) -> Encoder | None:
    """collector.encode._avro (C) running avro_gen's plan of the schema: the same
    bytes and the same refusals as the generated code, its reference (which
    encodes when this is None: not built, or a construct avro_gen lacks)."""
    from collector.encode import avro_gen

    if _Plan is None:
        return None
    try:
        tree = avro_gen.plan(schema)
    except avro_gen.Unsupported:
        return None
    encoder: Encoder = _Plan(tree, avro_gen.OPS, SharedRecord, Slow)
    return encoder


@functools.cache
def _plan() -> Encoder | None:
    """The generated encoder (avro_generated.py), if it was generated from the
    schema in use, in C when built (native_encoder); None (fastavro encodes
    every event, counted) otherwise."""
    from collector.encode import avro_generated as generated

    if generated.SCHEMA_ID == schema_id(raw_schema()):
        encoder: Encoder | None = native_encoder(raw_schema())
        return encoder if encoder is not None else generated.encode
    log.warning("avro: collector/encode/avro_generated.py is not for this schema; every "
                "event is encoded by fastavro (slower; counted as avro_fallbacks). "
                "Regenerate it: python -m collector.encode.avro_gen")
    return None


def fast_path() -> bool:
    """Is the generated encoder in use (tests assert it is, for the shipped schema)?"""
    return _plan() is not None


_fallbacks = 0  # events encoded by fastavro instead of the plan (the stats line shows it)


def fallbacks() -> int:
    """How many events the generated encoder handed to fastavro (avro_fallbacks=)."""
    return _fallbacks


def encoder_for(schema: dict[str, Any]) -> Encoder | None:
    """The fast encoder of any record schema (a record shape's, see
    collector.shapes): native_encoder's, else generated_encoder's; None if the
    generator lacks one of its constructs. It raises Slow (or
    UnicodeEncodeError) for a value it does not expect: callers then use
    fastavro, as `datum` does."""
    native = native_encoder(schema)
    if native is not None:
        return native
    return generated_encoder(schema)


def generated_encoder(schema: dict[str, Any]) -> Encoder | None:
    """avro_gen's Python encoder of a record schema (native_encoder's reference),
    compiled from its source; None if the generator lacks one of its constructs."""
    from collector.encode import avro_gen

    try:
        source = avro_gen.generate(schema)
    except avro_gen.Unsupported:
        return None  # a construct the generator lacks: fastavro encodes everything
    namespace: dict[str, Any] = {}
    exec(compile(source, "<avro encoder from schemas>", "exec"), namespace)
    encoder: Encoder = namespace["encode"]
    return encoder


def datum(event: dict[str, Any]) -> bytes:
    """The Avro binary encoding of one event (identical to fastavro's)."""
    global _fallbacks
    encode = _plan()
    if encode is not None:
        try:
            return encode(event)
        except (Slow, UnicodeEncodeError):
            pass
    _fallbacks += 1
    return slow_datum(event)


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
