"""Configuration: one table of options drives the TOML file, the COLLECTOR_*
environment variables, the CLI flags and the documented example.

Precedence: flag > environment > config file > default. Every key is
checked at start: an unknown key or a bad value is a UsageError naming the
key, the value and what is allowed (exit 2, no traceback).

Keys are "section.name" (or a bare "name" at the top level); the env var is
COLLECTOR_ + the key upper-cased with dots as underscores, e.g.
kafka.bootstrap → COLLECTOR_KAFKA_BOOTSTRAP.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.errors import UsageError

SINK_NAMES = ("stdout", "file", "kafka")
POLICIES = ("block", "drop-newest", "drop-oldest")


@dataclass(frozen=True)
class Option:
    """One configuration key: its type, default, allowed values and meaning."""

    key: str
    kind: str  # str | int | float | bool | list | table | tables
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None  # returns a complaint or None

    @property
    def env(self) -> str:
        return "COLLECTOR_" + self.key.upper().replace(".", "_")


def _power_of_two_pages(v: int) -> str | None:
    if v < 4096 or v & (v - 1):
        return "a power of two of at least 4096"
    return None


def _octal_mode(v: str) -> str | None:
    if not re.fullmatch(r"0?[0-7]{3,4}", v):
        return "an octal file mode such as 0640"
    return None


def _host_ports(v: str) -> str | None:
    if not v:
        return None
    for part in v.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            return "HOST:PORT[,HOST:PORT...]"
    return None


def _sink_options(section: str, *, batch_timeout_ms: int, batch_events: int) -> list[Option]:
    """The pipeline keys every sink has: queue, batching, retries, backpressure."""
    return [
        Option(f"{section}.queue_events", "int", 10000,
               "events this sink may hold in memory before its policy applies", minimum=1),
        Option(f"{section}.batch_events", "int", batch_events,
               "most events in one batch (one write or one produce round)", minimum=1),
        Option(f"{section}.batch_bytes", "int", 1 << 20,
               "most encoded bytes in one batch", minimum=1),
        Option(f"{section}.batch_timeout_ms", "int", batch_timeout_ms,
               "how long a batch may wait to fill before it is written (ms; 0 = write "
               "whatever is queued at once)", minimum=0),
        Option(f"{section}.when_full", "str", "block",
               "what to do when the queue is full or retries are exhausted: block (wait; the "
               "kernel ring buffer absorbs, then drops and counts), drop-newest, drop-oldest",
               choices=POLICIES),
        Option(f"{section}.retry_initial_ms", "int", 100,
               "first retry delay after a transient error (ms; doubles, with jitter)", minimum=1),
        Option(f"{section}.retry_max_ms", "int", 10000,
               "cap on one retry delay (ms)", minimum=1),
        Option(f"{section}.retry_max_elapsed_s", "float", 300.0,
               "give up retrying a batch after this long (s); then when_full decides",
               minimum=0),
    ]


OPTIONS: list[Option] = [
    Option("node", "str", "", "node name in every event (default: the host name)"),
    Option("sinks", "list", ["stdout"], "where events go; every event goes to every sink",
           choices=SINK_NAMES),
    Option("duration", "float", 0.0, "stop cleanly after this many seconds (0 = run until "
           "SIGINT/SIGTERM)", minimum=0),
    Option("stats_interval", "float", 0.0, "print a one-line counter summary on stderr every "
           "N seconds (0 = only at shutdown)", minimum=0),
    Option("shutdown_timeout", "float", 10.0, "at stop, how long sinks may take to drain and "
           "flush (s)", minimum=0),
    # capture
    Option("capture.backend", "str", "core", "probe backend: core (CO-RE, libbpf), bcc "
           "(compiled on the host by bcc, for kernels where CO-RE cannot load), or auto "
           "(CO-RE when it loads, else bcc)", choices=("core", "bcc", "auto")),
    Option("capture.bcc_offsets", "str", "auto", "bcc backend: where kernel struct offsets "
           "come from: btf, headers (they must match the running kernel and agree with BTF "
           "where it exists), or auto (BTF when the kernel has it)",
           choices=("auto", "btf", "headers")),
    Option("capture.args_max_bytes", "int", 16384, "argv bytes captured per exec; longer argv "
           "is cut and flagged args_truncated", minimum=1, maximum=32767),
    Option("capture.ring_buffer_bytes", "int", 16 << 20, "kernel ring buffer size (bytes, a "
           "power of two)", check=_power_of_two_pages),
    Option("capture.wakeup_bytes", "int", 256 << 10, "wake the reader early once this many "
           "bytes are queued in the ring buffer", minimum=1),
    Option("capture.poll_interval_ms", "int", 25, "the reader drains the ring buffer at least "
           "this often (ms)", minimum=1, maximum=1000),
    Option("capture.ignore_self", "bool", True, "ignore the collector's own process and its "
           "children (in the kernel)"),
    # enrichment
    Option("enrich.cache_max_entries", "int", 65536, "most live processes in the process "
           "cache; beyond it the oldest are evicted (counted)", minimum=16),
    Option("enrich.sweep_interval_s", "float", 60.0, "how often the cache looks for processes "
           "whose exit the kernel lost (ring buffer full); one gone from /proc at two sweeps in "
           "a row is released (counted) (s)", minimum=1),
    Option("enrich.procfs_scan", "bool", True, "at start, read running processes from /proc "
           "into the cache"),
    Option("enrich.procfs_events", "bool", True, "emit a process_exec (flag procfs) for each "
           "process found by the start-up scan"),
    Option("enrich.ancestors", "int", 0, "exec events carry this many ancestors beyond the "
           "parent (0 = none)", minimum=0, maximum=64),
    Option("enrich.namespaces", "bool", False, "add namespace inode numbers"),
    # filters and redaction
    Option("filter.allow", "tables", [], "allow rules: an event passes if it matches any (empty "
           "= all pass); keys event_type, binary, args, parent_binary (regexes), uid, pid, "
           "container_id"),
    Option("filter.deny", "tables", [], "deny rules: an event matching any is dropped; deny wins"),
    Option("redact.patterns", "list", [], "extra regexes whose matches in argv become *****"),
    Option("redact.defaults", "bool", True, "also apply the built-in patterns (--password=..., "
           "token=..., ...)"),
    # stdout sink
    Option("stdout.format", "str", "json", "json (one JSON document per line) or compact (for "
           "people)", choices=("json", "compact")),
    *_sink_options("stdout", batch_timeout_ms=0, batch_events=256),
    # file sink
    Option("file.path", "str", "", "the file events are written to (required with --sink file)"),
    Option("file.format", "str", "jsonl", "jsonl or avro (Avro object container file)",
           choices=("jsonl", "avro")),
    Option("file.avro_codec", "str", "deflate", "Avro block codec", choices=(
        "null", "deflate", "zstandard", "snappy")),
    Option("file.max_bytes", "int", 100 << 20, "rotate when the file reaches this size (bytes; "
           "0 = never)", minimum=0),
    Option("file.max_age_s", "float", 0.0, "rotate when the file is this old (s; 0 = never)",
           minimum=0),
    Option("file.retain", "int", 10, "rotated files kept; older ones are deleted", minimum=0),
    Option("file.gzip", "bool", False, "gzip rotated JSON-lines files"),
    Option("file.mode", "str", "0640", "permissions of new files (octal)", check=_octal_mode),
    Option("file.fsync", "str", "batch", "when to fsync: never, batch (after every batch), "
           "interval", choices=("never", "batch", "interval")),
    Option("file.fsync_interval_s", "float", 1.0, "with fsync = interval: at most this long "
           "between fsyncs (s)", minimum=0),
    *_sink_options("file", batch_timeout_ms=200, batch_events=1000),
    # kafka sink
    Option("kafka.bootstrap", "str", "", "broker list HOST:PORT[,...] (required with --sink "
           "kafka)", check=_host_ports),
    Option("kafka.topic", "str", "process-events", "topic events are produced to"),
    Option("kafka.format", "str", "avro", "message value: avro or json", choices=("avro", "json")),
    Option("kafka.options", "table", {}, "librdkafka settings passed through (KEY = VALUE), "
           "e.g. security.protocol, sasl.mechanism, compression.type"),
    Option("kafka.schema_registry", "str", "", "Schema Registry URL; with avro, use the "
           "Confluent wire format and register the schema under <topic>-value"),
    Option("kafka.buffer", "str", "memory", "memory, or disk (durable across restarts)",
           choices=("memory", "disk")),
    Option("kafka.buffer_path", "str", "", "directory of the disk buffer (required with "
           "buffer = disk)"),
    Option("kafka.buffer_max_bytes", "int", 1 << 30, "disk buffer size limit (bytes); beyond "
           "it when_full applies", minimum=4096),
    *_sink_options("kafka", batch_timeout_ms=0, batch_events=1000),
]

BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}


def _bad(key: str, value: Any, allowed: str) -> UsageError:
    shown = repr(value) if not isinstance(value, str) else f"'{value}'"
    return UsageError(f"config key {key}: {shown} is not valid; expected {allowed}")


def coerce(opt: Option, value: Any, *, from_text: bool = False) -> Any:
    """Check one value against its option; text (env vars, flags) is parsed first."""
    kind = opt.kind
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
        raise _bad(opt.key, value, _describe(opt)) from None
    if opt.choices:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in opt.choices:
                raise _bad(opt.key, item, "one of " + ", ".join(opt.choices))
    if kind in ("int", "float"):
        if opt.minimum is not None and value < opt.minimum:
            raise _bad(opt.key, value, f"{kind} >= {opt.minimum:g}")
        if opt.maximum is not None and value > opt.maximum:
            raise _bad(opt.key, value, f"{kind} <= {opt.maximum:g}")
    if opt.check is not None:
        complaint = opt.check(value)
        if complaint:
            raise _bad(opt.key, value, complaint)
    return value


def _scalar_text(opt: Option, k: Any, v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (str, int, float)):
        return str(v)
    raise _bad(f"{opt.key}.{k}", v, "a string, number or boolean")


def _describe(opt: Option) -> str:
    return {
        "bool": "true or false",
        "int": "an integer",
        "float": "a number",
        "str": "a string",
        "list": "a list of strings",
        "table": "a table of KEY = VALUE",
        "tables": "a list of tables",
    }[opt.kind]


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """TOML document → {"section.key": value}; unknown keys are errors."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if key in BY_KEY:
            out[key] = v
        elif isinstance(v, dict) and not prefix:
            out.update(_flatten(v, f"{key}."))
        else:
            raise UsageError(f"config key {key}: unknown key; see config/collector.toml for "
                             "the keys there are")
    return out


