"""The JSON form of a shape's Avro record, derived from its schema.

Avro names are `[A-Za-z_][A-Za-z0-9_]*`, so they cannot hold ECS's `@` or
`.`. The mapping, read from the schema (never listed here):
- a nested record is a nested JSON object: ECS's dotted `process.parent.pid`
  is `{"process": {"parent": {"pid": ...}}}`, which Elasticsearch,
  OpenSearch and ECS itself treat as the same field;
- a field with a `json_name` attribute is written under that name
  (`timestamp` → `@timestamp`);
- the schema's `json_nulls: "omit"` leaves null fields out (OCSF and ECS
  mark absence by absence; the native JSON keeps its nulls);
- timestamps (Avro timestamp-* longs) follow the schema's
  `json_timestamps`: `epoch-millis` keeps the integer (OCSF timestamp_t),
  `rfc3339` renders RFC 3339 UTC with nanoseconds (ECS date).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collector.encode.timefmt import rfc3339_ns

_UNITS = {"timestamp-millis": 1_000_000, "timestamp-micros": 1_000, "timestamp-nanos": 1}


class _Plan:
    """Per named record: (avro name, json name, kind, detail) for each field."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.omit_nulls = schema.get("json_nulls") == "omit"
        self.rfc3339 = schema.get("json_timestamps") == "rfc3339"
        self.records: dict[str, list[tuple[str, str, Any]]] = {}
        self.top = self._type(schema, schema.get("namespace", ""))

    def _type(self, t: Any, ns: str) -> Any:
        """A converter description: ("rec", name) | ("arr", item) | ("ts", unit) | None."""
        if isinstance(t, list):
            branches = [self._type(b, ns) for b in t if b != "null"]
            return branches[0] if len(branches) == 1 else None
        if isinstance(t, str):
            full = t if "." in t else f"{ns}.{t}" if ns else t
            if full in self.records:
                return ("rec", full)
            return None
        if t.get("type") == "record":
            rec_ns = t.get("namespace", ns)
            full = t["name"] if "." in t["name"] else f"{rec_ns}.{t['name']}" if rec_ns else t["name"]
            fields: list[tuple[str, str, Any]] = []
            self.records[full] = fields
            for f in t["fields"]:
                fields.append((f["name"], f.get("json_name", f["name"]), self._type(f["type"], rec_ns)))
            return ("rec", full)
        if t.get("type") == "array":
            item = self._type(t["items"], ns)
            return ("arr", item) if item is not None else None
        logical = t.get("logicalType")
        if logical in _UNITS:
            return ("ts", _UNITS[logical])
        return None

    def convert(self, conv: Any, value: Any) -> Any:
        if value is None or conv is None:
            return value
        kind, detail = conv
        if kind == "rec":
            out: dict[str, Any] = {}
            for name, json_name, sub in self.records[detail]:
                v = value.get(name)
                if v is None and self.omit_nulls:
                    continue
                out[json_name] = self.convert(sub, v)
            return out
        if kind == "arr":
            return [self.convert(detail, x) for x in value]
        # a timestamp: an int in the schema's unit (a datetime is made an int first)
        if not isinstance(value, int):
            value = int(value.timestamp() * 1_000_000) * 1_000 // detail
        return rfc3339_ns(value * detail) if self.rfc3339 else value


def _ts(plan: _Plan, unit: int) -> Callable[[Any], Any]:
    """A timestamp field's converter (an int in the schema's unit, or a datetime)."""
    rfc3339 = plan.rfc3339

    def convert(value: Any) -> Any:
        if not isinstance(value, int):
            value = int(value.timestamp() * 1_000_000) * 1_000 // unit
        return rfc3339_ns(value * unit) if rfc3339 else value

    return convert


def _compile(plan: _Plan) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The plan as straight-line Python, one function per named record (what
    `_Plan.convert` does, without its per-value dispatch: 4-5x faster, and the
    OCSF and ECS JSON lines are built for every event). `_Plan.convert` stays
    the reference the tests compare it with."""
    names = {full: f"r{i}" for i, full in enumerate(plan.records)}
    env: dict[str, Any] = {}

    def expr(conv: Any, var: str) -> str:
        if conv is None:
            return var
        kind, detail = conv
        if kind == "rec":
            return f"{names[detail]}({var})"
        if kind == "arr":
            return f"[None if i is None else {expr(detail, 'i')} for i in {var}]"
        fn = f"ts{detail}"
        env.setdefault(fn, _ts(plan, detail))
        return f"{fn}({var})"

    lines: list[str] = []
    for full, fields in plan.records.items():
        lines += [f"def {names[full]}(v):", "    out = {}", "    get = v.get"]
        for name, json_name, conv in fields:
            lines.append(f"    x = get({name!r})")
            if plan.omit_nulls:
                lines.append(f"    if x is not None: out[{json_name!r}] = {expr(conv, 'x')}")
            elif conv is None:
                lines.append(f"    out[{json_name!r}] = x")
            else:
                lines.append(f"    out[{json_name!r}] = None if x is None else {expr(conv, 'x')}")
        lines.append("    return out")
    exec(compile("\n".join(lines), "<json form from schemas>", "exec"), env)
    top: Callable[[dict[str, Any]], dict[str, Any]] = env[names[plan.top[1]]]
    return top


_COMPILED: dict[int, tuple[dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]]] = {}


def converter(schema: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """record → JSON document for `schema` (compiled once per schema object)."""
    found = _COMPILED.get(id(schema))
    if found is None or found[0] is not schema:  # keyed by id: the entry keeps it alive
        found = _COMPILED[id(schema)] = (schema, _compile(_Plan(schema)))
    return found[1]


def json_form(schema: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of `record` (the Avro form of `schema`)."""
    return converter(schema)(record)


def json_form_reference(schema: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The same by interpreting the plan (slow; what tests hold `json_form` to)."""
    plan = _Plan(schema)
    result: dict[str, Any] = plan.convert(plan.top, record)
    return result
