"""Filter on the parent's executed file: `parent_binary = "/(ba)?sh$"` (regex, or a list).

An event without a parent record never matches.
"""

from __future__ import annotations

from typing import Any

from collector.filter._types import Event, Predicate
from collector.filter._values import regexes

KEY = "parent_binary"


def build(where: str, value: Any) -> Predicate:
    searches = [r.search for r in regexes(where, value)]

    def match(event: Event) -> bool:
        parent = event["parent"]
        if parent is None:
            return False
        binary = parent["binary"]
        return any(s(binary) for s in searches)

    return match
