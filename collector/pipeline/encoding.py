"""Encode a run of events for a sink: a map over them, not a Python loop per event.

Both the worker's batcher and the reader's inline writes encode a poll's worth
of events at a time; a Python loop with a try per event adds interpreter work
to every encode (the C encoders take well under a microsecond). `encode_all`
maps the encoder over the events; when one
fails, list.extend has kept the items before it and the map goes on after it,
so no event is encoded twice and every failure is kept with its position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def encode_all(encode: Callable[[Any], Any],
               events: Sequence[Any]) -> tuple[list[Any], list[tuple[int, Exception]]]:
    """(the items of the events that encoded, in order; (index in events,
    exception) of each event that did not)."""
    items: list[Any] = []
    bad: list[tuple[int, Exception]] = []
    pos = 0
    while pos < len(events):
        try:
            items.extend(map(encode, events[pos:] if pos else events))
            break
        except Exception as exc:  # one bad event must not stop the sink
            failed = len(items) + len(bad)  # its index in events
            bad.append((failed, exc))
            pos = failed + 1
    return items, bad


def sizes_of(items: list[Any]) -> list[int]:
    """len() of each item; an item without a length counts 0."""
    try:
        return list(map(len, items))
    except TypeError:
        return [_size(item) for item in items]


def _size(item: Any) -> int:
    try:
        return len(item)
    except TypeError:
        return 0


@dataclass(slots=True)
class Encoded:
    """A run of events encoded: the items, the events they encode (in order),
    their sizes, and how many events could not be encoded."""

    items: list[Any]
    events: list[Any]
    sizes: list[int]
    bad: int


def encode_run(encode: Callable[[Any], Any], events: list[Any]) -> Encoded:
    """encode_all, with the events kept and the sizes, as a poll written at once needs."""
    items, bad = encode_all(encode, events)
    kept = events
    if bad:
        dropped = {i for i, _ in bad}
        kept = [e for i, e in enumerate(events) if i not in dropped]
    return Encoded(items, kept, sizes_of(items), len(bad))
