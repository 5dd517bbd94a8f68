"""ProcessEvent → one JSON line (orjson).

Field names and order come from the record as built against the schema;
the only change is that timestamp fields (found in the schema, not listed
here) become RFC 3339 strings. orjson escapes quotes, newlines and control
characters, and every str is valid UTF-8 already (decode's rule), so a line
is always one valid JSON document.
"""

from __future__ import annotations

from typing import Any

import orjson

from collector.encode.timefmt import rfc3339_ns
from collector.schema import timestamp_paths


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


def encode_json_line(event: dict[str, Any]) -> bytes:
    """One event as a newline-terminated JSON line."""
    return orjson.dumps(json_record(event), option=orjson.OPT_APPEND_NEWLINE)
