"""Filter on the real user id at exec: `uid = 0` (or a list)."""

from __future__ import annotations

from typing import Any

from collector.filter._types import Event, Predicate
from collector.filter._values import ids

KEY = "uid"


def build(where: str, value: Any) -> Predicate:
    wanted = ids(where, value)

    def match(event: Event) -> bool:
        return event["process"]["uid"] in wanted

    return match
