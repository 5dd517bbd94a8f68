"""Filter on the executed file: `binary = "^/usr/bin/(curl|wget)$"` (regex, or a list)."""

from __future__ import annotations

from typing import Any

from collector.filter._types import Event, Predicate
from collector.filter._values import regexes

KEY = "binary"


def build(where: str, value: Any) -> Predicate:
    searches = [r.search for r in regexes(where, value)]

    def match(event: Event) -> bool:
        binary = event["process"]["binary"]
        return any(s(binary) for s in searches)

    return match
