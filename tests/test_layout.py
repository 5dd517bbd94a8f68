"""The Python mirror of bpf/process.h agrees with the compiled object.

Offsets and sizes come from the object's BTF (what the kernel side really
uses), read with bpftool; the sizes of records the kernel actually sends
are checked on real events too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from enum import IntEnum, IntFlag
from typing import Any

import pytest

from collector.probe import layout
from collector.probe.btf import Btf
from collector.probe.core import CoreProbe, object_path
from collector.probe.rodata import settings_layout


def _btf_types() -> dict[str, list[dict[str, Any]]]:
    out = subprocess.run(["bpftool", "btf", "dump", "file", str(object_path()), "-j"],
                         check=True, capture_output=True).stdout
    by_name: dict[str, list[dict[str, Any]]] = {}
    for t in json.loads(out)["types"]:
        by_name.setdefault(t.get("name", ""), []).append(t)
    return by_name


def _named(kind: str, name: str) -> dict[str, Any]:
    found = [t for t in _btf_types().get(name, []) if t["kind"] == kind]
    assert len(found) == 1, f"{kind} {name} is not in the object's BTF (see abi_types)"
    return found[0]


@pytest.mark.parametrize("name", sorted(layout.FIELDS))
def test_struct_offsets_match_btf(name: str) -> None:
    btf = _named("STRUCT", name)
    members = {m["name"]: m["bits_offset"] // 8 for m in btf["members"]}
    mirror = layout.offsets(name)
    if name == "exec_event":
        assert members.pop("data") == layout.EXEC_DATA_OFFSET
        assert btf["size"] == layout.EXEC_DATA_OFFSET + layout.RecordLimits.EXEC_DATA_LEN
    else:
        assert btf["size"] == layout.STRUCT_SIZES[name]
    assert members == mirror


def test_every_shared_type_reaches_btf() -> None:
    """Every struct and enum of bpf/process.h is in the BTF, and so mirrored and checked."""
    header = (object_path().parents[2] / "bpf" / "process.h").read_text()
    structs = set(re.findall(r"^struct (\w+) \{", header, re.M))
    enums = set(re.findall(r"^enum (\w+) \{", header, re.M))
    assert structs == set(layout.FIELDS)
    assert enums == set(ENUMS)
    for name in structs:
        _named("STRUCT", name)


ENUMS: dict[str, tuple[type[IntEnum] | type[IntFlag], str, dict[str, int]]] = {
    "event_kind": (layout.EventKind, "EVENT_", {}),
    "exec_flags": (layout.ExecFlags, "EXEC_", {}),
    "drop_reason": (layout.DropReason, "DROP_", {"DROP_REASONS": len(layout.DropReason)}),
    "record_limits": (layout.RecordLimits, "", {}),
}


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enum_values_match_btf(name: str) -> None:
    mirror, prefix, extra = ENUMS[name]
    btf = {v["name"]: v["val"] for v in _named("ENUM", name)["values"]}
    # __members__: aliases too (ARGS_CAP has EXEC_DATA_HALF's value)
    want = {prefix + k: int(m.value) for k, m in mirror.__members__.items()} | extra
    assert btf == want


def test_comm_length_and_exit_status_offset() -> None:
    ids = _named("STRUCT", "task_ids")
    comm = next(m for m in ids["members"] if m["name"] == "comm")
    arrays = {t["id"]: t for t in _btf_types()["(anon)"] if t["kind"] == "ARRAY"}
    assert arrays[comm["type_id"]]["nr_elems"] == layout.TASK_COMM_LEN
    exit_event = _named("STRUCT", "exit_event")
    status = next(m for m in exit_event["members"] if m["name"] == "exit_status")
    assert status["bits_offset"] // 8 == layout.HEADER.size + layout.TASK_IDS.size
    assert layout.offsets("exit_event")["exit_status"] == 64


def test_settings_are_written_by_btf_offset() -> None:
    """The loader finds every setting in .rodata by name (no packed blob)."""
    with Btf.parse(object_path()) as btf:
        where = settings_layout(btf)
    for field, off in layout.offsets("collector_config").items():
        assert where[f"cfg.{field}"] == (where["cfg"][0] + off, 4)


def test_record_sizes_on_real_events() -> None:
    """Every kind of record, from real processes: /bin/true (exec, exit; its fork
    record is held back and dropped in the kernel, as its exec says it all) and a
    fork that exits without exec'ing (fork record sent at its exit, then the exit)."""
    probe = CoreProbe(ignore_self=False)  # this process spawns the children itself
    probe.start()
    try:
        child = subprocess.Popen(["/bin/true", "layout"])
        child.wait()
        forked = os.fork()
        if forked == 0:
            os._exit(0)
        os.waitpid(forked, 0)
        arrived: dict[int, list[bytes]] = {child.pid: [], forked: []}  # in ring order
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sum(map(len, arrived.values())) < 4:
            for raw in probe.read(50):
                _kind, size, _ = layout.HEADER.unpack_from(raw)
                pid = layout.TASK_IDS.unpack_from(raw, layout.HEADER.size)[0]
                if pid in arrived:
                    assert size == len(raw)
                    arrived[pid].append(raw)
        for raw in probe.read(200):  # anything late: no fork record of /bin/true may come
            pid = layout.TASK_IDS.unpack_from(raw, layout.HEADER.size)[0]
            if pid in arrived:
                arrived[pid].append(raw)
    finally:
        probe.close()

    def kinds(pid: int) -> list[int]:
        return [layout.HEADER.unpack_from(raw)[0] for raw in arrived[pid]]

    assert kinds(child.pid) == [layout.EventKind.EXEC, layout.EventKind.EXIT]
    assert kinds(forked) == [layout.EventKind.FORK, layout.EventKind.EXIT]
    seen = {layout.HEADER.unpack_from(raw)[0]: [raw] for raws in arrived.values() for raw in raws}
    assert len(seen[layout.EventKind.EXIT][0]) == layout.EXIT_EVENT.size
    assert len(seen[layout.EventKind.FORK][0]) == layout.FORK_EVENT.size
    assert len(seen[layout.EventKind.EXEC][0]) > layout.EXEC_DATA_OFFSET
