"""Filter on the event type: `event_type = "process_exit"` (or a list)."""

from __future__ import annotations

from typing import Any

from collector.filter._types import Event, Predicate
from collector.filter._values import bad, items
from collector.schema import EVENT_TYPES

KEY = "event_type"


def build(where: str, value: Any) -> Predicate:
    wanted = set()
    for v in items(where, value):
        if v not in EVENT_TYPES:
            raise bad(where, v, "one of " + ", ".join(EVENT_TYPES))
        wanted.add(v)

    def match(event: Event) -> bool:
        return event["event_type"] in wanted

    return match
