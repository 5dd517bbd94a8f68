"""Filter on the command line: `args = "-o\\s+ProxyCommand"` (regex, or a list).

The regex is searched in argv joined by single spaces, argv[0] first, so a
rule can span arguments. It sees argv after redaction: a rule cannot be
written to match a secret that the collector never keeps.
"""

from __future__ import annotations

from typing import Any

from collector.filter._types import Event, Predicate
from collector.filter._values import regexes

KEY = "args"


def build(where: str, value: Any) -> Predicate:
    searches = [r.search for r in regexes(where, value)]

    def match(event: Event) -> bool:
        line = " ".join(event["process"]["args"])
        return any(s(line) for s in searches)

    return match
