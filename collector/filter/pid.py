"""Filter on the process id (host namespace): `pid = [1, 4242]`."""

from __future__ import annotations

from typing import Any

from collector.filter._types import Event, Predicate
from collector.filter._values import ids

KEY = "pid"


def build(where: str, value: Any) -> Predicate:
    wanted = ids(where, value)

    def match(event: Event) -> bool:
        return event["process"]["pid"] in wanted

    return match
