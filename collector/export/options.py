"""One declared option, how a value is checked against it, and the pipeline
options the core adds to every sink's section.

The same `Option` describes the core's keys (collector.config) and every
sink's (a sink class's `options`): one table drives the TOML file, the
COLLECTOR_* environment variables, the dedicated CLI flags, the generic
`--sink-option NAME.KEY=VALUE`, `collector sinks` and the generated
config/collector.toml. A sink declares bare keys ("path"); the core
qualifies them with the sink's name ("file.path") for messages, the file
section and the environment variable (COLLECTOR_FILE_PATH).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collector.errors import UsageError

TYPES = ("str", "int", "float", "bool", "list", "table", "tables")
POLICIES = ("block", "drop-newest", "drop-oldest")


@dataclass(frozen=True)
class Option:
    """One configuration key: its type, default, unit and meaning.

    `flag` (e.g. "--file-path") makes the CLI offer a dedicated flag for a
    sink option; `required` keys must be non-empty when the sink is used;
    `env_alias` is a second, shorter environment variable (COLLECTOR_FORMAT).
    """

    key: str
    type: str  # one of TYPES
    default: Any
    doc: str
    unit: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None  # returns a complaint or None
    required: bool = False
    flag: str | None = None
    metavar: str | None = None
    env_alias: str | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"option {self.key}: type {self.type!r} is not one of {TYPES}")

    @property
    def env(self) -> str:
        return "COLLECTOR_" + self.key.upper().replace(".", "_").replace("-", "_")

    def qualified(self, section: str) -> Option:
        """The same option under "section.key"."""
        return dataclasses.replace(self, key=f"{section}.{self.key}")

    def coerce(self, value: Any, *, from_text: bool = False) -> Any:
        """Check one value; text (env vars, flags) is parsed first."""
        return coerce(self, value, from_text=from_text)

    def describe(self) -> str:
        """What values are allowed, for messages and `collector sinks`."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return _KIND_WORDS[self.type]


_KIND_WORDS = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "list": "a list of strings",
    "table": "a table of KEY = VALUE",
    "tables": "a list of tables",
}


def bad_value(key: str, value: Any, allowed: str) -> UsageError:
    shown = repr(value) if not isinstance(value, str) else f"'{value}'"
    return UsageError(f"config key {key}: {shown} is not valid; expected {allowed}")


def coerce(opt: Option, value: Any, *, from_text: bool = False) -> Any:
    """Check one value against its option; text (env vars, flags) is parsed first."""
    kind = opt.type
    try:
        if kind == "bool":
            if from_text and isinstance(value, str):
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                value = low in ("1", "true", "yes", "on")
            if not isinstance(value, bool):
                raise ValueError
        elif kind == "int":
            if from_text and isinstance(value, str):
                value = int(value, 0)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError
        elif kind == "float":
            if from_text and isinstance(value, str):
                value = float(value)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError
            value = float(value)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
        elif kind == "str":
            if not isinstance(value, str):
                raise ValueError
        elif kind == "list":
            if from_text and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError
        elif kind == "table":
            if not isinstance(value, dict):
                raise ValueError
            value = {str(k): _scalar_text(opt, k, v) for k, v in value.items()}
        elif kind == "tables":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ValueError
    except ValueError:
        raise bad_value(opt.key, value, _KIND_WORDS[kind]) from None
    if opt.choices:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in opt.choices:
                raise bad_value(opt.key, item, "one of " + ", ".join(opt.choices))
    if kind in ("int", "float"):
        if opt.minimum is not None and value < opt.minimum:
            raise bad_value(opt.key, value, f"{kind} >= {opt.minimum:g}")
        if opt.maximum is not None and value > opt.maximum:
            raise bad_value(opt.key, value, f"{kind} <= {opt.maximum:g}")
    if opt.check is not None:
        complaint = opt.check(value)
        if complaint:
            raise bad_value(opt.key, value, complaint)
    return value


def _scalar_text(opt: Option, k: Any, v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (str, int, float)):
        return str(v)
    raise bad_value(f"{opt.key}.{k}", v, "a string, number or boolean")


