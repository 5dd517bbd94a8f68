"""The `collector` command (click): run, check, schemas, sinks, and the
commands sinks bring (consume, from the Kafka sink).

main() is the one place errors become exit codes: a CollectorError prints
its one-line message on stderr and exits with the class's code; usage
errors exit 2; nothing prints a traceback unless COLLECTOR_DEBUG=1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click

from collector import config as cfgmod
from collector.errors import CollectorError, UsageError
from collector.export.options import SHAPE_NAMES, Option, parse_items
from collector.export.registry import sink_class, sink_names

COMMANDS_GROUP = "process_collector.commands"


def _flags(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="process-collector")
def cli() -> None:
    """Watch every process exec and exit with eBPF; ship the records to
    stdout (JSON lines), rotated files, or Kafka."""


def _sink_flags() -> list[tuple[str, Option]]:
    """(parameter name, qualified option) of every sink option with a dedicated flag."""
    out = []
    for name in sink_names():
        try:
            cls = sink_class(name)
        except UsageError:
            continue  # a plugin that does not load: `--sink` it to see why
        for opt in cls.options:
            if opt.flag:
                out.append((f"{name}_{opt.key}".replace("-", "_"), opt.qualified(name)))
    return out


def _with_sink_flags(f: Callable[..., None]) -> Callable[..., None]:
    """Adds the sinks' dedicated flags (--file-path, --kafka-bootstrap, ...)."""
    for param, opt in reversed(_SINK_FLAGS):
        sink = opt.key.partition(".")[0]
        help_text = f"{sink} sink: {opt.doc}. Env: {opt.env}."
        assert opt.flag is not None
        if opt.type == "table":
            f = click.option(opt.flag, param, multiple=True, metavar=opt.metavar or "KEY=VALUE",
                             help=help_text + " Repeat for several.")(f)
        elif opt.choices:
            f = click.option(opt.flag, param, type=click.Choice(opt.choices), default=None,
                             help=help_text)(f)
        else:
            kind = {"int": int, "float": float}.get(opt.type, str)
            f = click.option(opt.flag, param, type=kind, default=None, metavar=opt.metavar,
                             help=help_text)(f)
    return f


_SINK_FLAGS = _sink_flags()

# --backend on run and check: the choices are capture.backend's (config.CORE_OPTIONS owns them)
_backend_option = click.option(
    "--backend", type=click.Choice(cfgmod.BY_KEY["capture.backend"].choices or ()), default=None,
    help="Probe backend: core (CO-RE, default), bcc, or auto (CO-RE when it loads, else bcc). "
    "Env: COLLECTOR_BACKEND.")


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML config file (see config/collector.toml). Env: COLLECTOR_CONFIG.")
@click.option("--sink", "sinks", multiple=True, type=click.Choice(sink_names()),
              help="Where events go; repeat for several. Default: stdout. Env: COLLECTOR_SINK.")
@click.option("--sink-option", "sink_options", multiple=True, metavar="NAME.KEY=VALUE",
              help="Any sink option, e.g. file.max_bytes=1000000 (`collector sinks` lists "
              "them); repeat for several. Dedicated flags win.")
@click.option("--duration", type=float, default=None,
              help="Stop cleanly after SECONDS. Env: COLLECTOR_DURATION.")
@click.option("--schema", "shape", type=click.Choice(SHAPE_NAMES), default=None,
              help="Record shape: native (default), ocsf (OCSF 1.8.0 Process Activity) or ecs "
              "(ECS 9.4.0), for every sink. Env: COLLECTOR_SCHEMA.")
@click.option("--stats-interval", type=float, default=None,
              help="Print counters on stderr every N seconds. Env: COLLECTOR_STATS_INTERVAL.")
@click.option("--node", default=None, help="Node name in events (default: host name).")
@click.option("--args-max", type=int, default=None,
              help="argv bytes captured per exec (default "
              f"{cfgmod.BY_KEY['capture.args_max_bytes'].default}, max "
              f"{cfgmod.BY_KEY['capture.args_max_bytes'].maximum:.0f}).")
@click.option("--procfs-events/--no-procfs-events", default=None,
              help="Emit a process_exec (flag procfs) for each process running at start "
              "(default on; the cache is seeded either way).")
@click.option("--ancestors", type=int, default=None,
              help="Exec events carry this many ancestors beyond the parent (default 0).")
@click.option("--namespaces/--no-namespaces", default=None,
              help="Add namespace inode numbers (read from /proc at exec; default off).")
@click.option("--metrics-address", default=None, metavar="HOST:PORT",
              help="Serve /metrics (Prometheus) and /healthz there (default off). "
              "Env: COLLECTOR_METRICS_ADDRESS.")
