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
from tests.unit.test_encode_avro_fast import DEEP, EVENTS, make_events, variants


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



def test_a_line_holds_its_length_not_orjsons_buffer() -> None:
    """orjson's result keeps its whole output buffer (8 KiB for a 700-byte line,
    64 KiB for 5 KB); a line queued in a batch, or a shared record's cached
    JSON, must not carry that."""
    import tracemalloc

    exec_event, exit_event = make_events(1)
    for e in (exec_event, exit_event, variants()[0]):
        encode_json_line(e)  # the shared records' fragments, made once
        tracemalloc.start()
        try:
            line = encode_json_line(e)
            held, _peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert held < len(line) + 200, (held, len(line))
    frag = exec_event["process"].json_fragment
    tracemalloc.start()
    try:
        _ = exec_event["process"].json_fragment  # already made: no new memory
        shared = SharedRecord(exec_event["process"])
        encode_json_line(dict(exec_event, process=shared))
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frag is not None and shared.json_fragment is not None
    text = orjson.dumps(shared.json_fragment)  # a Fragment's JSON, as it is spliced in
    assert len(text) > 3000  # the 3000-byte argument
    assert held < len(text) + 2048, (held, len(text))  # plus the record's own copy


_BATCHES = """
import resource, sys
sys.path.insert(0, {root!r})
from tests.unit.test_encode_avro_fast import make_events
from collector.encode.json import encode_json_line
# 1000 events with lines of about 1 KB (argv cut short)
events = [dict(e, process=dict(e["process"], args=e["process"]["args"][:3]),
               parent=dict(e["parent"], args=e["parent"]["args"][:1]))
          for e in make_events(500)]
mean = sum(len(encode_json_line(e)) for e in events) / len(events)
assert 500 < mean < 1500, mean
def batches():  # as the worker batches them: up to batch_bytes (1 MiB), then written
    lines, size = [], 0
    for e in events:
        line = encode_json_line(e)
        lines.append(line)
        size += len(line)
        if size >= 1 << 20:
            b"".join(lines)
            lines, size = [], 0
batches()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    batches()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_batches_of_lines_do_not_fault_their_memory_in_again() -> None:
    """With orjson's 8 KiB buffers kept, a batch of 1000 lines took 8 MiB, which
    glibc gave back to the kernel when the batch was freed and faulted in again
    for the next one (about 17,000 page faults per 10 batches here, 1.5 µs an
    event). Exact-size lines stay within glibc's free lists."""
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])  # the checkout
    out = subprocess.run([sys.executable, "-c", _BATCHES.format(root=root)],
                         capture_output=True, text=True, check=True, cwd=root)
    faults = int(out.stdout.split()[-1])
    print(f"minor faults for 10 x 1000 lines: {faults}")
    assert faults < 2000
