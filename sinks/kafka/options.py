"""The Kafka sink's options, its producer defaults, and the librdkafka
settings it refuses or keeps secret.

Producer defaults (any of them can be overridden with kafka.options):
- enable.idempotence + acks=all: the broker de-duplicates librdkafka's own
  re-sends, so a broker restart mid-batch neither loses nor doubles events.
- message.timeout.ms = 300000: librdkafka keeps retrying through outages
  of up to 5 minutes by itself; the sink re-sends only messages whose report
  is a failure (the core's RetryPolicy, kafka.retry_*), so an outage shorter
  than that causes no duplicate. After it, re-sending a timed-out message
  may duplicate it (counted: `resent`).
- compression.type = lz4: of the codecs measured (bench/kafka_compression.py,
  figures in the README) the cheapest in CPU that still compresses 9-13x;
  zstd stores about half the bytes in bursts for more CPU per event.
- linger.ms = 5: each round ends with flush(), which sends at once, so
  linger only groups the produce() calls of one round.
- reconnect.backoff.max.ms = 2000: after an outage the producer notices
  the broker is back within ~2 s instead of up to 10 s.
- statistics.interval.ms = 1000: librdkafka's own re-sends during a failover
  (leader change, NOT_ENOUGH_REPLICAS) end in a "delivered" report, so they
  are counted from its statistics (sinks.kafka.producer_stats) and shown as
  producer_retries= and leader_changes= on the stats line, never as drops.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from collector.errors import UsageError
from collector.export import SCHEMA_OPTION, Option
from sinks.kafka.producer_stats import STATISTICS_INTERVAL_MS


def _host_ports(v: str) -> str | None:
    if not v:
        return None
    for part in v.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            return "HOST:PORT[,HOST:PORT...]"
    return None


#: message values: json (default), avro = Confluent wire format (needs a registry),
#: avro-single-object (Avro single-object encoding)
FORMATS = ("json", "avro", "avro-single-object")

OPTIONS = (
    Option("bootstrap", "str", "", "broker list HOST:PORT[,...] (required with --sink "
           "kafka)", check=_host_ports, required=True, flag="--kafka-bootstrap",
           metavar="HOST:PORT"),
    Option("topic", "str", "process-events", "topic events are produced to",
           flag="--kafka-topic"),
    Option("format", "str", "json", "message value: json (the JSON line), avro (the "
           "Confluent wire format; needs schema_registry) or avro-single-object (Avro "
           "single-object encoding, for consumers that hold the schema)", choices=FORMATS,
           flag="--kafka-format"),
    Option("options", "table", {}, "librdkafka settings passed through (KEY = VALUE), "
           "e.g. security.protocol, sasl.mechanism, compression.type", flag="--kafka-option",
           metavar="KEY=VALUE", env_alias="COLLECTOR_KAFKA_OPTION"),
    Option("schema_registry", "str", "", "Schema Registry URL; with avro, use the "
           "Confluent wire format and register the schema under <topic>-value",
           flag="--schema-registry"),
    Option("schema_registry_user", "str", "", "Schema Registry: HTTP basic auth user "
           "(instead of user:password@ in the URL)"),
    Option("schema_registry_password", "str", "", "Schema Registry: basic auth password "
           "(never printed; e.g. from COLLECTOR_KAFKA_SCHEMA_REGISTRY_PASSWORD)"),
    Option("schema_registry_token", "str", "", "Schema Registry: bearer token sent as "
           "Authorization: Bearer (never printed; exclusive with the user)"),
    Option("schema_registry_ca", "str", "", "Schema Registry: PEM file of the CA(s) that "
           "signed its certificate (default: the system's)"),
    Option("schema_registry_cert", "str", "", "Schema Registry: PEM client certificate "
           "(TLS client authentication)"),
    Option("schema_registry_key", "str", "", "Schema Registry: PEM key of the client "
           "certificate (unless the certificate file holds it)"),
    Option("buffer", "str", "memory", "memory, or disk (durable across restarts)",
           choices=("memory", "disk"), flag="--buffer"),
    Option("buffer_path", "str", "", "directory of the disk buffer (required with "
           "buffer = disk)", flag="--buffer-path", metavar="DIR"),
    Option("buffer_max_bytes", "int", 1 << 30, "disk buffer size limit (bytes); beyond "
           "it when_full applies", unit="bytes", minimum=4096, flag="--buffer-max-bytes"),
    SCHEMA_OPTION,
)
def missing_registry(settings: Mapping[str, Any]) -> str | None:
    """Why these settings cannot run (the Confluent format without a registry),
    or None; one text for the start-up error and `collector check`."""
    if settings.get("format") == "avro" and not settings.get("schema_registry"):
        return ("config key kafka.schema_registry: required with kafka.format = avro (the "
                "Confluent wire format; --schema-registry URL), or use --kafka-format "
                "avro-single-object or json")
    return None


#: what SchemaRegistry takes besides the URL (kafka.schema_registry_<name>)
REGISTRY_SETTINGS = ("user", "password", "token", "ca", "cert", "key")

PRODUCER_DEFAULTS: dict[str, str] = {
    "enable.idempotence": "true",
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": "5",
    "message.timeout.ms": "300000",
    "reconnect.backoff.max.ms": "2000",
    "statistics.interval.ms": STATISTICS_INTERVAL_MS,
    "client.id": "process-collector",
}
#: settings of the Python client itself, typed (librdkafka's are strings): a report
#: for a failed message only, so a delivered one costs no Message object and no
#: Python call; a round's messages with no report once the producer's queue is
#: empty were acknowledged (sinks.kafka.producer)
CLIENT_DEFAULTS: dict[str, Any] = {"delivery.report.only.error": True}
#: settings that are callbacks in the Python client, or set by other keys
RESERVED_OPTIONS = {
    "bootstrap.servers": "set the brokers with kafka.bootstrap (--kafka-bootstrap)",
    "error_cb": "a callback, set by the sink", "logger": "a callback, set by the sink",
    "on_delivery": "a callback, set by the sink", "stats_cb": "a callback, set by the sink",
    "throttle_cb": "a callback", "oauth_cb": "a callback",
}
_SECRET_KEY = re.compile(r"password|secret|jaas|oauthbearer\.config|ssl\.key\.pem|private", re.I)


def producer_config(section: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka settings: our defaults, then kafka.options (checked by name)."""
    options: dict[str, str] = dict(section.get("options") or {})
    for key in options:
        if key in RESERVED_OPTIONS:
            raise UsageError(f"config key kafka.options.{key}: not allowed here; "
                             f"{RESERVED_OPTIONS[key]}")
    return {**PRODUCER_DEFAULTS, **CLIENT_DEFAULTS, **options,
            "bootstrap.servers": section["bootstrap"]}


def secret_values(options: Mapping[str, str]) -> list[str]:
    """Values of settings that must never be printed (passwords, keys)."""
    return sorted({v for k, v in options.items() if _SECRET_KEY.search(k) and v}, key=len,
                  reverse=True)


def redact(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        text = text.replace(s, "*****")
    return text
