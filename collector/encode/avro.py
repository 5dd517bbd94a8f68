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
instead runs encoder functions generated from the schema on first use (one
per record type: straight-line code per field, varints, length-prefixed
UTF-8, ["null", T] unions decided by `is None`), and keeps the encoding of a
SharedRecord (a Process record shown by many events) on the record itself.
The bytes are the same: Avro's binary encoding has one form per value
(tests/test_encode_avro_fast.py compares it with fastavro's, and the file
sink's blocks with fastavro's Writer). Anything the generated code does not
expect (a datetime, fastavro's tuple notation, a wrong type, a missing
field) is handed to fastavro whole, so its conversions and its errors are
unchanged; a schema construct it does not know (a map, a fixed, a wider
union) makes every datum fastavro's.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from collector.schema import SharedRecord, parsed_schema, raw_schema

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


class _Slow(Exception):
    """A value the plan does not handle: fastavro encodes the whole event."""


class _Unsupported(Exception):
    """A schema construct the plan does not cover: every datum goes to fastavro."""


_INT64 = 1 << 64
# varints of 14-bit groups: _LAST for the final group (1 or 2 bytes), _MORE
# for a group with more to follow (2 bytes, continuation bits set)
_LAST = [bytes([z]) if z < 128 else bytes([(z & 0x7F) | 0x80, z >> 7]) for z in range(1 << 14)]
_MORE = [bytes([(z & 0x7F) | 0x80, (z >> 7) | 0x80]) for z in range(1 << 14)]
_MEMO: dict[int, bytes] = {}  # ids (pid, uid, cgroup) recur; timestamps do not (not kept)
_MEMO_MAX = 1 << 16


def zigzag_varint(n: int) -> bytes:
    """An Avro int/long: zig-zag, then base-128 varint, low group first."""
    if type(n) is not int:
        raise _Slow
    found = _MEMO.get(n)
    if found is not None:
        return found
    z = (n << 1) ^ (n >> 63)
    if z < 16384 and z >= 0:
        return _LAST[z]
    if not 0 <= z < _INT64:
        raise _Slow  # outside int64: let fastavro say so
    keep = z < (1 << 32)
    parts = []
    while z >= 16384:
        parts.append(_MORE[z & 0x3FFF])
        z >>= 14
    parts.append(_LAST[z])
    out = b"".join(parts)
    if keep:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()
        _MEMO[n] = out
    return out


