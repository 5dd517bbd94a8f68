"""The Avro schemas in schemas/: loaded and parsed once, shared by every encoder.

schemas/*.avsc is the single definition of the event fields. The encoders
derive what they need from it (field order, which fields are timestamps)
instead of restating field names.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA_FILE = "process_event.avsc"


def schema_dir() -> Path:
    """schemas/ in a source checkout, or the copy installed as package data."""
    installed = Path(str(resources.files("collector").joinpath("schemas")))
    if (installed / SCHEMA_FILE).exists():
        return installed
    return Path(__file__).resolve().parent.parent / "schemas"


@functools.cache
def raw_schema() -> dict[str, Any]:
    """The native ProcessEvent schema as JSON (what `collector schemas` prints by
    default; --schema ocsf|ecs prints collector.shapes' own)."""
    result: dict[str, Any] = json.loads((schema_dir() / SCHEMA_FILE).read_text())
    return result


@functools.cache
def parsed_schema() -> dict[str, Any]:
    """fastavro's parsed form, for writers and validation."""
    import fastavro  # here: 8 MiB of resident libraries a JSON-only collector never uses

    result = fastavro.parse_schema(raw_schema())
    assert isinstance(result, dict)
    return result


def _is_timestamp(t: Any) -> bool:
    return isinstance(t, dict) and t.get("logicalType", "").startswith("timestamp-")


def _record_of(t: Any, named: dict[str, Any]) -> dict[str, Any] | None:
    """The record schema behind a field type (direct, named, or in a union)."""
    if isinstance(t, list):
        for branch in t:
            found = _record_of(branch, named)
            if found:
                return found
        return None
    if isinstance(t, str):
        return named.get(t)
    if isinstance(t, dict) and t.get("type") == "record":
        named[t["name"]] = t
        return t
    if isinstance(t, dict) and t.get("type") == "array":  # e.g. ancestors: each item
        return _record_of(t["items"], named)
    return None


@functools.cache
def timestamp_paths() -> tuple[tuple[str, ...], ...]:
    """Paths (field names, outermost first) of every timestamp field.

    E.g. ("time",), ("process", "start_time"), ("parent", "start_time").
    JSON output renders these as RFC 3339 strings.
    """
    named: dict[str, Any] = {}
    out: list[tuple[str, ...]] = []

    def walk(record: dict[str, Any], prefix: tuple[str, ...], depth: int) -> None:
        for f in record["fields"]:
            path = (*prefix, f["name"])
            if _is_timestamp(f["type"]):
                out.append(path)
                continue
            sub = _record_of(f["type"], named)
            if sub is not None and depth < 4:
                walk(sub, path, depth + 1)

    walk(raw_schema(), (), 0)
    return tuple(out)


def field_names(record_name: str = "ProcessEvent") -> tuple[str, ...]:
    """Field names of a record in schema order."""
    named: dict[str, Any] = {}
    _record_of(raw_schema(), named)

    def collect(t: Any) -> None:
        if isinstance(t, list):
            for b in t:
                collect(b)
        elif isinstance(t, dict):
            if t.get("type") == "record":
                named[t["name"]] = t
                for f in t["fields"]:
                    collect(f["type"])
            elif t.get("type") == "array":
                collect(t["items"])

    collect(raw_schema())
    return tuple(f["name"] for f in named[record_name]["fields"])


class SharedRecord(dict):  # type: ignore[type-arg]
    """A record that is built once and never changed afterwards (the process
    cache's Process records, shared by every event that shows them).

    Encoders may keep their encoding of it on the object (the attributes
    below, None until an encoder sets them), so a parent shown by a thousand
    events is rendered once. A changed copy must be a new object:
    `dict(record)` makes a plain dict, which encoders never cache. (Class
    defaults rather than __slots__: an unset slot can only be detected by
    catching AttributeError, which costs more than the instance dict.)"""

    json_fragment: Any = None  # set by collector.encode.json (an orjson.Fragment)
    json_text: bytes | None = None  # the same JSON text (collector.encode._jsonline reads it)
    avro_datum: bytes | None = None  # set by collector.encode.avro

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        # copy.copy, copy.deepcopy and pickle give a plain dict: a copy may be
        # changed, so it must not carry (or be given) this record's encodings
        return (dict, (dict(self),))


@functools.cache
def enum_symbols(enum_name: str) -> tuple[str, ...]:
    """Symbols of an enum of the schema, e.g. EventType → ("process_exec", "process_exit")."""
    found: list[tuple[str, ...]] = []

    def walk(t: Any) -> None:
        if isinstance(t, list):
            for b in t:
                walk(b)
        elif isinstance(t, dict):
            if t.get("type") == "enum" and t.get("name") == enum_name:
                found.append(tuple(t["symbols"]))
            for f in t.get("fields", ()):
                walk(f["type"])
            if t.get("type") == "array":
                walk(t["items"])

    walk(raw_schema())
    if not found:
        raise KeyError(f"schemas/{SCHEMA_FILE} has no enum {enum_name}")
    return found[0]


#: the event types, from the schema's EventType enum (the one owner of the names)
EVENT_TYPES: tuple[str, ...] = enum_symbols("EventType")
PROCESS_EXEC, PROCESS_EXIT = EVENT_TYPES
