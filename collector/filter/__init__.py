"""Filter and redact: decide which events reach the sinks, and scrub argv.

`build_stage(cfg)` returns one callable applied to every event after
enrichment: it returns the (possibly redacted) event, or None to drop it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Event = dict[str, Any]
Stage = Callable[[Event], Event | None]


def build_stage(cfg: dict[str, Any]) -> Stage | None:
    """The filter+redaction stage for this config, or None when there is nothing to do."""
    return None
