"""The shapes the filter modules share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Event = dict[str, Any]
Predicate = Callable[[Event], bool]  # does this event match one rule key?
Stage = Callable[[Event], Event | None]  # the event to pass on, or None to drop it
