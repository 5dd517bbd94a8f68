"""Filter on the container: `container_id = "3f2a9c1b0d4e"` (an id or a prefix of
one, e.g. the 12-character short id docker shows; or a list), or
`container_id = true` (any container) / `false` (processes of the host)."""

from __future__ import annotations

import re
from typing import Any

from collector.filter._types import Event, Predicate
from collector.filter._values import bad, items

KEY = "container_id"
_HEX = re.compile(r"[0-9a-f]{1,64}")


def build(where: str, value: Any) -> Predicate:
    if isinstance(value, bool):
        in_container = value

        def match_any(event: Event) -> bool:
            return (event["process"]["container_id"] is not None) == in_container

        return match_any
    prefixes = []
    for v in items(where, value):
        if not isinstance(v, str) or not _HEX.fullmatch(v):
            raise bad(where, v, "a container id or a prefix of one (lowercase hex), a list "
                      "of them, or true/false")
        prefixes.append(v)
    starts = tuple(prefixes)

    def match(event: Event) -> bool:
        cid = event["process"]["container_id"]
        return cid is not None and cid.startswith(starts)

    return match
