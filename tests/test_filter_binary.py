"""Filter kind `binary` (collector/filter/binary.py): a regex searched in the
executed file's absolute path."""

from __future__ import annotations

import os
from pathlib import Path

from collector.filter import binary
from tests.test_filter_rules import SLEEP, TRUE, run, run_filtered, types_of


def test_allow_binary(tmp_path: Path) -> None:
    events, _, (sleep, true) = run_filtered(
        tmp_path, '[[filter.allow]]\nbinary = "/sleep$"\n',
        lambda: (run(["sleep", "0"]), run(["true"])))
    assert types_of(events, sleep) == ["process_exec", "process_exit"]
    assert types_of(events, true) == []
    # the start-up scan's events are filtered too
    assert {e["process"]["binary"] for e in events} <= {SLEEP}


def test_search_anywhere_anchor_to_pin() -> None:
    def ev(path: str) -> dict[str, object]:
        return {"process": {"binary": path}}

    anywhere = binary.build("k", "bin/t")
    pinned = binary.build("k", [f"^{TRUE}$", "^/nope$"])
    assert anywhere(ev(TRUE)) and anywhere(ev("/sbin/tc"))
    assert pinned(ev(TRUE)) and not pinned(ev(TRUE + "x")) and not pinned(ev(os.sep))
