"""Sinks are found by entry point, the built-in ones included.

A distribution registers a sink under the group `process_collector.sinks`:

    [project.entry-points."process_collector.sinks"]
    mysink = "mypackage.sink:MySink"

Names are read without importing anything (cheap enough for every CLI
start); a class is imported when it is used, or when its options are needed
(config checks, `collector sinks`, the example config). The project's own
sinks come first, in the order pyproject.toml lists them, then the others
by name.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

from collector.errors import UsageError
from collector.export.contract import Sink

GROUP = "process_collector.sinks"
PROJECT = "process-collector"


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    own: dict[str, EntryPoint] = {}
    others: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else ""
        target = own if dist == PROJECT else others
        target.setdefault(ep.name, ep)  # the first one on sys.path wins, as for imports
    for name in own:
        others.pop(name, None)
    return {**own, **dict(sorted(others.items()))}


def sink_names() -> tuple[str, ...]:
    """Every registered sink name (nothing imported)."""
    return tuple(_entry_points())


def listed(names: tuple[str, ...]) -> tuple[str, ...]:
    """Names in listing order (Sink.listing_order, then name); loads the classes."""
    return tuple(sorted(names, key=lambda n: (sink_class(n).listing_order, n)))


def builtin_names() -> tuple[str, ...]:
    """The sinks this project ships (their sections are in config/collector.toml),
    in listing order."""
    return listed(tuple(n for n, ep in _entry_points().items()
                        if ep.dist is not None and ep.dist.name == PROJECT))


@functools.cache
def sink_class(name: str) -> type[Sink]:
    """The class registered as `name`; a UsageError naming the fix otherwise."""
    ep = _entry_points().get(name)
    if ep is None:
        raise UsageError(f"sink {name!r} is not registered; the sinks are "
                         + ", ".join(sink_names()) + " (`collector sinks` lists them)")
    try:
        cls = ep.load()
    except Exception as exc:  # a plugin that does not import: say which and why
        raise UsageError(f"sink {name}: cannot load {ep.value}: {type(exc).__name__}: "
                         f"{exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Sink)):
        raise UsageError(f"sink {name}: {ep.value} is not a subclass of collector.export.Sink")
    if cls.name != name:
        raise UsageError(f"sink {name}: {ep.value} declares name {cls.name!r}; the entry "
                         "point and the class must use the same name")
    return cls
