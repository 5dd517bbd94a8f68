"""ProcessEvent → one JSON line (orjson).

Field names and order come from the record as built against the schema;
the only change is that timestamp fields (found in the schema, not listed
here) become RFC 3339 strings. orjson escapes quotes, newlines and control
characters, and every str is valid UTF-8 already (decode's rule), so a line
is always one valid JSON document.

Speed: a Process record shared by many events (a SharedRecord, e.g. the
parent of every command a shell runs) is rendered once: its JSON text is
kept on it and spliced into each line as an orjson.Fragment. Which fields
are timestamps and which hold records is read from the schema once, and
json_ready is written out as straight-line code for that plan. The bytes
are the same as json_record + orjson.dumps (tests/test_encode_json_fast.py).
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
            text = memoryview(orjson.dumps(_render(record, leaves))).tobytes()
            frag = record.json_fragment = _Fragment(text)
        return frag
    if isinstance(record, dict):
        return _render(record, leaves)
    return record


def _generated() -> tuple[Any, Any]:
    """json_ready's body written out for this schema's plan: one block per
    timestamp or record field, no loops over the plan at run time."""
    plan = _plan()
    if plan is None:
        return json_record, _slow_line
    top, nested = plan
    lines = ["def json_ready(event):", "    out = event.copy()"]
    for name in top:
        lines += [f"    v = out.get({name!r})",
                  "    if isinstance(v, int):",
                  f"        out[{name!r}] = rfc3339_ns(v)"]
    scope: dict[str, Any] = {"rfc3339_ns": rfc3339_ns, "SharedRecord": SharedRecord,
                             "_fragment": _fragment, "dumps": orjson.dumps, "NL": b"\n"}
    for i, (head, leaves) in enumerate(nested):
        scope[f"leaves{i}"] = leaves
        lines += [f"    v = out.get({head!r})",
                  "    if v is not None:",
                  "        cls = type(v)",
                  "        if cls is SharedRecord:",  # the usual case: a parent rendered long ago
                  "            f = v.json_fragment",
                  f"            out[{head!r}] = f if f is not None else _fragment(v, leaves{i})",
                  "        elif cls is list:",  # an array of records (ancestors)
                  f"            out[{head!r}] = [_fragment(x, leaves{i}) if isinstance(x, dict)"
                  " else x for x in v]",
                  "        else:",
                  f"            out[{head!r}] = _fragment(v, leaves{i})"]
    lines.append("    return out")
    # the same body again, ending in the line itself (a call less per event).
    # `+ NL`, not OPT_APPEND_NEWLINE: the concatenation is an exact-size copy,
    # while orjson's own result keeps its whole output buffer (8 KiB for a
    # 700-byte line, 64 KiB for 5 KB), and a batch holds a thousand lines
    body = lines[1:-1]
    lines += ["def json_line(event):", *body, "    return dumps(out) + NL"]
    exec(compile("\n".join(lines) + "\n", "<json plan from schemas>", "exec"), scope)
    return scope["json_ready"], scope["json_line"]


def _slow_line(event: dict[str, Any]) -> bytes:
    return orjson.dumps(json_record(event)) + b"\n"


_JSON_READY, _JSON_LINE = _generated()

#: json_ready(event): what orjson turns into the line: json_record's result,
#: except that shared records may be orjson.Fragment (their JSON text); for
#: orjson.dumps only.
json_ready: Callable[[dict[str, Any]], dict[str, Any]] = _JSON_READY

#: encode_json_line(event): one event as a newline-terminated JSON line (the
#: generated function itself: no wrapper call per event).
encode_json_line: Callable[[dict[str, Any]], bytes] = _JSON_LINE