class _Plan:
    """Python source for one encoder function per record of the schema.

    Each function appends the record's fields, in schema order, to a
    bytearray: plain statements, no per-field calls, so an event costs a few
    µs. Generated once from schemas/ (field names, types, defaults)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.consts: dict[str, Any] = {}
        self.records: dict[str, str] = {}  # full name -> function name
        self.enums: dict[str, str] = {}  # full name -> symbol table name
        self.lines: list[str] = []
        self.top = self._record(schema, "")
        self.source = "\n".join(self.lines) + "\n"

    def _const(self, value: Any) -> str:
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    @staticmethod
    def _full(name: str, ns: str) -> str:
        return name if "." in name or not ns else f"{ns}.{name}"

    def _record(self, t: dict[str, Any], ns: str) -> str:
        full = self._full(t["name"], t.get("namespace", ns))
        ns = full.rpartition(".")[0]
        fn = f"_rec{len(self.records)}"
        self.records[full] = fn
        body: list[str] = []
        for i, f in enumerate(t["fields"]):
            var = f"x{i}"
            default = f.get("default")
            dflt = "None" if default is None else self._const(default)
            body.append(f"{var} = get({f['name']!r}, {dflt})")
            body.extend(self._value(f["type"], var, ns, 0))
        self.lines.extend([
            f"def {fn}(v):",
            "    cls = type(v)",
            "    if cls is SharedRecord:",
            "        cached = v.avro_datum",
            "        if cached is not None:",
            "            return cached",
            "    elif cls is not dict:",
            "        raise _Slow",
            "    get = v.get",
            "    out = bytearray()",
            *("    " + line for line in body),
            "    result = bytes(out)",
            "    if cls is SharedRecord:",
            "        v.avro_datum = result",
            "    return result",
            "",
        ])
        return fn

    def _value(self, t: Any, x: str, ns: str, depth: int) -> list[str]:
        """Statements that append the encoding of variable x (of type t) to out."""
        if isinstance(t, str):
            if t == "null":
                return [f"if {x} is not None:", "    raise _Slow"]
            if t == "boolean":
                return [f"if {x} is True:", "    out.append(1)",
                        f"elif {x} is False:", "    out.append(0)",
                        "else:", "    raise _Slow"]
            if t in ("int", "long"):  # bool, datetime, ...: fastavro's conversions
                # an int outside 32 bits is fastavro's to refuse (Avro readers reject it)
                check = ([f"if not -2147483648 <= {x} <= 2147483647:", "    raise _Slow"]
                         if t == "int" else [])
                return [f"if type({x}) is not int:", "    raise _Slow", *check,
                        f"if 0 <= {x} < 64:", f"    out.append({x} << 1)",
                        "else:",  # ids recur: zigzag_varint's memo, looked up here
                        f"    c = _MEMO.get({x})",
                        f"    out += c if c is not None else _varint({x})"]
            if t == "string":
                return [f"if type({x}) is not str:", "    raise _Slow",
                        f"b = {x}.encode()", "n = len(b)",
                        "if n < 64:", "    out.append(n << 1)",
                        "else:", "    out += _varint(n)",
                        "out += b"]
            full = self._full(t, ns) if self._full(t, ns) in self.records or \
                self._full(t, ns) in self.enums else t
            if full in self.records:
                return [f"out += {self.records[full]}({x})"]
            if full in self.enums:
                return self._enum_lookup(self.enums[full], x)
            raise _Unsupported(f"type {t}")
        if isinstance(t, list):
            if len(t) != 2 or "null" not in t:
                raise _Unsupported(f"union {t}")
            null_index = t.index("null")
            other = t[1 - null_index]
            return [f"if {x} is None:", f"    out.append({null_index * 2})",
                    "else:", f"    out.append({(1 - null_index) * 2})",
                    *("    " + line for line in self._value(other, x, ns, depth))]
        if not isinstance(t, dict):
            raise _Unsupported(repr(t))
        kind = t.get("type")
        if kind in ("null", "boolean", "int", "long", "string"):
            logical = t.get("logicalType")
            if logical is not None and not (kind == "long" and logical.startswith("timestamp-")):
                raise _Unsupported(f"logical type {logical}")  # e.g. a decimal, a uuid
            return self._value(kind, x, ns, depth)
        if kind == "enum":
            full = self._full(t["name"], t.get("namespace", ns))
            table = self._const({s: zigzag_varint(i) for i, s in enumerate(t["symbols"])})
            self.enums[full] = table
            return self._enum_lookup(table, x)
        if kind == "array":
            item = f"i{depth}"
            return [f"if type({x}) is not list:", "    raise _Slow",
                    f"if {x}:",
                    f"    out += _varint(len({x}))",
                    f"    for {item} in {x}:",
                    *("        " + line for line in self._value(t["items"], item, ns, depth + 1)),
                    "out.append(0)"]
        if kind == "record":
            fn = self._record(t, ns)
            return [f"out += {fn}({x})"]
        raise _Unsupported(f"type {kind}")

    @staticmethod
    def _enum_lookup(table: str, x: str) -> list[str]:
        return ["try:", f"    out += {table}[{x}]", "except (KeyError, TypeError):",
                "    raise _Slow from None"]


Encoder = Callable[[dict[str, Any]], bytes]


@functools.cache
def _plan() -> Encoder | None:
    return encoder_for(raw_schema())


def encoder_for(schema: dict[str, Any]) -> Encoder | None:
    """The generated encoder of any record schema (e.g. a record shape's, see
    collector.shapes); None if the plan lacks one of its constructs. It raises
    _Slow (or UnicodeEncodeError) for a value it does not expect: callers then
    use fastavro, as `datum` does."""
    try:
        plan = _Plan(schema)
    except _Unsupported:
        return None  # a construct the plan lacks: fastavro encodes everything
    namespace: dict[str, Any] = {"SharedRecord": SharedRecord, "_Slow": _Slow,
                                 "_varint": zigzag_varint, "_MEMO": _MEMO, **plan.consts}
    exec(compile(plan.source, "<avro plan from schemas>", "exec"), namespace)
    encoder: Encoder = namespace[plan.top]
    return encoder


def datum(event: dict[str, Any]) -> bytes:
    """The Avro binary encoding of one event (identical to fastavro's)."""
    encode = _plan()
    if encode is not None:
        try:
            return encode(event)
        except (_Slow, UnicodeEncodeError):
            pass
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
