"""Filter kind `pid` (collector/filter/pid.py): the process id, host namespace."""

from __future__ import annotations

from collector.filter import pid


def test_values() -> None:
    rule = pid.build("k", [1, 2])
    assert [rule({"process": {"pid": p}}) for p in (1, 2, 3)] == [True, True, False]

