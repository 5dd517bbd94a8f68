"""Generate collector/encode/avro_generated.py from schemas/: one encoder
function per record of the schema, straight-line code per field.

    .venv/bin/python -m collector.encode.avro_gen > collector/encode/avro_generated.py

The generated module is checked in, so tracebacks, profilers and readers see
real code with real names (encode_ProcessEvent, encode_Process, ...); a test
(tests/unit/test_encode_avro_generated.py) regenerates it and fails when the
checked-in file differs, and asserts the shipped schema takes the fast path.

Each function appends the record's fields, in schema order, to a bytearray:
plain statements, no per-field calls (varints, length-prefixed UTF-8,
["null", T] unions decided by `is None`), so an event costs a few µs instead
of fastavro's ~19. A SharedRecord keeps its encoding on itself. Anything the
code does not expect (a datetime, a wrong type, a missing field) raises
Slow, and collector.encode.avro hands that event to fastavro (counted). A
schema construct the generator does not know (a map, a fixed, a wider union)
raises Unsupported here: the module cannot be generated, and the test says so.
"""

from __future__ import annotations

import sys
from typing import Any

from fastavro.schema import fingerprint, to_parsing_canonical_form

from collector.encode.avro_varint import zigzag_varint
from collector.schema import SCHEMA_FILE, raw_schema


class Unsupported(Exception):
    """A schema construct the generator does not cover."""


