"""Filter kind `pid` (collector/filter/pid.py): the process id, host namespace."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.test_filter_rules import run, run_filtered, types_of


def test_allow_one_running_process(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        def spawn() -> int:
            sleeper.kill()
            sleeper.wait()
            return run(["true"])

        events, _, other = run_filtered(tmp_path, f"[[filter.allow]]\npid = {sleeper.pid}\n",
                                        spawn)
    finally:
        sleeper.kill()
        sleeper.wait()
    # found by the start-up scan, then its exit: the only events that pass
    assert [(e["event_type"], e["process"]["flags"]) for e in events] == [
        ("process_exec", ["procfs"]), ("process_exit", ["procfs"])]
    assert {e["process"]["pid"] for e in events} == {sleeper.pid}
    assert types_of(events, other) == []

