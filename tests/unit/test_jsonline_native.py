"""The C JSON-line encoder (collector.encode._jsonline) against its reference,
the orjson path (json_record + orjson.dumps): the same bytes for every event,
and None (the orjson path then does the work, and fails as it fails) for
anything outside the shapes it knows."""

from __future__ import annotations

import copy
import datetime as dt
import random
from typing import Any

import orjson
import pytest

from collector.encode import json as jsonline
from collector.encode.json import encode_json_line, encode_json_line_orjson, json_record
from collector.schema import SharedRecord
from tests.unit.test_encode_avro_fast import DEEP, EVENTS, make_events, variants

native = jsonline._NATIVE_LINE


def reference(event: dict[str, Any]) -> bytes:
    return orjson.dumps(json_record(event), option=orjson.OPT_APPEND_NEWLINE)


def handed_back(e: dict[str, Any]) -> None:
    """The C encoder hands e back; encode_json_line gives the orjson path's line, or
    fails as it fails."""
    assert native is not None
    assert native(e) is None
    try:
        want: bytes | type[Exception] = encode_json_line_orjson(e)
    except Exception as exc:
        want = type(exc)
    if isinstance(want, bytes):
        assert encode_json_line(e) == want
    else:
        with pytest.raises(want):
            encode_json_line(e)


def test_the_package_was_built_with_it() -> None:
    """make setup / the wheel build compile it; without it the storm costs more."""
    assert jsonline.NATIVE and native is not None


def _corpus() -> list[dict[str, Any]]:
    return [*make_events(40), *make_events(5, ancestors=2), *EVENTS, *DEEP, *variants()]


def test_every_event_is_the_reference_bytes_cold_and_warm() -> None:
    assert native is not None
    for e in _corpus():
        want = reference(e)
        assert native(e) == want, e
        assert native(e) == want, e  # the shared records' kept text now
        assert encode_json_line(e) == want
        assert encode_json_line_orjson(e) == want


def test_text_kept_on_a_shared_record_is_the_one_both_paths_splice() -> None:
    assert native is not None
    a, b = make_events(1), make_events(1)
    native(a[0])  # C first, then orjson
    assert encode_json_line_orjson(a[1]) == reference(a[1])
    encode_json_line_orjson(b[0])  # orjson first, then C
    assert native(b[1]) == reference(b[1])
    for shared in (a[0]["process"], b[0]["process"]):
        assert type(shared) is SharedRecord
        assert shared.json_text is not None
        assert orjson.dumps(shared.json_fragment) == shared.json_text
        assert orjson.loads(shared.json_text)["exec_id"] == shared["exec_id"]


def test_events_are_not_changed_and_plain_dicts_not_given_text() -> None:
    assert native is not None
    e = copy.deepcopy(EVENTS[1])  # plain dicts
    before = copy.deepcopy(e)
    assert native(e) == reference(e)
    assert e == before and isinstance(e["time"], int)
    assert not hasattr(e["process"], "json_text")


def _hostile(text: str) -> dict[str, Any]:
    e = copy.deepcopy(EVENTS[1])
    e["process"]["args"] = [text, text[::-1]]
    e["process"]["comm"] = text[:16]
    e["node"] = text
    e["signal"] = text
    return e


def test_every_ascii_character_and_utf8_as_orjson_escapes_them() -> None:
    assert native is not None
    every = "".join(chr(i) for i in range(128))
    for text in (every, "café \u2028\u2029 \U0001f600 \x7f", "\\x ff \\\\ \"q\"", "", "é" * 3000):
        e = _hostile(text)
        assert native(e) == reference(e), text


