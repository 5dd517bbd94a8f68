"""Filter kind `parent_binary` (collector/filter/parent_binary.py): a regex
searched in the parent record's binary."""

from __future__ import annotations

from collector.filter import parent_binary


def test_no_parent_never_matches() -> None:
    rule = parent_binary.build("k", ".*")
    assert not rule({"parent": None})
    assert rule({"parent": {"binary": ""}})

