"""`collector consume`, the command the Kafka sink brings to the CLI (entry point
group process_collector.commands). Only the click declaration lives here:
consume.py (confluent_kafka, fastavro) is imported when the command runs,
not at every `collector` start."""

from __future__ import annotations

import sys

import click

from collector.export.options import parse_items


@click.command("consume")
@click.option("--kafka-bootstrap", required=True, help="HOST:PORT[,...]")
@click.option("--kafka-topic", default="process-events", show_default=True)
@click.option("--kafka-option", "kafka_options", multiple=True, metavar="KEY=VALUE")
@click.option("--schema-registry", default=None, help="Schema Registry URL (Confluent framing).")
@click.option("--from-beginning", is_flag=True, help="Read the topic from its first offset.")
@click.option("--max-events", type=int, default=None, help="Stop after N events.")
@click.option("--timeout", type=float, default=None, help="Stop after SECONDS without a message.")
@click.option("--group", default=None, help="Join this consumer group: the members share the "
              "partitions and commit offsets, so together they print every event once.")
def command(kafka_bootstrap: str, kafka_topic: str, kafka_options: tuple[str, ...],
            schema_registry: str | None, from_beginning: bool, max_events: int | None,
            timeout: float | None, group: str | None) -> None:
    """Read a topic, decode JSON or Avro records, print JSON lines (a SIEM's-eye view)."""
    from sinks.kafka.consume import consume

    sys.exit(consume(
        bootstrap=kafka_bootstrap, topic=kafka_topic,
        options=parse_items(kafka_options, "--kafka-option"), schema_registry=schema_registry,
        from_beginning=from_beginning, max_events=max_events, idle_timeout=timeout,
        group=group,
    ))
