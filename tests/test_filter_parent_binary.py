"""Filter kind `parent_binary` (collector/filter/parent_binary.py): a regex
searched in the parent record's binary."""

from __future__ import annotations

from pathlib import Path

from tests.test_filter_rules import TRUE, run, run_filtered, types_of


def test_allow_children_of_bash(tmp_path: Path) -> None:
    def spawn() -> tuple[int, int]:
        return run(["bash", "-c", "/bin/true from-bash; exit 0"]), run([TRUE, "direct"])

    events, _, (bash, direct) = run_filtered(
        tmp_path, '[[filter.allow]]\nparent_binary = "/bash$"\n', spawn)
    from_bash = [e for e in events if e["process"]["args"] == ["/bin/true", "from-bash"]]
    assert [e["event_type"] for e in from_bash] == ["process_exec", "process_exit"]
    assert all(e["process"]["ppid"] == bash for e in from_bash)
    assert types_of(events, bash) == []  # bash's own parent is python
    assert types_of(events, direct) == []

