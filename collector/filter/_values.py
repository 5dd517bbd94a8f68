"""Checking one rule value: the shapes every filter kind accepts.

A rule value is one item or a list of items (any of them may match). Every
complaint is a UsageError naming the rule key exactly as the user wrote it
(`filter.deny[1].binary`) and saying what would have been accepted.
"""

from __future__ import annotations

import re
from typing import Any

from collector.errors import UsageError


def bad(where: str, value: Any, expected: str) -> UsageError:
    shown = f"'{value}'" if isinstance(value, str) else repr(value)
    return UsageError(f"config key {where}: {shown} is not valid; expected {expected}")


def items(where: str, value: Any) -> list[Any]:
    """One value or a non-empty list of them, as a list."""
    if isinstance(value, list):
        if not value:
            raise bad(where, value, "a value or a non-empty list of values")
        return value
    return [value]


def regexes(where: str, value: Any) -> list[re.Pattern[str]]:
    """Regular expressions (Python syntax, searched anywhere: anchor with ^ and $)."""
    out = []
    for v in items(where, value):
        if not isinstance(v, str):
            raise bad(where, v, "a regular expression string or a list of them")
        try:
            out.append(re.compile(v))
        except re.error as exc:
            raise UsageError(f"config key {where}: bad regular expression '{v}': {exc}") from None
    return out


def ids(where: str, value: Any) -> frozenset[int]:
    """Non-negative integers (uids, pids)."""
    out = set()
    for v in items(where, value):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad(where, v, "a non-negative integer or a list of them")
        out.add(v)
    return frozenset(out)
