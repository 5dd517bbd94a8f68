"""Filter and redact: decide which events reach the sinks, and scrub argv.

`build_stage(cfg)` returns one callable applied by the reader to every
event after enrichment: it returns the event, or None to drop it (counted
as `filtered`). Rules are compiled once, at start; a bad rule is a
UsageError naming it (exit 2). See rules.py for the semantics and one
module per filter kind for each key.

Redaction (redact.py) is not a stage: the process cache applies it when it
builds a Process record, so a secret never exists in any record, whether
it would be shown as the process, a parent or an ancestor, and filters see
argv already redacted.
"""

from __future__ import annotations

from typing import Any

from collector.filter._types import Event, Predicate, Stage
from collector.filter.redact import build_redactor
from collector.filter.rules import compile_rules

__all__ = ["Event", "Predicate", "Stage", "build_stage", "validate"]


def build_stage(cfg: dict[str, Any]) -> Stage | None:
    """The filter stage for this config, or None when there is nothing to do."""
    allow = compile_rules("filter.allow", cfg["filter.allow"])
    deny = compile_rules("filter.deny", cfg["filter.deny"])
    if allow is None and deny is None:
        return None
    if deny is None:
        assert allow is not None
        allowed = allow

        def allow_only(event: Event) -> Event | None:
            return event if allowed(event) else None

        return allow_only
    denied = deny
    if allow is None:

        def deny_only(event: Event) -> Event | None:
            return None if denied(event) else event

        return deny_only
    allowed = allow

    def allow_and_deny(event: Event) -> Event | None:
        return event if allowed(event) and not denied(event) else None

    return allow_and_deny


def validate(cfg: dict[str, Any]) -> None:
    """Compile every rule and pattern once, so mistakes stop the start (exit 2)."""
    build_stage(cfg)
    build_redactor(cfg)