def schema_id(schema: dict[str, Any]) -> str:
    """CRC-64-AVRO of the canonical form: which schema a generated module is for."""
    return str(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


class _Plan:
    """Python source for one encoder function per record of the schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.consts: dict[str, Any] = {}
        self.records: dict[str, str] = {}  # full name -> function name
        self.enums: dict[str, str] = {}  # full name -> symbol table name
        self.functions: list[list[str]] = []
        self.top = self._record(schema, "")

    def _const(self, name: str, value: Any) -> str:
        self.consts[name] = value
        return name

    @staticmethod
    def _full(name: str, ns: str) -> str:
        return name if "." in name or not ns else f"{ns}.{name}"

    def _record(self, t: dict[str, Any], ns: str) -> str:
        full = self._full(t["name"], t.get("namespace", ns))
        ns = full.rpartition(".")[0]
        short = full.rpartition(".")[2]
        fn = f"encode_{short}"
        self.records[full] = fn
        body: list[str] = []
        for f in t["fields"]:
            var = f"f_{f['name']}"
            default = f.get("default")
            dflt = "None" if default is None else \
                self._const(f"{short.upper()}_{f['name'].upper()}_DEFAULT", default)
            body.append(f"{var} = get({f['name']!r}, {dflt})")
            body.extend(self._value(f["type"], var, ns, 0))
        doc = f'    """{short} → Avro binary (fields in schema order)."""'
        self.functions.append([
            f"def {fn}(v: Any) -> bytes:",
            doc,
            "    cls = type(v)",
            "    if cls is SharedRecord:",
            "        cached = v.avro_datum",
            "        if cached is not None:",
            "            return cached  # type: ignore[no-any-return]",
            "    elif cls is not dict:",
            "        raise Slow",
            "    get = v.get",
            "    out = bytearray()",
            *("    " + line for line in body),
            "    result = bytes(out)",
            "    if cls is SharedRecord:",
            "        v.avro_datum = result",
            "    return result",
        ])
        return fn

    def _value(self, t: Any, x: str, ns: str, depth: int) -> list[str]:
        """Statements that append the encoding of variable x (of type t) to out."""
        if isinstance(t, str):
            if t == "null":
                return [f"if {x} is not None:", "    raise Slow"]
            if t == "boolean":
                return [f"if {x} is True:", "    out.append(1)",
                        f"elif {x} is False:", "    out.append(0)",
                        "else:", "    raise Slow"]
            if t in ("int", "long"):  # bool, datetime, ...: fastavro's conversions
                # an int outside 32 bits is fastavro's to refuse (Avro readers reject it)
                check = ([f"if not -2147483648 <= {x} <= 2147483647:", "    raise Slow"]
                         if t == "int" else [])
                return [f"if type({x}) is not int:", "    raise Slow", *check,
                        f"if 0 <= {x} < 64:", f"    out.append({x} << 1)",
                        "else:",  # ids recur: zigzag_varint's memo, looked up here
                        f"    c = MEMO.get({x})",
                        f"    out += c if c is not None else zigzag_varint({x})"]
            if t == "string":
                return [f"if type({x}) is not str:", "    raise Slow",
                        f"b = {x}.encode()", "n = len(b)",
                        "if n < 64:", "    out.append(n << 1)",
                        "else:", "    out += zigzag_varint(n)",
                        "out += b"]
            full = self._full(t, ns) if self._full(t, ns) in self.records or \
                self._full(t, ns) in self.enums else t
            if full in self.records:
                return [f"out += {self.records[full]}({x})"]
            if full in self.enums:
                return self._enum_lookup(self.enums[full], x)
            raise Unsupported(f"type {t}")
        if isinstance(t, list):
            if len(t) != 2 or "null" not in t:
                raise Unsupported(f"union {t}")
            null_index = t.index("null")
            other = t[1 - null_index]
            return [f"if {x} is None:", f"    out.append({null_index * 2})",
                    "else:", f"    out.append({(1 - null_index) * 2})",
                    *("    " + line for line in self._value(other, x, ns, depth))]
        if not isinstance(t, dict):
            raise Unsupported(repr(t))
        kind = t.get("type")
        if kind in ("null", "boolean", "int", "long", "string"):
            logical = t.get("logicalType")
            if logical is not None and not (kind == "long" and logical.startswith("timestamp-")):
                raise Unsupported(f"logical type {logical}")  # e.g. a decimal, a uuid
            return self._value(kind, x, ns, depth)
        if kind == "enum":
            full = self._full(t["name"], t.get("namespace", ns))
            table = self._const(f"{full.rpartition('.')[2].upper()}_SYMBOLS",
                                {s: zigzag_varint(i) for i, s in enumerate(t["symbols"])})
            self.enums[full] = table
            return self._enum_lookup(table, x)
        if kind == "array":
            item = f"item{depth}"
            return [f"if type({x}) is not list:", "    raise Slow",
                    f"if {x}:",
                    f"    out += zigzag_varint(len({x}))",
                    f"    for {item} in {x}:",
                    *("        " + line for line in self._value(t["items"], item, ns, depth + 1)),
                    "out.append(0)"]
        if kind == "record":
            fn = self._record(t, ns)
            return [f"out += {fn}({x})"]
        raise Unsupported(f"type {kind}")

    @staticmethod
    def _enum_lookup(table: str, x: str) -> list[str]:
        return ["try:", f"    out += {table}[{x}]", "except (KeyError, TypeError):",
                "    raise Slow from None"]


# the opcodes of plan()'s nodes, in the order collector.encode._avro numbers them
OPS = ("null", "boolean", "int", "long", "string", "union", "enum", "array", "record")
_OP = {name: i for i, name in enumerate(OPS)}


class _Tree:
    """The same walk as _Plan, making the plan that collector.encode._avro (C)
    runs instead of source: nested (op, ...) tuples; a record is
    (op, ((field, default, node), ...)), an enum (op, {symbol: its varint}),
    a ["null", T] union (op, where null is, T's node). It refuses what _Plan
    refuses, and a record that holds itself (a plan is a tree)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.named: dict[str, tuple[Any, ...]] = {}
        self.building: set[str] = set()
        self.top = self._record(schema, "")

    def _record(self, t: dict[str, Any], ns: str) -> tuple[Any, ...]:
        full = _Plan._full(t["name"], t.get("namespace", ns))
        ns = full.rpartition(".")[0]
        self.building.add(full)
        fields = tuple((f["name"], f.get("default"), self._value(f["type"], ns))
                       for f in t["fields"])
        self.building.discard(full)
        node = (_OP["record"], fields)
        self.named[full] = node
        return node

    def _value(self, t: Any, ns: str) -> tuple[Any, ...]:
        if isinstance(t, str):
            if t in ("null", "boolean", "int", "long", "string"):
                return (_OP[t],)
            full = _Plan._full(t, ns)
            name = full if full in self.named or full in self.building else t
            if name in self.building:
                raise Unsupported(f"record {name} holds itself")
            if name in self.named:
                return self.named[name]
            raise Unsupported(f"type {t}")
        if isinstance(t, list):
            if len(t) != 2 or "null" not in t:
                raise Unsupported(f"union {t}")
            null_index = t.index("null")
            return (_OP["union"], null_index, self._value(t[1 - null_index], ns))
        if not isinstance(t, dict):
            raise Unsupported(repr(t))
        kind = t.get("type")
        if kind in ("null", "boolean", "int", "long", "string"):
            logical = t.get("logicalType")
            if logical is not None and not (kind == "long" and logical.startswith("timestamp-")):
                raise Unsupported(f"logical type {logical}")
            return (_OP[kind],)
        if kind == "enum":
            full = _Plan._full(t["name"], t.get("namespace", ns))
            node = (_OP["enum"], {s: zigzag_varint(i) for i, s in enumerate(t["symbols"])})
            self.named[full] = node
            return node
        if kind == "array":
            return (_OP["array"], self._value(t["items"], ns))
        if kind == "record":
            return self._record(t, ns)
        raise Unsupported(f"type {kind}")


def plan(schema: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """The plan of the schema (default: schemas/) for collector.encode._avro;
    Unsupported for a construct the generator lacks too."""
    return _Tree(raw_schema() if schema is None else schema).top


HEADER = '''"""GENERATED from schemas/{schema_file} by collector/encode/avro_gen.py: do not edit.

Regenerate with
    .venv/bin/python -m collector.encode.avro_gen > collector/encode/avro_generated.py
(tests/unit/test_encode_avro_generated.py fails when this file is not what the
generator makes of the schema). What the code does and why: avro_gen.py.
"""

from __future__ import annotations

from typing import Any

from collector.encode.avro_varint import MEMO, Slow, zigzag_varint
from collector.schema import SharedRecord

#: CRC-64-AVRO of the schema this was generated from (checked before it is used)
SCHEMA_ID = "{schema_id}"
'''


def generate(schema: dict[str, Any] | None = None) -> str:
    """The source of avro_generated.py for the schema (default: schemas/)."""
    schema = raw_schema() if schema is None else schema
    plan = _Plan(schema)
    parts = [HEADER.format(schema_file=SCHEMA_FILE, schema_id=schema_id(schema))]
    for name, value in plan.consts.items():
        parts.append(f"{name}: Any = {value!r}\n")
    for fn in reversed(plan.functions):  # the event first, then the records it holds
        parts.append("\n\n" + "\n".join(fn) + "\n")
    parts.append(f"\n\nencode = {plan.top}\n")
    return "".join(parts)


if __name__ == "__main__":
    sys.stdout.write(generate())
