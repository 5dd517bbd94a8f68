"""Filter kind `binary` (collector/filter/binary.py): a regex searched in the
executed file's absolute path."""

from __future__ import annotations

from pathlib import Path

from tests.test_filter_rules import SLEEP, run, run_filtered, types_of


def test_allow_binary(tmp_path: Path) -> None:
    events, _, (sleep, true) = run_filtered(
        tmp_path, '[[filter.allow]]\nbinary = "/sleep$"\n',
        lambda: (run(["sleep", "0"]), run(["true"])))
    assert types_of(events, sleep) == ["process_exec", "process_exit"]
    assert types_of(events, true) == []
    # the start-up scan's events are filtered too
    assert {e["process"]["binary"] for e in events} <= {SLEEP}

