"""The Python mirror of bpf/process.h agrees with the compiled object.

Offsets and sizes come from the object's BTF (what the kernel side really
uses), read with bpftool; the sizes of records the kernel actually sends
are checked on real events too.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from collector.probe import layout
from collector.probe.core import CoreProbe, object_path


def _btf_structs() -> dict[str, dict[str, object]]:
    out = subprocess.run(["bpftool", "btf", "dump", "file", str(object_path()), "-j"],
                         check=True, capture_output=True).stdout
    return {t["name"]: t for t in json.loads(out)["types"] if t.get("kind") == "STRUCT"}


@pytest.mark.parametrize("name", ["event_header", "task_ids", "exec_event", "collector_config"])
def test_struct_offsets_match_btf(name: str) -> None:
    btf = _btf_structs()[name]
    members = {m["name"]: m["bits_offset"] // 8 for m in btf["members"]}  # type: ignore[index]
    mirror = layout.offsets(name)
    if name == "exec_event":
        assert members.pop("data") == layout.EXEC_DATA_OFFSET
    else:
        assert btf["size"] == layout.STRUCT_SIZES[name]
    assert members == mirror


def test_record_sizes_on_real_events() -> None:
    probe = CoreProbe(ignore_self=False)  # this process spawns the child itself
    probe.start()
    try:
        child = subprocess.Popen(["/bin/true", "layout"])
        child.wait()
        seen: dict[int, list[bytes]] = {}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(seen) < 3:
            for raw in probe.read(50):
                kind, size, _ = layout.HEADER.unpack_from(raw)
                pid = layout.TASK_IDS.unpack_from(raw, layout.HEADER.size)[0]
                if pid == child.pid:
                    assert size == len(raw)
                    seen.setdefault(kind, []).append(raw)
    finally:
        probe.close()
    assert set(seen) == {layout.EventKind.EXEC, layout.EventKind.EXIT, layout.EventKind.FORK}
    assert len(seen[layout.EventKind.EXIT][0]) == layout.EXIT_EVENT.size
    assert len(seen[layout.EventKind.FORK][0]) == layout.FORK_EVENT.size
    assert len(seen[layout.EventKind.EXEC][0]) > layout.EXEC_DATA_OFFSET
