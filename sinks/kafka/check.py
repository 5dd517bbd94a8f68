"""Is the broker there? `collector check` (a verdict), and the probe at start
(one clear line at once when it is down or refuses us; delivery itself
simply waits)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException, Producer

from collector.errors import UsageError
from sinks.kafka.options import producer_config, redact, secret_values
from sinks.kafka.producer import LibrdkafkaLogger, Rounds, error_text

log = logging.getLogger("collector.kafka")


def probe_broker(rounds: Rounds, topic: str, waiting_in: str, when_full: str) -> None:
    """One metadata request. Its own short-lived producer: polling the delivery
    producer from this thread would run delivery callbacks here, beside the
    worker's. Errors go through the delivery producer's error_cb (same lines,
    same once-per-30-s)."""
    conf: dict[str, Any] = {**rounds.config, "error_cb": rounds.on_error,
                            "logger": LibrdkafkaLogger(rounds.secrets)}
    try:
        probe = Producer(conf)  # the settings the delivery producer was made with
        meta = probe.list_topics(topic, timeout=5)
    except (ValueError, TypeError) as exc:  # not expected: the same settings made one
        log.warning("kafka: could not probe the broker at start: %s",
                    redact(error_text(exc), rounds.secrets))
        return
    except KafkaException as exc:
        probe.poll(0.5)  # serve error_cb: was it refused rather than down?
        if rounds.refused():
            return  # the authentication or TLS line said what to fix
        log.warning("kafka: broker %s not reachable at start (%s); events wait in the %s "
                    "(when_full=%s) and are delivered once it answers",
                    rounds.config["bootstrap.servers"], redact(error_text(exc), rounds.secrets),
                    waiting_in, when_full)
        return
    found = meta.topics.get(topic)
    if found is not None and found.error is not None:
        # Not a warning: most brokers create the topic on the first write. When
        # one does not, every drop says so in its own line.
        log.info("kafka: topic '%s': %s (created on first write if the broker allows it)",
                 topic, redact(found.error.str(), rounds.secrets))


def check_reachable(section: Mapping[str, Any]) -> tuple[bool, str]:
    """`collector check`: can we reach the brokers (with the configured security)?"""
    try:
        config = producer_config(section)
    except UsageError as exc:
        return False, f"kafka sink: {exc}"
    secrets = secret_values(config)
    errors: list[str] = []
    conf: dict[str, Any] = {**config, "error_cb": lambda e: errors.append(e.str()),
                            "logger": LibrdkafkaLogger(secrets)}
    try:
        producer = Producer(conf)
        meta = producer.list_topics(timeout=10)
    except (KafkaException, ValueError, TypeError) as exc:
        why = errors[-1] if errors else error_text(exc)
        return False, redact(f"kafka sink: {config['bootstrap.servers']} not reachable: {why}",
                             secrets)
    topic = section.get("topic") or "process-events"
    line = f"kafka sink: {config['bootstrap.servers']} reachable ({len(meta.brokers)} broker(s)); "
    if topic in meta.topics and meta.topics[topic].error is None:
        line += f"topic {topic} has {len(meta.topics[topic].partitions)} partition(s)"
    else:
        line += f"topic {topic} does not exist yet (it is created on first write only if the " \
                "broker allows auto-creation)"
    return True, redact(line, secrets)
