"""collector.encode._avro (C, running avro_gen's plan of the schema) against its
reference, the generated Python encoder: the same bytes on every event of
tests/unit/test_encode_avro_fast.py, the same SharedRecord caching, and the
same refusals (Slow, UnicodeEncodeError) on values off the plan; and on a
schema with every construct the generator covers."""

from __future__ import annotations

import collections
import copy
import datetime as dt
from typing import Any

import pytest

from collector.encode import avro, avro_gen
from collector.encode import avro_generated as generated
from collector.encode.avro_varint import Slow
from collector.schema import SharedRecord, raw_schema
from tests.unit.test_encode_avro_fast import EVENTS, _all, make_events

native = avro.native_encoder(raw_schema())


def test_the_package_was_built_with_it_and_the_collector_uses_it() -> None:
    assert native is not None and type(native).__name__ == "Plan"
    assert type(avro._plan()).__name__ == "Plan"


def outcome(encode: Any, value: Any) -> Any:
    try:
        return encode(value)
    except (Slow, UnicodeEncodeError) as exc:
        return type(exc)


def test_the_same_bytes_as_the_generated_encoder() -> None:
    assert native is not None
    taken = 0
    for e in _all():
        got = outcome(native, copy.deepcopy(e))
        assert got == outcome(generated.encode, copy.deepcopy(e)), e
        taken += isinstance(got, bytes)
    assert taken > len(_all()) * 0.8  # most are on the plan; the rest are refused alike


def test_shared_records_keep_the_same_encoding() -> None:
    assert native is not None
    exec_event, exit_event = make_events(1)
    refs = copy.deepcopy([exec_event, exit_event])  # before any encoding is kept
    assert [native(exec_event), native(exit_event)] == [generated.encode(r) for r in refs]
    process = exec_event["process"]
    assert type(process) is SharedRecord and process.avro_datum is not None
    assert process.avro_datum == generated.encode_Process(dict(process))
    # a kept encoding is what is written, as in the generated code
    stale = SharedRecord(process)
    stale.avro_datum = b"kept"
    event = dict(exec_event, process=stale)
    assert native(event) == generated.encode(event)
    assert b"kept" in native(event)


ODD: list[Any] = [
    lambda e: e["process"].__setitem__("pid", True),  # a bool is not an int here
    lambda e: e["process"].__setitem__("pid", 2**63),  # past int64
    lambda e: e["process"].__setitem__("pid", -(2**63) - 1),
    lambda e: e["process"].__setitem__("pid", 2**31),  # an Avro int is 32 bits
    lambda e: e["process"].__setitem__("pid", 1.0),
    lambda e: e.__setitem__("time", dt.datetime(2026, 11, 25, tzinfo=dt.UTC)),
    lambda e: e["process"].__setitem__("args", ("a", "b")),  # a tuple for an array
    lambda e: e["process"].__setitem__("args", ["ok", None]),
    lambda e: e["process"].__setitem__("comm", "bad \udcff surrogate"),
    lambda e: e["process"].__setitem__("comm", b"bytes"),
    lambda e: e.__setitem__("event_type", "process_fork"),  # not a symbol
    lambda e: e.__setitem__("event_type", ["unhashable"]),
    lambda e: e.__setitem__("process", collections.OrderedDict(e["process"])),
    lambda e: e["process"].__setitem__("args_truncated", 0),
    lambda e: e.__setitem__("parent", ("io.processcollector.Process", e["parent"])),
    lambda e: e.pop("node"),  # missing, no default: None for a string
    lambda e: e["process"].pop("flags"),  # missing: its default
]


@pytest.mark.parametrize("change", ODD)
def test_the_same_refusals_off_the_plan(change: Any) -> None:
    assert native is not None
    e = copy.deepcopy(dict(EVENTS[1]))
    e["process"], e["parent"] = dict(e["process"]), dict(e["parent"])
    change(e)
    assert outcome(native, copy.deepcopy(e)) == outcome(generated.encode, copy.deepcopy(e))


EVERY = {
    "type": "record", "name": "Top", "namespace": "t.ns",
    "fields": [
        {"name": "i", "type": "int"},
        {"name": "l", "type": {"type": "long", "logicalType": "timestamp-nanos"}},
        {"name": "s", "type": "string", "default": "dflt"},
        {"name": "b", "type": "boolean"},
        {"name": "n", "type": "null"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b", "c"]}},
        {"name": "again", "type": ["null", "Kind"], "default": None},
        {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "x", "type": ["long", "null"]},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []}]}},
        {"name": "inners", "type": {"type": "array", "items": "t.ns.Inner"}},
        {"name": "maybe", "type": ["null", "Inner"], "default": None},
    ],
}


def test_every_construct_the_generator_covers() -> None:
    fast = avro.native_encoder(EVERY)
    ref = avro.generated_encoder(EVERY)
    assert fast is not None and ref is not None and avro.encoder_for(EVERY) is not None
    inner = {"x": 5, "tags": ["p", "q"]}
    base = {"i": -7, "l": 2**40, "s": "héllo", "b": True, "n": None, "kind": "c", "again": "a",
            "inner": inner, "inners": [inner, {"x": None}], "maybe": None}
    values = [base, dict(base, again=None, maybe={"x": -1, "tags": []}, b=False),
              {k: v for k, v in base.items() if k != "s"}, dict(base, inners=[]),
              dict(base, i=2**31 - 1), dict(base, i=-(2**31)), dict(base, i=2**31),
              dict(base, kind="z"), dict(base, inner={"x": "1"}), dict(base, l=-(2**63))]
    for v in values:
        assert outcome(fast, copy.deepcopy(v)) == outcome(ref, copy.deepcopy(v)), v
    assert isinstance(fast(base), bytes)


def test_a_record_that_holds_itself_has_no_plan() -> None:
    node = {"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"], "default": None}]}
    with pytest.raises(avro_gen.Unsupported, match="holds itself"):
        avro_gen.plan(node)
    assert avro.native_encoder(node) is None
