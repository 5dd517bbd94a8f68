"""Configuration: one table of options drives the TOML file, the COLLECTOR_*
environment variables, the CLI flags and the documented example.

The table is the core's keys (below) plus, for every registered sink
(collector.export.registry), its own options and the core's pipeline keys
under a section named after it ([file], [kafka], [mysink], ...).

Precedence: flag > environment > config file > default. Every key is
checked at start: an unknown key or a bad value is a UsageError naming the
key, the value and what is allowed (exit 2, no traceback).

Keys are "section.name" (or a bare "name" at the top level); the env var is
COLLECTOR_ + the key upper-cased with dots as underscores, e.g.
kafka.bootstrap → COLLECTOR_KAFKA_BOOTSTRAP.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from collector.errors import UsageError
from collector.export.options import (
    PIPELINE_KEYS,
    SHAPE_NAMES,
    Option,
    bad_value,
    coerce,
    parse_items,
    pipeline_options,
    required_hint,
    split_items,
)
from collector.export.policy import PipelineSettings
from collector.export.registry import builtin_names, listed, sink_class, sink_names
from collector.pipeline.poll import BUSY_RECORDS
from collector.probe.layout import ARGS_MAX_LIMIT

log = logging.getLogger("collector.config")

#: pipeline defaults for a sink that states none (a plugin)
PIPELINE_DEFAULTS = {"batch_timeout_ms": 100, "batch_events": 500}


def _power_of_two_pages(v: int) -> str | None:
    if v < 4096 or v & (v - 1):
        return "a power of two of at least 4096"
    return None


def _listen_address(v: str) -> str | None:
    """HOST:PORT to listen on ('' = off); an IPv6 host in brackets; port 0 = any free one."""
    if not v:
        return None
    host, _, port = v.rpartition(":")
    if not host.strip("[]") or not port.isdigit() or int(port) > 65535:
        return "HOST:PORT, e.g. 127.0.0.1:9464 or [::]:9464"
    return None


CORE_OPTIONS: tuple[Option, ...] = (
    Option("node", "str", "", "node name in every event (default: the host name)"),
    Option("sinks", "list", ["stdout"], "where events go; every event goes to every sink",
           choices=("<registered sinks>",), env_alias="COLLECTOR_SINK"),
    Option("duration", "float", 0.0, "stop cleanly after this many seconds (0 = run until "
           "SIGINT/SIGTERM)", minimum=0),
    Option("stats_interval", "float", 0.0, "print a one-line counter summary on stderr every "
           "N seconds (0 = only at shutdown)", minimum=0),
    Option("schema", "str", "native", "record shape for every sink: native (this project's "
           "record), ocsf (OCSF 1.8.0 Process Activity), ecs (ECS 9.4.0); a sink's own "
           "schema key overrides it", choices=SHAPE_NAMES),
    Option("shutdown_timeout", "float", 10.0, "at stop, how long sinks may take to drain and "
           "flush (s)", minimum=0),
    # capture
    Option("capture.backend", "str", "core", "probe backend: core (CO-RE, libbpf), bcc "
           "(compiled on the host by bcc, for kernels where CO-RE cannot load), or auto "
           "(CO-RE when it loads, else bcc)", choices=("core", "bcc", "auto"),
           env_alias="COLLECTOR_BACKEND"),
    Option("capture.bcc_offsets", "str", "auto", "bcc backend: where kernel struct offsets "
           "come from: btf, headers (they must match the running kernel and agree with BTF "
           "where it exists), or auto (BTF when the kernel has it)",
           choices=("auto", "btf", "headers")),
    Option("capture.args_max_bytes", "int", 16384, "argv bytes captured per exec; longer argv "
           "is cut and flagged args_truncated", minimum=1, maximum=ARGS_MAX_LIMIT),
    Option("capture.ring_buffer_bytes", "int", 16 << 20, "kernel ring buffer size (bytes, a "
           "power of two)", check=_power_of_two_pages),
    Option("capture.wakeup_bytes", "int", 256 << 10, "wake the reader early once this many "
           "bytes are queued in the ring buffer", minimum=1),
    Option("capture.poll_interval_ms", "int", 25, "the reader drains the ring buffer at least "
           "this often while events come slowly (ms)", minimum=1, maximum=1000),
    Option("capture.busy_poll_interval_ms", "int", 100, "while events come fast (a poll "
           f"brought {BUSY_RECORDS} records or more) the reader drains the ring buffer this often instead: "
           "fewer, larger batches cost less CPU per event, events wait up to this long; set "
           "it to poll_interval_ms for one fixed interval (ms)", minimum=1, maximum=1000),
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
    # observability
    Option("metrics.address", "str", "", "serve Prometheus metrics (/metrics) and a health check "
           "(/healthz) on this HOST:PORT ('' = off; port 0 = any free port, printed at start)",
           check=_listen_address),
)

#: the core options by key (defaults have one owner: this table)
BY_KEY: dict[str, Option] = {o.key: o for o in CORE_OPTIONS}


def _core_options(sinks: tuple[str, ...]) -> list[Option]:
    """The core's keys, with these sinks as the choices of `sinks`."""
    return [dataclasses.replace(o, choices=sinks) if o.key == "sinks" else o
            for o in CORE_OPTIONS]


