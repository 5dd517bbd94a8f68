"""encode_json_line splices cached JSON of shared records: the same bytes as
rendering every event from scratch (json_record + orjson), field order
included, on events made by the real decode + process cache."""

from __future__ import annotations

import copy
import datetime as dt
import pickle
from typing import Any

import orjson

from collector.encode.json import encode_json_line, json_ready, json_record
from collector.schema import SharedRecord
from tests.test_encode_avro_fast import DEEP, EVENTS, make_events, variants


def reference(event: dict[str, Any]) -> bytes:
    return orjson.dumps(json_record(event), option=orjson.OPT_APPEND_NEWLINE)


def test_lines_are_the_reference_bytes_cold_and_warm() -> None:
    events = [*make_events(40), *make_events(5, ancestors=2), *EVENTS, *DEEP, *variants()]
    for e in events:
        assert encode_json_line(e) == reference(e), e
        assert encode_json_line(e) == reference(e), e  # cached fragments now
        line = orjson.loads(encode_json_line(e))
        assert list(line) == list(e)  # schema order, as built
        assert list(line["process"]) == list(e["process"])


def test_hostile_text_and_timestamps() -> None:
    exec_event, exit_event = make_events(1)
    line = orjson.loads(encode_json_line(exec_event))
    assert line["process"]["args"][1:4] == ["café", "bad \\xff\\xfe utf8", "line\nbreak"]
    assert line["process"]["binary"] == "/usr/bin/tr\\xffue"
    assert line["time"].endswith("Z") and len(line["time"]) == 30
    assert line["process"]["start_time"].endswith("Z")
    at_exit = orjson.loads(encode_json_line(exit_event))["process"]
    assert (at_exit["tid"], at_exit["ppid"]) == (exit_event["process"]["pid"] + 1, 1)
    assert {**at_exit, "tid": 0, "ppid": 0} == {**line["process"], "tid": 0, "ppid": 0}


def test_events_are_not_changed_and_plain_dicts_not_cached() -> None:
    exec_event, _ = make_events(1)
    before = copy.deepcopy(exec_event)
    encode_json_line(exec_event)
    assert exec_event == before and isinstance(exec_event["time"], int)
    assert isinstance(exec_event["process"]["start_time"], int)
    plain = dict(exec_event["process"])
    plain["comm"] = "other"
    changed = dict(exec_event, process=plain)
    assert orjson.loads(encode_json_line(changed))["process"]["comm"] == "other"
    assert encode_json_line(changed) == reference(changed)


def test_copies_of_shared_records_are_plain_dicts_without_cached_encodings() -> None:
    exec_event, _ = make_events(1)
    shared = exec_event["process"]
    assert type(shared) is SharedRecord
    encode_json_line(exec_event)
    for c in (copy.copy(shared), copy.deepcopy(shared), pickle.loads(pickle.dumps(shared)),
              dict(shared), shared.copy()):
        assert type(c) is dict and c == shared


def test_values_json_record_keeps_as_they_are() -> None:
    e = copy.deepcopy(EVENTS[0])
    e["time"] = dt.datetime(2026, 11, 25, 18, 21, 49, 123456, tzinfo=dt.UTC)
    e["process"]["start_time"] = "already a string"
    e["parent"] = None
    assert encode_json_line(e) == reference(e)
    assert json_ready(e)["parent"] is None
