"""ProcessEvent → one JSON line (orjson).

Field names and order come from the record as built against the schema;
the only change is that timestamp fields (found in the schema, not listed
here) become RFC 3339 strings. orjson escapes quotes, newlines and control
characters, and every str is valid UTF-8 already (decode's rule), so a line
is always one valid JSON document.

Speed: a Process record shared by many events (a SharedRecord, e.g. the
parent of every command a shell runs) is rendered once: its JSON text is
kept on it and spliced into each line as an orjson.Fragment. Which fields
are timestamps and which hold records is read from the schema once. The
bytes are the same as json_record + orjson.dumps (tests/test_encode_json_fast.py).

Faster still: collector.encode._jsonline (C, built with the package) writes
the line in one pass for the shapes the process cache builds, and hands
anything else back to the orjson path here, which stays its reference
(tests/unit/test_jsonline_native.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import orjson

from collector.encode.timefmt import rfc3339_ns
from collector.schema import SharedRecord, timestamp_paths

_Fragment = orjson.Fragment


def json_record(event: dict[str, Any]) -> dict[str, Any]:
    """The event with timestamps rendered; the input is not modified."""
    out = dict(event)
    copied: set[str] = set()
    for path in timestamp_paths():
        if len(path) == 1:
            value = out.get(path[0])
            if isinstance(value, int):
                out[path[0]] = rfc3339_ns(value)
            continue
        head, leaf = path[0], path[1]
        inner = out.get(head)
        if isinstance(inner, list):  # an array of records (ancestors)
            out[head] = [{**x, leaf: rfc3339_ns(x[leaf])} if isinstance(x.get(leaf), int) else x
                         for x in inner]
            continue
        if not isinstance(inner, dict) or not isinstance(inner.get(leaf), int):
            continue
        if head not in copied:
            inner = out[head] = dict(inner)
            copied.add(head)
        inner[leaf] = rfc3339_ns(inner[leaf])
    return out


@functools.cache
def _plan() -> tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]] | None:
    """(top-level timestamp fields, (field, its records' timestamp fields) for
    fields holding records), from the schema; None if a timestamp sits deeper
    than json_record looks (then json_record does all the work)."""
    top: list[str] = []
    nested: dict[str, list[str]] = {}
    for path in timestamp_paths():
        if len(path) == 1:
            top.append(path[0])
        elif len(path) == 2:
            nested.setdefault(path[0], []).append(path[1])
        else:
            return None
    return tuple(top), tuple((head, tuple(leaves)) for head, leaves in nested.items())


def _render(record: dict[str, Any], leaves: tuple[str, ...]) -> dict[str, Any]:
    """A record with its timestamp fields rendered (a copy when one is)."""
    out = record
    for leaf in leaves:
        value = out.get(leaf)
        if isinstance(value, int):
            if out is record:
                out = dict(record)
            out[leaf] = rfc3339_ns(value)
    return out


def _fragment(record: Any, leaves: tuple[str, ...]) -> Any:
    """What stands for a record in the line: its cached JSON for a SharedRecord."""
    if type(record) is SharedRecord:
        frag = record.json_fragment
        if frag is None:
            # an exact-size copy: orjson's result keeps its whole output buffer
            # (8 KiB for a 700-byte record), and this one lives as long as the record
            text = record.json_text = memoryview(orjson.dumps(_render(record, leaves))).tobytes()
            frag = record.json_fragment = _Fragment(text)
        return frag
    if isinstance(record, dict):
        return _render(record, leaves)
    return record


_PLAN = _plan()


def json_ready(event: dict[str, Any]) -> dict[str, Any]:
    """What orjson turns into the line: json_record's result, except that shared
    records may be orjson.Fragment (their JSON text); for orjson.dumps only."""
    if _PLAN is None:
        return json_record(event)
    top, nested = _PLAN
    out = event.copy()
    for name in top:
        v = out.get(name)
        if isinstance(v, int):
            out[name] = rfc3339_ns(v)
    for head, leaves in nested:
        v = out.get(head)
        if v is None:
            continue
        if type(v) is list:  # an array of records (ancestors)
            out[head] = [_fragment(x, leaves) if isinstance(x, dict) else x for x in v]
        else:
            out[head] = _fragment(v, leaves)
    return out


def encode_json_line_orjson(event: dict[str, Any]) -> bytes:
    """One event as a newline-terminated JSON line, by orjson. `+ b"\n"`, not
    OPT_APPEND_NEWLINE: the concatenation is an exact-size copy, while orjson's
    own result keeps its whole output buffer (8 KiB for a 700-byte line), and a
    batch holds a thousand lines."""
    return orjson.dumps(json_ready(event)) + b"\n"


def _native_encoder(fallback: Callable[[dict[str, Any]], bytes] | None) -> Any:
    """The C encoder (its line() gives None for what it hands back when fallback
    is None), when the package was built with it."""
    try:
        from collector.encode._jsonline import Encoder
    except ImportError:  # installed without a C compiler: orjson does it all
        return None
    if _PLAN is None:
        return None
    top, nested = _PLAN
    return Encoder(SharedRecord, _Fragment, top, nested, fallback)


# for the tests: None where the C encoder hands the event to the orjson path
_NATIVE = _native_encoder(None)
_NATIVE_LINE: Callable[[dict[str, Any]], bytes | None] | None = (
    _NATIVE.line if _NATIVE is not None else None)
NATIVE = _NATIVE_LINE is not None  # for tests and the benches
_ENCODER = _native_encoder(encode_json_line_orjson)
_LINE = _ENCODER.line if _ENCODER is not None else None

encode_json_line: Callable[[dict[str, Any]], bytes] = (
    _LINE if _LINE is not None else encode_json_line_orjson)
"""One event as a newline-terminated JSON line: by the C encoder, which hands what
it does not write to encode_json_line_orjson (the same bytes either way)."""


def encode_json_value_orjson(event: dict[str, Any]) -> bytes:
    """encode_json_line without its newline, by orjson: a Kafka message's value."""
    return orjson.dumps(json_ready(event))


encode_json_value: Callable[[dict[str, Any]], bytes] = (
    _ENCODER.value if _ENCODER is not None else encode_json_value_orjson)
"""encode_json_line(event)[:-1] in one copy instead of two (a Kafka value)."""