def sink_section(name: str) -> list[Option]:
    """One sink's keys, qualified: its own options, then the pipeline keys."""
    cls = sink_class(name)
    defaults = {**PIPELINE_DEFAULTS, **cls.pipeline_defaults}
    pipeline = pipeline_options(defaults["batch_timeout_ms"], defaults["batch_events"])
    return [o.qualified(name) for o in (*cls.options, *pipeline)]


@functools.cache
def options_for(names: tuple[str, ...]) -> tuple[Option, ...]:
    """The core's keys and those of the sinks named."""
    out = _core_options(names)
    for name in names:
        out.extend(sink_section(name))
    return tuple(out)


@functools.cache
def all_options() -> tuple[Option, ...]:
    """The core's keys and those of every registered sink that loads (a plugin
    that does not is reported when it is used: sink_class says why)."""
    names = []
    for name in sink_names():
        try:
            sink_class(name)
        except UsageError as exc:
            log.warning("%s", exc)
            continue
        names.append(name)
    return options_for(listed(tuple(names)))


def example_options() -> tuple[Option, ...]:
    """What config/collector.toml documents: the core and the project's own sinks."""
    return options_for(builtin_names())


def by_key() -> dict[str, Option]:
    return {o.key: o for o in all_options()}


def _flatten(doc: Mapping[str, Any], known: Mapping[str, Option],
             prefix: str = "") -> dict[str, Any]:
    """TOML document → {"section.key": value}; unknown keys are errors."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if key in known:
            out[key] = v
        elif isinstance(v, dict) and not prefix:
            out.update(_flatten(v, known, f"{key}."))
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
    return _flatten(doc, by_key())


class Config(dict[str, Any]):
    """Resolved settings: every key of the option table, checked."""

    def section(self, name: str) -> dict[str, Any]:
        """{"path": ..., ...} for the keys "name.path", ..."""
        prefix = name + "."
        return {k[len(prefix):]: v for k, v in self.items() if k.startswith(prefix)}

    def sink_options(self, name: str) -> dict[str, Any]:
        """The values of the sink's own options: what SinkClass(options) gets."""
        return {k: v for k, v in self.section(name).items() if k not in PIPELINE_KEYS}

    def pipeline(self, name: str) -> PipelineSettings:
        """The core's queue, batching, backpressure and retry settings for the sink."""
        return PipelineSettings.from_settings(self.section(name))


# COLLECTOR_DEBUG is not a config key: it turns on debug logs and tracebacks (cli.main)
_NOT_KEYS = {"COLLECTOR_CONFIG", "COLLECTOR_DEBUG"}