@_backend_option
@_with_sink_flags
def run(config_path: Path | None, sinks: tuple[str, ...], sink_options: tuple[str, ...],
        duration: float | None, shape: str | None, stats_interval: float | None, node: str | None,
        args_max: int | None, procfs_events: bool | None, ancestors: int | None,
        namespaces: bool | None, metrics_address: str | None, backend: str | None,
        **sink_flags: Any) -> None:
    """Capture process exec/exit events and send them to the sinks."""
    flags: dict[str, Any] = cfgmod.parse_sink_options(sink_options)
    for param, opt in _SINK_FLAGS:
        value = sink_flags.get(param)
        if opt.type == "table":
            value = parse_items(value or (), opt.flag or opt.key) or None
            if value:
                value = {**flags.get(opt.key, {}), **value}
        if value is not None:
            flags[opt.key] = value
    flags.update(_flags(**{
        "sinks": list(sinks) or None,
        "duration": duration,
        "schema": shape,
        "stats_interval": stats_interval,
        "node": node,
        "capture.args_max_bytes": args_max,
        "enrich.procfs_events": procfs_events,
        "enrich.ancestors": ancestors,
        "enrich.namespaces": namespaces,
        "metrics.address": metrics_address,
        "capture.backend": backend,
    }))
    cfg = cfgmod.resolve(config_path=config_path, flags=flags)
    from collector.pipeline.runner import Collector

    sys.exit(Collector(cfg).run())


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Also check the sinks this config names.")
@_backend_option
def check(config_path: Path | None, backend: str | None) -> None:
    """Preflight: privileges, BTF, libbpf, the BPF object, bcc, sinks. Exit 0 when all is
    well for the chosen backend ('--' marks a problem of the other one)."""
    from collector.preflight import run_checks

    resolved = cfgmod.resolve(config_path=config_path, flags=_flags(**{"capture.backend": backend}))
    cfg = resolved if config_path else None
    problems = 0
    for ok, line in run_checks(cfg, resolved["capture.backend"], resolved["capture.bcc_offsets"]):
        click.echo(f"{ {True: 'ok ', False: 'FAIL', None: '-- '}[ok]} {line}")
        problems += ok is False
    if problems:
        click.echo(f"{problems} problem(s) found", err=True)
        sys.exit(1)


@cli.command()
@click.option("--schema", "shape", type=click.Choice(SHAPE_NAMES), default="native",
              show_default=True, help="The record shape whose schema to print.")
def schemas(shape: str) -> None:
    """Print the Avro schema of a record shape (schemas/*.avsc)."""
    from collector import shapes

    click.echo(json.dumps(shapes.get(shape).raw_schema, indent=2))


@cli.command("example-config", hidden=True)
def example_config() -> None:
    """Print the documented example configuration (config/collector.toml)."""
    from collector.config_doc import example_toml

    click.echo(example_toml(), nl=False)


@cli.command("sinks")
def sinks_command() -> None:
    """List the registered sinks (built-in and plugins) with their options."""
    from collector.config import sink_section
    from collector.export.registry import listed

    loadable = []
    for name in sink_names():
        try:
            sink_class(name)
            loadable.append(name)
        except UsageError as exc:
            click.echo(f"{name}: cannot be loaded: {exc}")
    for name in listed(tuple(loadable)):
        cls = sink_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        click.echo(f"{name}  ({cls.__module__}:{cls.__qualname__}){'  ' + doc[0] if doc else ''}")
        for opt in sink_section(name):
            extra = f" [{' | '.join(opt.choices)}]" if opt.choices else ""
            unit = f" ({opt.unit})" if opt.unit else ""
            flag = f" {opt.flag}" if opt.flag else ""
            click.echo(f"  {opt.key}  {opt.type}{unit} = {opt.default!r}{extra}{flag}")
            click.echo(f"      {opt.doc}. Env: {opt.env}")


def _add_plugin_commands() -> None:
    """Commands that sinks bring (entry point group process_collector.commands),
    e.g. `collector consume` from the Kafka sink."""
    for ep in entry_points(group=COMMANDS_GROUP):
        if ep.name in cli.commands:
            continue
        try:
            command = ep.load()
        except Exception as exc:  # one broken plugin must not take the CLI down
            logging.getLogger("collector").warning("command %s: cannot load %s: %s", ep.name,
                                                   ep.value, exc)
            continue
        if isinstance(command, click.Command):
            cli.add_command(command, ep.name)


_add_plugin_commands()


def main() -> None:
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("COLLECTOR_DEBUG") else logging.WARNING,
        format="collector: %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        cli.main(prog_name="collector", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        msg = exc.format_message().replace("\n", " ")
        click.echo(f"collector: {msg}", err=True)
        sys.exit(exc.exit_code)
    except CollectorError as exc:
        if os.environ.get("COLLECTOR_DEBUG"):
            raise
        click.echo(f"collector: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["UsageError", "cli", "main"]
