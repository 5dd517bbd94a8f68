"""Filter kind `uid` (collector/filter/uid.py): the real uid at exec."""

from __future__ import annotations

from pathlib import Path

from tests.test_filter_rules import SLEEP, run, run_filtered, types_of


def test_allow_uid(tmp_path: Path) -> None:
    events, _, (nobody, root) = run_filtered(
        tmp_path, "[[filter.allow]]\nuid = [65534, 54321]\n",
        lambda: (run([SLEEP, "0"], user=65534, group=65534), run([SLEEP, "0"])))
    [ex, exit_] = [e for e in events if e["process"]["pid"] == nobody]
    assert (ex["process"]["uid"], ex["process"]["user"], exit_["process"]["uid"]) == (
        65534, "nobody", 65534)
    assert types_of(events, root) == []
    assert {e["process"]["uid"] for e in events} <= {65534, 54321}