def test_random_text_and_numbers_match_the_reference() -> None:
    assert native is not None
    rng = random.Random(15)
    alphabet = [chr(i) for i in range(0, 0x250)] + ["\u2028", "\U0001f600", "\ufffd", "\\"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        e = _hostile(text)
        e["duration_ns"] = rng.choice([0, 1, -1, 2**63 - 1, -(2**63), 2**64 - 1,
                                       rng.randrange(-(2**63), 2**64)])
        e["process"]["uid"] = rng.randrange(0, 2**32)
        e["time"] = rng.randrange(-(2**63), 2**63)
        assert native(e) == reference(e), e


# int64's first and last are 1677-09-21 and 2262-04-11; 951782400 s is 2000-02-29
@pytest.mark.parametrize("ns", [-(2**63), -(10**9) - 1, -(10**9), -1, 0, 1, 999_999_999, 10**9,
                                1_764_000_000_123_456_789, 951_782_400 * 10**9, 2**63 - 1,
                                True, False])
def test_timestamps_in_range(ns: int) -> None:
    assert native is not None
    e = copy.deepcopy(EVENTS[0])
    e["time"] = ns
    e["process"]["start_time"] = ns
    e["parent"]["start_time"] = ns
    assert native(e) == reference(e)


@pytest.mark.parametrize("ns", [-30610224000 * 10**9 - 1, -(2**63) - 1, 2**63, 253402300800 * 10**9, 2**70])
def test_timestamps_out_of_range_go_to_the_orjson_path(ns: int) -> None:
    assert native is not None
    e = copy.deepcopy(EVENTS[0])
    e["time"] = ns
    handed_back(e)


class Text(str):
    pass


class Mapping(dict):  # type: ignore[type-arg]
    pass


_OUTSIDE = [
    ("float", lambda e: e.update(duration_ns=1.5)),
    ("tuple", lambda e: e["process"].update(args=("a", "b"))),
    ("datetime", lambda e: e.update(time=dt.datetime(2026, 12, 3, tzinfo=dt.UTC))),
    ("str subclass", lambda e: e.update(node=Text("vm"))),
    ("dict subclass", lambda e: e.update(parent=Mapping(e["parent"]))),
    ("nested dict subclass", lambda e: e["process"].update(namespaces=Mapping(mnt=1))),
    ("non-str key", lambda e: e["process"].update({1: "x"})),
    ("deep", lambda e: e["process"].update(namespaces=_deep(40))),
]


def _deep(n: int) -> Any:
    x: Any = 1
    for _ in range(n):
        x = [x]
    return x


@pytest.mark.parametrize("name,change", _OUTSIDE, ids=[n for n, _ in _OUTSIDE])
def test_shapes_outside_it_go_to_the_orjson_path(name: str, change: Any) -> None:
    assert native is not None
    e = copy.deepcopy(EVENTS[1])
    change(e)
    handed_back(e)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, "bad \udc80 surrogate"])
def test_values_orjson_refuses_fail_as_orjson_fails(value: Any) -> None:
    assert native is not None
    e = copy.deepcopy(EVENTS[1])
    e["process"]["args"] = ["ok", value]
    assert native(e) is None
    with pytest.raises(orjson.JSONEncodeError):
        encode_json_line(e)


def test_a_shared_record_that_does_not_fit_keeps_no_text() -> None:
    assert native is not None
    e = make_events(1)[0]
    shared = e["process"]
    assert type(shared) is SharedRecord and shared.json_text is None
    e["process"] = SharedRecord(shared, args=[2**64])
    assert native(e) is None
    assert e["process"].json_text is None and e["process"].json_fragment is None


def _values_corpus() -> list[dict[str, Any]]:
    out = _corpus()
    for ns in (2**63, -(2**63) - 1):  # handed to the orjson path
        e = copy.deepcopy(EVENTS[0])
        e["time"] = ns
        out.append(e)
    for _name, change in _OUTSIDE:
        e = copy.deepcopy(EVENTS[1])
        change(e)
        out.append(e)
    return out


def test_the_kafka_value_is_the_line_without_its_newline() -> None:
    """encode_json_value (Encoder.value, one copy) against line[:-1], written by the C
    encoder and handed to the orjson path alike; and the orjson value likewise."""
    for e in _values_corpus():
        try:
            line = encode_json_line(e)
        except TypeError:  # orjson refuses it (a non-str key): see the next test
            continue
        assert line.endswith(b"\n")
        assert jsonline.encode_json_value(e) == line[:-1], e
        assert jsonline.encode_json_value_orjson(e) == encode_json_line_orjson(e)[:-1]


@pytest.mark.parametrize("value", [2**64, "bad \udc80 surrogate", {1: "x"}])
def test_a_kafka_value_orjson_refuses_fails_as_the_line_fails(value: Any) -> None:
    e = copy.deepcopy(EVENTS[1])
    e["process"]["cwd"] = value
    with pytest.raises(Exception) as line_error:
        encode_json_line(e)
    with pytest.raises(line_error.type):
        jsonline.encode_json_value(e)
