"""The Kafka sink as the core sees it: options → encode (message.py) →
write_batch through one of two paths (direct.py: a delivery round per
batch; buffered.py: a durable SQLite append, delivered by a sender thread)
→ delivery rounds on one producer (producer.py), whose reports are
classified by delivery.py.

An event counts as delivered only when its delivery report says the broker
has it (acks=all), never when librdkafka merely accepted it. Drops (each
reported with Sink.give_up and one line naming the fix): too_large (a
message is tried alone before it is declared too large, since the broker
rejects whole batches), unknown_topic, not_authorized, invalid_topic,
buffer_full (disk buffer full under drop-newest/drop-oldest). A full local
librdkafka queue (BufferError) is waited out: backpressure, not loss.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from collector.errors import UsageError
from collector.export import Event, Sink
from sinks.kafka.message import Framing, Message
from sinks.kafka.options import (
    OPTIONS,
    REGISTRY_SETTINGS,
    missing_registry,
    producer_config,
    secret_values,
)

if TYPE_CHECKING:
    from sinks.kafka.buffered import BufferedPath
    from sinks.kafka.direct import DirectPath

log = logging.getLogger("collector.kafka")

# The layers that need confluent_kafka (librdkafka: ~12 MiB of RSS) are imported
# when a KafkaSink is made, not with this module: every `collector` start reads
# the options of every registered sink, and most runs have no Kafka sink.


class KafkaSink(Sink):
    """Events to a Kafka topic, delivered when the broker acknowledges them."""

    name = "kafka"
    options = OPTIONS
    pipeline_defaults: ClassVar[Mapping[str, int]] = {"batch_timeout_ms": 0, "batch_events": 1000}
    listing_order = 2

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        from sinks.kafka.buffered import BufferedPath
        from sinks.kafka.direct import DirectPath
        from sinks.kafka.disk_buffer import DiskBuffer
        from sinks.kafka.producer import Rounds

        s = self.settings
        if s["buffer"] == "disk" and not s["buffer_path"]:
            raise UsageError("config key kafka.buffer_path: required with kafka.buffer = disk "
                             "(--buffer-path DIR)")
        missing = missing_registry(s)
        if missing:
            raise UsageError(missing)
        self.config = producer_config(s)
        self.secrets = secret_values(self.config)
        self.topic = s["topic"]
        self.framing = Framing(s["format"], s["schema"] or "native")
        self.registry_url = s["schema_registry"] if s["format"] == "avro" else ""
        self.delivery = Rounds(self.config, self.topic, self.framing.headers(),
                               self.secrets)
        self.drops: Counter[str] = Counter()  # totals, also for health()
        self._lock = threading.Lock()
        self._cancel = threading.Event()  # the shutdown deadline passed: stop waiting
        self.path: DirectPath | BufferedPath
        if s["buffer"] == "disk":
            buffer = DiskBuffer(s["buffer_path"], s["buffer_max_bytes"])
            self.path = BufferedPath(buffer, self.delivery, self._dropped, self._probe)
        else:
            self.path = DirectPath(self.delivery, self._dropped, self._probe)
        self.encode = self.framing.encode  # type: ignore[method-assign]  # a call less per event

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> Iterator[tuple[bool | None, str]]:
        from sinks.kafka import message, producer
        from sinks.kafka.check import check_reachable

        missing = missing_registry(options)
        if missing:
            yield False, f"kafka sink: {missing}"
        yield check_reachable(options)
        if message.NATIVE and producer.NATIVE:
            yield True, "kafka sink: C message and produce loop loaded"
        else:  # informational: the Python reference does the same work
            yield None, ("kafka sink: sinks.kafka._produce not built for this Python; the "
                         "Python code does the work, at more CPU per message (install from "
                         "source with a C compiler and the Python headers)")

    @property
    def schema_id(self) -> int | None:
        return self.framing.schema_id

    # -- the Sink interface ---------------------------------------------------------------

    def open(self) -> None:
        """Runs at start on the main thread (and again on the worker thread if it
        raised a TransientSinkError): keep it quick."""
        if self.registry_url and self.framing.schema_id is None:
            self._register_schema()
        self.path.open(self.pipeline)

    def encode(self, event: Event) -> Message:
        return self.framing.encode(event)

    def write_batch(self, batch: Sequence[Any]) -> None:
        self.path.write_batch(batch, self._cancel)

    def flush(self) -> None:
        self.path.flush()

    def cancel(self) -> None:
        """Stop waiting for reports; the messages without one are re-raised as
        not written (the core counts them as shutdown_timeout drops)."""
        self._cancel.set()

    def close(self) -> None:
        self.path.close()

    def health(self) -> dict[str, Any]:
        return {"acked": self.delivery.acked, "resent": self.delivery.resent,
                "queue_full_waits": self.delivery.queue_full_waits,
                "producer_retries": self.delivery.producer_retries,
                "leader_changes": self.delivery.leader_changes, **self.path.health()}

    # -- helpers of both paths ------------------------------------------------------------

    def _register_schema(self) -> None:
        """Register under <topic>-value; unreachable → TransientSinkError, so the
        core retries opening while events queue; refused → fatal SinkError."""
        from sinks.schema_registry import SchemaRegistry

        subject = f"{self.topic}-value"
        settings = {k: self.settings[f"schema_registry_{k}"] for k in REGISTRY_SETTINGS}
        registry = SchemaRegistry(self.registry_url, **settings)
        self.framing.schema_id = registry.register(subject, self.framing.shape.raw_schema)
        log.info("kafka: schema registered under %s with id %s", subject, self.framing.schema_id)
        self.delivery.headers = self.framing.headers()

    def _probe(self) -> None:
        from sinks.kafka.check import probe_broker

        probe_broker(self.delivery, self.topic, self.path.where, self.pipeline.when_full)

    def _dropped(self, count: int, reason: str, items: Sequence[Message]) -> None:
        """Count (Sink.give_up: dropped, not written) and report items given up for
        a reason, one line per batch. The worker's thread or the sender's."""
        from sinks.kafka.delivery import why_dropped

        with self._lock:
            self.drops[reason] += count
        self.give_up(count, reason)
        largest = max((len(i.value) for i in items), default=0)
        log.error("kafka: dropped %d events: %s", count,
                  why_dropped(reason, self.topic, largest, self.pipeline.when_full))
