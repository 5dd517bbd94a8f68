"""Filter kind `container_id` (collector/filter/container_id.py): an id or
prefix, or true/false for in a container / on the host. The container is a
real cgroup named the way docker names them."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.test_enrich_containers import CG2
from tests.test_filter_rules import TRUE, run, run_filtered, types_of


def test_deny_a_container_by_short_id(tmp_path: Path) -> None:
    cid, other = secrets.token_hex(32), secrets.token_hex(32)
    root = CG2 / f"pc-test-{secrets.token_hex(4)}"
    cgroups = [root / f"docker-{cid}.scope", root / f"docker-{other}.scope"]
    root.mkdir()
    for cg in cgroups:
        cg.mkdir()

    def in_cgroup(cg: Path, arg: str) -> int:
        return run(["sh", "-c", f'echo $$ > "{cg}/cgroup.procs" && exec {TRUE} {arg}'])

    try:
        events, _, (denied, kept, host) = run_filtered(
            tmp_path, f'[[filter.deny]]\ncontainer_id = "{cid[:12]}"\n',
            lambda: (in_cgroup(cgroups[0], "a"), in_cgroup(cgroups[1], "b"), run([TRUE, "c"])))
    finally:
        for cg in [*cgroups, root]:
            cg.rmdir()
    # the sh before its exec ran on the host and passes; the image in the container does not
    assert [(e["event_type"], e["process"]["container_id"])
            for e in events if e["process"]["pid"] == denied] == [("process_exec", None)]
    assert [(e["event_type"], e["process"]["container_id"])
            for e in events if e["process"]["pid"] == kept] == [
        ("process_exec", None), ("process_exec", other), ("process_exit", other)]
    assert types_of(events, host) == ["process_exec", "process_exit"]

