"""Allow and deny rules → one predicate per list.

A rule is a TOML table; it matches an event when every key in it matches
(AND), and a key given a list matches when any item does (OR):

    [[filter.deny]]
    binary = "^/usr/bin/(curl|wget)$"
    uid = [0, 1000]

`filter.allow`: if there are allow rules, an event must match one of them.
`filter.deny`: an event matching any deny rule is dropped, allowed or not
(deny wins). The keys are the filter modules of this package, one per kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collector.errors import UsageError
from collector.filter import args, binary, container_id, event_type, parent_binary, pid, uid
from collector.filter._types import Event, Predicate

KINDS: dict[str, Callable[[str, Any], Predicate]] = {
    m.KEY: m.build for m in (event_type, binary, args, parent_binary, uid, pid, container_id)
}


def compile_rule(where: str, rule: Any) -> Predicate:
    """One table → a predicate that is true when all of its keys match."""
    if not isinstance(rule, dict):
        raise UsageError(f"config key {where}: expected a table of filter keys "
                         f"({', '.join(KINDS)})")
    if not rule:
        raise UsageError(f"config key {where}: an empty rule matches every event; give it at "
                         f"least one of {', '.join(KINDS)}")
    preds = []
    for key, value in rule.items():
        build = KINDS.get(key)
        if build is None:
            raise UsageError(f"config key {where}.{key}: unknown filter key; use one of "
                             f"{', '.join(KINDS)}")
        preds.append(build(f"{where}.{key}", value))
    if len(preds) == 1:
        return preds[0]

    def match_all(event: Event) -> bool:
        return all(p(event) for p in preds)

    return match_all


def compile_rules(name: str, rules: list[Any]) -> Predicate | None:
    """A list of rules → a predicate true when any rule matches; None for no rules."""
    preds = [compile_rule(f"{name}[{i}]", r) for i, r in enumerate(rules)]
    if not preds:
        return None
    if len(preds) == 1:
        return preds[0]

    def match_any(event: Event) -> bool:
        return any(p(event) for p in preds)

    return match_any
