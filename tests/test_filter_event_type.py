"""Filter kind `event_type` (collector/filter/event_type.py)."""

from __future__ import annotations

from pathlib import Path

from tests.test_filter_rules import run, run_filtered, types_of


def test_deny_exits_keeps_execs(tmp_path: Path) -> None:
    events, stats, pid = run_filtered(tmp_path, '[[filter.deny]]\nevent_type = "process_exit"\n',
                                      lambda: run(["sh", "-c", "exit 3"]))
    assert types_of(events, pid) == ["process_exec"]
    assert not [e for e in events if e["event_type"] == "process_exit"]
    assert stats["filtered"] >= 1

