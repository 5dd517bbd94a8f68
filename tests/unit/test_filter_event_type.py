"""Filter kind `event_type` (collector/filter/event_type.py)."""

from __future__ import annotations

from collector.filter import event_type


def test_values() -> None:
    exits = event_type.build("k", "process_exit")
    both = event_type.build("k", ["process_exec", "process_exit"])
    assert [exits({"event_type": t}) for t in ("process_exec", "process_exit")] == [False, True]
    assert [both({"event_type": t}) for t in ("process_exec", "process_exit")] == [True, True]