def split_items(value: str) -> list[str]:
    """KEY=VALUE;KEY=VALUE from one environment variable; a ';' inside a value is
    written '\\;'."""
    return [part.replace("\\;", ";") for part in re.split(r"(?<!\\);", value)]


def parse_items(items: Sequence[str], source: str) -> dict[str, str]:
    """KEY=VALUE items (a table option from flags or the environment)."""
    out: dict[str, str] = {}
    for n, item in enumerate(items, 1):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # never the item's text: it may be (part of) a password with a typo in it
            raise UsageError(f"{source}: item {n} is not KEY=VALUE (its text is not shown, "
                             "it may hold a secret); e.g. compression.type=zstd")
        out[key.strip()] = value.strip()
    return out


def required_hint(section: str, opt: Option) -> UsageError:
    flag = f" ({opt.flag} {opt.metavar or opt.key.rpartition('.')[2].upper()})" if opt.flag else ""
    return UsageError(f"config key {opt.key}: required with --sink {section}{flag}")


def resolve_options(section: str, declared: Sequence[Option],
                    given: Mapping[str, Any]) -> dict[str, Any]:
    """A sink's option values: defaults for what is not given, every given value
    checked (text parsed), unknown keys rejected, required keys present."""
    by_key = {o.key: o for o in declared}
    for key in given:
        if key not in by_key:
            raise UsageError(f"config key {section}.{key}: unknown key; `collector sinks` lists "
                             f"the keys of the {section} sink")
    out: dict[str, Any] = {}
    for opt in declared:
        full = opt.qualified(section)
        if opt.key in given:
            value = given[opt.key]
            out[opt.key] = coerce(full, value, from_text=isinstance(value, str)
                                  and opt.type != "str")
        else:
            out[opt.key] = opt.default
        if opt.required and out[opt.key] in ("", None, [], {}):
            raise required_hint(section, full)
    return out


def pipeline_options(batch_timeout_ms: int, batch_events: int) -> list[Option]:
    """The keys the core adds to every sink's section: queue, batching, retries,
    backpressure (collector.export.policy.PipelineSettings reads them)."""
    return [
        Option("queue_events", "int", 10000,
               "events this sink may hold in memory before its policy applies", unit="events",
               minimum=1),
        Option("batch_events", "int", batch_events,
               "most events in one batch (one write or one produce round)", unit="events",
               minimum=1),
        Option("batch_bytes", "int", 1 << 20,
               "most encoded bytes in one batch", unit="bytes", minimum=1),
        Option("batch_timeout_ms", "int", batch_timeout_ms,
               "how long a batch may wait to fill before it is written (ms; 0 = write "
               "whatever is queued at once)", unit="ms", minimum=0),
        Option("when_full", "str", "block",
               "what to do when the queue is full or retries are exhausted: block (wait; the "
               "kernel ring buffer absorbs, then drops and counts), drop-newest, drop-oldest",
               choices=POLICIES),
        Option("retry_initial_ms", "int", 100,
               "first retry delay after a transient error (ms; doubles, with jitter)",
               unit="ms", minimum=1),
        Option("retry_max_ms", "int", 10000,
               "cap on one retry delay (ms)", unit="ms", minimum=1),
        Option("retry_max_elapsed_s", "float", 300.0,
               "give up retrying a batch after this long (s); then when_full decides",
               unit="s", minimum=0),
    ]


PIPELINE_KEYS = tuple(o.key for o in pipeline_options(0, 1))

#: the record shapes (collector.shapes.NAMES; spelled here so reading options loads no schema)
SHAPE_NAMES = ("native", "ocsf", "ecs")


def _shape_or_empty(v: str) -> str | None:
    if v and v not in SHAPE_NAMES:
        return "one of " + ", ".join(SHAPE_NAMES) + " (or empty: the top-level schema)"
    return None


#: a built-in sink's record shape: declared in its options, filled in from the
#: core's `schema` key when empty (collector.config._check_rules)
SCHEMA_OPTION = Option("schema", "str", "", "record shape of this sink (native, ocsf, ecs); "
                       "empty = the top-level schema", check=_shape_or_empty)
