"""The generated Avro encoder: checked in, current, in use, and its
fallbacks counted.

collector/encode/avro_generated.py is what avro_gen.py makes of schemas/;
this test regenerates it and compares, so a schema change without
`python -m collector.encode.avro_gen > collector/encode/avro_generated.py`
fails here, not silently at 19 µs an event (tests/test_encode_avro_fast.py
checks the bytes against fastavro's)."""

from __future__ import annotations

import collections
import copy
from pathlib import Path

import pytest

from collector.encode import avro, avro_gen
from collector.schema import raw_schema

GENERATED = Path(avro_gen.__file__).with_name("avro_generated.py")


def event() -> dict[str, object]:
    process = {"exec_id": "e1", "parent_exec_id": None, "pid": 7, "tid": 7, "ppid": 1,
               "uid": 0, "euid": 0, "gid": 0, "egid": 0, "auid": None, "user": "root",
               "comm": "true", "binary": "/usr/bin/true", "args": ["true"],
               "args_truncated": False, "cwd": "/", "start_time": 1, "cgroup_id": 1,
               "container_id": None, "namespaces": None, "flags": ["execve"]}
    return {"event_type": "process_exec", "time": 2, "node": "n", "process": process,
            "parent": None, "ancestors": None, "exit_code": None, "signal": None,
            "core_dumped": None, "duration_ns": None}


def test_the_checked_in_module_is_what_the_generator_makes() -> None:
    assert GENERATED.read_text() == avro_gen.generate(), (
        "regenerate: .venv/bin/python -m collector.encode.avro_gen > "
        "collector/encode/avro_generated.py")


def test_the_shipped_schema_takes_the_fast_path() -> None:
    assert avro.fast_path()
    before = avro.fallbacks()
    for _ in range(100):
        assert avro.datum(event()) == avro.slow_datum(event())  # type: ignore[arg-type]
    assert avro.fallbacks() == before  # not one event went to fastavro


def test_an_event_the_generated_code_does_not_take_is_counted() -> None:
    odd = event()
    odd["process"] = collections.OrderedDict(odd["process"])  # type: ignore[arg-type]  # a dict subclass
    before = avro.fallbacks()
    assert avro.datum(odd) == avro.slow_datum(odd)  # type: ignore[arg-type]
    assert avro.fallbacks() == before + 1


def test_a_construct_the_generator_lacks_is_refused_loudly() -> None:
    schema = copy.deepcopy(raw_schema())
    schema["fields"].append({"name": "labels", "type": {"type": "map", "values": "string"},
                             "default": {}})
    with pytest.raises(avro_gen.Unsupported, match="map"):
        avro_gen.generate(schema)


def test_the_generated_code_has_real_names_in_tracebacks() -> None:
    bad = event()
    bad["process"]["pid"] = "not an int"  # type: ignore[index]
    from collector.encode import avro_generated
    from collector.encode.avro_varint import Slow

    with pytest.raises(Slow) as info:
        avro_generated.encode(bad)
    frames = [(f.name, Path(str(f.path)).name) for f in info.traceback]
    assert ("encode_Process", "avro_generated.py") in frames