def load_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file {path}: not found") from None
    except PermissionError:
        raise UsageError(f"config file {path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path}: not valid TOML: {exc}") from None
    return _flatten(doc)


class Config(dict[str, Any]):
    """Resolved settings: every key of OPTIONS, checked."""

    def section(self, name: str) -> dict[str, Any]:
        """{"path": ..., ...} for the keys "name.path", ..."""
        prefix = name + "."
        return {k[len(prefix):]: v for k, v in self.items() if k.startswith(prefix)}


def resolve(
    *,
    config_path: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Merge defaults < file < environment < flags, check every value and the
    cross-key rules (a sink's required keys)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {o.key: o.default for o in OPTIONS}
    if config_path is None and env.get("COLLECTOR_CONFIG"):
        config_path = Path(env["COLLECTOR_CONFIG"])
    if config_path is not None:
        for key, v in load_file(config_path).items():
            values[key] = coerce(BY_KEY[key], v)
    # COLLECTOR_DEBUG is not a config key: it turns on debug logs and tracebacks (cli.main)
    known_env = {o.env for o in OPTIONS} | {"COLLECTOR_CONFIG", "COLLECTOR_SINK",
                                            "COLLECTOR_FORMAT", "COLLECTOR_KAFKA_OPTION",
                                            "COLLECTOR_DEBUG", "COLLECTOR_BACKEND"}
    for name in env:
        if name.startswith("COLLECTOR_") and name not in known_env:
            raise UsageError(f"environment variable {name}: unknown; the COLLECTOR_* variables "
                             "are the config keys upper-cased (see config/collector.toml)")
    for opt in OPTIONS:
        if opt.env not in env:
            continue
        if opt.kind == "tables":
            raise UsageError(f"environment variable {opt.env}: {opt.key} rules can only be "
                             f"given in the config file ([[{opt.key}]] tables)")
        if opt.kind == "table":
            values[opt.key] = {**values[opt.key], **parse_kafka_options(
                split_options(env[opt.env]), f"environment variable {opt.env}")}
        else:
            values[opt.key] = coerce(opt, env[opt.env], from_text=True)
    # the short names the CLI contract uses
    if "COLLECTOR_SINK" in env:
        values["sinks"] = coerce(BY_KEY["sinks"], env["COLLECTOR_SINK"], from_text=True)
    if "COLLECTOR_FORMAT" in env:
        values["stdout.format"] = coerce(BY_KEY["stdout.format"], env["COLLECTOR_FORMAT"],
                                         from_text=True)
    if "COLLECTOR_BACKEND" in env:
        values["capture.backend"] = coerce(BY_KEY["capture.backend"], env["COLLECTOR_BACKEND"],
                                           from_text=True)
    if "COLLECTOR_KAFKA_OPTION" in env:
        values["kafka.options"] = {**values["kafka.options"],
                                   **parse_kafka_options(split_options(env["COLLECTOR_KAFKA_OPTION"]),
                                                       "environment variable COLLECTOR_KAFKA_OPTION")}
    for key, v in (flags or {}).items():
        if v is None:
            continue
        opt = BY_KEY[key]
        if key == "kafka.options":
            values[key] = {**values[key], **v}
        else:
            values[key] = coerce(opt, v, from_text=isinstance(v, str))
    cfg = Config(values)
    _check_rules(cfg)
    return cfg


def split_options(value: str) -> list[str]:
    """KEY=VALUE;KEY=VALUE from one environment variable; a ';' inside a value is
    written '\\;'."""
    return [part.replace("\\;", ";") for part in re.split(r"(?<!\\);", value)]


def parse_kafka_options(items: list[str] | tuple[str, ...],
                        source: str = "--kafka-option") -> dict[str, str]:
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


def _check_rules(cfg: Config) -> None:
    if not cfg["node"]:
        cfg["node"] = socket.gethostname()
    sinks = cfg["sinks"]
    if not sinks:
        raise UsageError("config key sinks: empty; name at least one of " + ", ".join(SINK_NAMES))
    if len(set(sinks)) != len(sinks):
        raise UsageError(f"config key sinks: {sinks} names a sink twice")
    if "file" in sinks and not cfg["file.path"]:
        raise UsageError("config key file.path: required with --sink file (--file-path PATH)")
    if "kafka" in sinks and not cfg["kafka.bootstrap"]:
        raise UsageError("config key kafka.bootstrap: required with --sink kafka "
                         "(--kafka-bootstrap HOST:PORT)")
    if cfg["kafka.buffer"] == "disk" and "kafka" in sinks and not cfg["kafka.buffer_path"]:
        raise UsageError("config key kafka.buffer_path: required with kafka.buffer = disk "
                         "(--buffer-path DIR)")
    from collector.filter import validate  # compiles filter rules and redact patterns

    validate(cfg)