def resolve(
    *,
    config_path: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Merge defaults < file < environment < flags, check every value and the
    cross-key rules (a sink's required keys)."""
    env = os.environ if environ is None else environ
    options = all_options()
    known = {o.key: o for o in options}
    values: dict[str, Any] = {o.key: o.default for o in options}
    if config_path is None and env.get("COLLECTOR_CONFIG"):
        config_path = Path(env["COLLECTOR_CONFIG"])
    if config_path is not None:
        for key, v in load_file(config_path).items():
            values[key] = coerce(known[key], v)
    known_env = {o.env for o in options} | {o.env_alias for o in options if o.env_alias} \
        | _NOT_KEYS
    for name in env:
        if name.startswith("COLLECTOR_") and name not in known_env:
            raise UsageError(f"environment variable {name}: unknown; the COLLECTOR_* variables "
                             "are the config keys upper-cased (see config/collector.toml)")
    for opt in options:
        for var in (opt.env, opt.env_alias):
            if var is None or var not in env:
                continue
            if opt.type == "tables":
                raise UsageError(f"environment variable {var}: {opt.key} rules can only be "
                                 f"given in the config file ([[{opt.key}]] tables)")
            if opt.type == "table":
                values[opt.key] = {**values[opt.key], **parse_items(
                    split_items(env[var]), f"environment variable {var}")}
            else:
                values[opt.key] = coerce(opt, env[var], from_text=True)
    for key, v in (flags or {}).items():
        if v is None:
            continue
        flag_opt = known.get(key)
        if flag_opt is None:
            raise UsageError(f"config key {key}: unknown key; `collector sinks` lists every "
                             "sink's keys")
        if flag_opt.type == "table":
            values[key] = {**values[key], **coerce(flag_opt, v)}
        else:
            values[key] = coerce(flag_opt, v, from_text=isinstance(v, str))
    cfg = Config(values)
    _check_rules(cfg, known)
    return cfg


def parse_sink_options(items: Sequence[str], source: str = "--sink-option") -> dict[str, Any]:
    """NAME.KEY=VALUE items → {"NAME.KEY": "VALUE"} (text, checked by resolve); a
    table option takes NAME.KEY.SUBKEY=VALUE (e.g. kafka.options.acks=all)."""
    known = by_key()
    out: dict[str, Any] = {}
    for n, item in enumerate(items, 1):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or "." not in key:
            raise UsageError(f"{source}: item {n} is not NAME.KEY=VALUE; e.g. "
                             "file.max_bytes=1000000 (`collector sinks` lists the keys)")
        if key in known:
            if known[key].type in ("table", "tables"):
                raise UsageError(f"{source} {key}: a table; give its items as "
                                 f"{key}.KEY=VALUE")
            out[key] = value.strip()
            continue
        table = next((k for k, o in known.items() if o.type == "table"
                      and key.startswith(k + ".") and len(key) > len(k) + 1), None)
        if table is not None:  # NAME.TABLE.SUBKEY: the subkey may itself have dots
            out.setdefault(table, {})[key[len(table) + 1:]] = value.strip()
            continue
        section = key.partition(".")[0]
        if section not in sink_names():
            raise UsageError(f"{source} {key}: no sink is named {section}; the sinks are "
                             + ", ".join(sink_names()))
        raise UsageError(f"config key {key}: unknown key; `collector sinks` lists the keys "
                         f"of the {section} sink")
    return out


def parse_kafka_options(items: list[str] | tuple[str, ...],
                        source: str = "--kafka-option") -> dict[str, str]:
    """KEY=VALUE items of a table option (kept under its old name for callers)."""
    return parse_items(items, source)


split_options = split_items


def _check_rules(cfg: Config, known: Mapping[str, Option]) -> None:
    if not cfg["node"]:
        cfg["node"] = socket.gethostname()
    sinks = cfg["sinks"]
    if not sinks:
        raise UsageError("config key sinks: empty; name at least one of "
                         + ", ".join(sink_names()))
    if len(set(sinks)) != len(sinks):
        raise UsageError(f"config key sinks: {sinks} names a sink twice")
    for name in sinks:
        for opt in sink_class(name).options:
            full = known[f"{name}.{opt.key}"]
            if opt.required and cfg[full.key] in ("", None, [], {}):
                raise required_hint(name, full)
        if f"{name}.schema" in known and not cfg[f"{name}.schema"]:
            cfg[f"{name}.schema"] = cfg["schema"]  # a sink without its own shape: the top-level
    if "stdout" in sinks and cfg["stdout.format"] == "compact" and cfg["stdout.schema"] != "native":
        raise UsageError(f"config key stdout.schema: '{cfg['stdout.schema']}' needs stdout.format "
                         "= json (the compact format shows the native record)")
    from collector.filter import validate  # compiles filter rules and redact patterns

    validate(cfg)


__all__ = ["CORE_OPTIONS", "Config", "Option", "UsageError", "all_options", "bad_value",
           "example_options", "parse_sink_options", "resolve"]
