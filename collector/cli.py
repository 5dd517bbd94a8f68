"""The `collector` command (click): run, check, schemas, consume.

main() is the one place errors become exit codes: a CollectorError prints
its one-line message on stderr and exits with the class's code; usage
errors exit 2; nothing prints a traceback unless COLLECTOR_DEBUG=1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from collector import config as cfgmod
from collector.errors import CollectorError, UsageError


def _flags(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="process-collector")
def cli() -> None:
    """Watch every process exec and exit with eBPF; ship the records to
    stdout (JSON lines), rotated files, or Kafka."""


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML config file (see config/collector.toml). Env: COLLECTOR_CONFIG.")
@click.option("--sink", "sinks", multiple=True, type=click.Choice(cfgmod.SINK_NAMES),
              help="Where events go; repeat for several. Default: stdout. Env: COLLECTOR_SINK.")
@click.option("--format", "fmt", type=click.Choice(["json", "compact"]), default=None,
              help="stdout format: json lines (default) or compact. Env: COLLECTOR_FORMAT.")
@click.option("--duration", type=float, default=None,
              help="Stop cleanly after SECONDS. Env: COLLECTOR_DURATION.")
@click.option("--stats-interval", type=float, default=None,
              help="Print counters on stderr every N seconds. Env: COLLECTOR_STATS_INTERVAL.")
@click.option("--node", default=None, help="Node name in events (default: host name).")
@click.option("--args-max", type=int, default=None,
              help="argv bytes captured per exec (default 16384, max 32767).")
@click.option("--file-path", default=None, help="File sink: output file. Env: COLLECTOR_FILE_PATH.")
@click.option("--file-format", type=click.Choice(["jsonl", "avro"]), default=None,
              help="File sink: jsonl (default) or avro.")
@click.option("--kafka-bootstrap", default=None, help="Kafka sink: HOST:PORT[,...].")
@click.option("--kafka-topic", default=None, help="Kafka sink: topic (default process-events).")
@click.option("--kafka-format", type=click.Choice(["avro", "json"]), default=None,
              help="Kafka sink: message value format (default avro).")
@click.option("--kafka-option", "kafka_options", multiple=True, metavar="KEY=VALUE",
              help="Kafka sink: a librdkafka setting; repeat for several.")
@click.option("--schema-registry", default=None, help="Kafka sink: Schema Registry URL.")
@click.option("--buffer", type=click.Choice(["memory", "disk"]), default=None,
              help="Kafka sink: memory (default) or disk buffer.")
@click.option("--buffer-path", default=None, help="Kafka sink: disk buffer directory.")
@click.option("--buffer-max-bytes", type=int, default=None, help="Kafka sink: disk buffer limit.")
@click.option("--procfs-events/--no-procfs-events", default=None,
              help="Emit a process_exec (flag procfs) for each process running at start "
              "(default on; the cache is seeded either way).")
@click.option("--ancestors", type=int, default=None,
              help="Exec events carry this many ancestors beyond the parent (default 0).")
@click.option("--namespaces/--no-namespaces", default=None,
              help="Add namespace inode numbers (read from /proc at exec; default off).")
@click.option("--backend", type=click.Choice(["core", "bcc", "auto"]), default=None,
              help="Probe backend: core (CO-RE, default), bcc, or auto (CO-RE when it loads, "
              "else bcc). Env: COLLECTOR_BACKEND.")
def run(config_path: Path | None, sinks: tuple[str, ...], fmt: str | None, duration: float | None,
        stats_interval: float | None, node: str | None, args_max: int | None,
        file_path: str | None, file_format: str | None, kafka_bootstrap: str | None,
        kafka_topic: str | None, kafka_format: str | None, kafka_options: tuple[str, ...],
        schema_registry: str | None, buffer: str | None, buffer_path: str | None,
        buffer_max_bytes: int | None, procfs_events: bool | None, ancestors: int | None,
        namespaces: bool | None, backend: str | None) -> None:
    """Capture process exec/exit events and send them to the sinks."""
    cfg = cfgmod.resolve(
        config_path=config_path,
        flags=_flags(**{
            "sinks": list(sinks) or None,
            "stdout.format": fmt,
            "duration": duration,
            "stats_interval": stats_interval,
            "node": node,
            "capture.args_max_bytes": args_max,
            "file.path": file_path,
            "file.format": file_format,
            "kafka.bootstrap": kafka_bootstrap,
            "kafka.topic": kafka_topic,
            "kafka.format": kafka_format,
            "kafka.options": cfgmod.parse_kafka_options(kafka_options) or None,
            "kafka.schema_registry": schema_registry,
            "kafka.buffer": buffer,
            "kafka.buffer_path": buffer_path,
            "kafka.buffer_max_bytes": buffer_max_bytes,
            "enrich.procfs_events": procfs_events,
            "enrich.ancestors": ancestors,
            "enrich.namespaces": namespaces,
            "capture.backend": backend,
        }),
    )
    from collector.pipeline.runner import Collector

    sys.exit(Collector(cfg).run())


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Also check the sinks this config names.")
@click.option("--backend", type=click.Choice(["core", "bcc", "auto"]), default=None,
              help="The backend whose problems count (both are reported). Env: COLLECTOR_BACKEND.")
def check(config_path: Path | None, backend: str | None) -> None:
    """Preflight: privileges, BTF, libbpf, the BPF object, bcc, sinks. Exit 0 when all is
    well for the chosen backend ('--' marks a problem of the other one)."""
    from collector.preflight import run_checks

    resolved = cfgmod.resolve(config_path=config_path, flags=_flags(**{"capture.backend": backend}))
    cfg = resolved if config_path else None
    problems = 0
    for ok, line in run_checks(cfg, resolved["capture.backend"]):
        click.echo(f"{ {True: 'ok ', False: 'FAIL', None: '-- '}[ok]} {line}")
        problems += ok is False
    if problems:
        click.echo(f"{problems} problem(s) found", err=True)
        sys.exit(1)


@cli.command()
def schemas() -> None:
    """Print the Avro schema(s) of the event records."""
    from collector.schema import raw_schema

    click.echo(json.dumps(raw_schema(), indent=2))


@cli.command("example-config", hidden=True)
def example_config() -> None:
    """Print the documented example configuration (config/collector.toml)."""
    from collector.config_doc import example_toml

    click.echo(example_toml(), nl=False)


@cli.command()
@click.option("--kafka-bootstrap", required=True, help="HOST:PORT[,...]")
@click.option("--kafka-topic", default="process-events", show_default=True)
@click.option("--kafka-option", "kafka_options", multiple=True, metavar="KEY=VALUE")
@click.option("--schema-registry", default=None, help="Schema Registry URL (Confluent framing).")
@click.option("--from-beginning", is_flag=True, help="Read the topic from its first offset.")
@click.option("--max-events", type=int, default=None, help="Stop after N events.")
@click.option("--timeout", type=float, default=None, help="Stop after SECONDS without a message.")
def consume(kafka_bootstrap: str, kafka_topic: str, kafka_options: tuple[str, ...],
            schema_registry: str | None, from_beginning: bool, max_events: int | None,
            timeout: float | None) -> None:
    """Read a topic, decode JSON or Avro records, print JSON lines (a SIEM's-eye view)."""
    from sinks.kafka_consume import consume as do_consume

    sys.exit(do_consume(
        bootstrap=kafka_bootstrap, topic=kafka_topic,
        options=cfgmod.parse_kafka_options(kafka_options), schema_registry=schema_registry,
        from_beginning=from_beginning, max_events=max_events, idle_timeout=timeout,
    ))


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
