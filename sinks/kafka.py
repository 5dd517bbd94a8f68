"""The Kafka sink: an event counts as delivered only when its delivery report
says the broker has it (acks=all), never when librdkafka merely accepted it.

Layers: `encode` (value, key = exec_id, event type) → `write_batch` → a
delivery round (`_Delivery.send`: produce every message, wait for every
report) → each report is delivered, retry, or drop(reason).

- kafka.buffer = memory (default): write_batch is one delivery round.
  Messages whose report is retriable come back to the worker as
  PartialWriteError(remaining), so its tenacity loop re-sends exactly
  those: a delivered message is never sent twice.
- kafka.buffer = disk: write_batch appends to SQLite (sinks.disk_buffer)
  and returns once that commit is durable (the event is accepted); a sender
  thread owned by the sink runs delivery rounds from the oldest rows and
  deletes a row only after its report. A backlog left by a crash is the
  oldest data, so it is sent first.

Drops (each counted through the worker's `count_dropped` hook with a reason
and reported in one line): too_large (over the broker's size limit; a
message is tried alone before it is declared too large, since the broker
rejects whole batches), unknown_topic, not_authorized, invalid_topic,
buffer_full (disk buffer full under drop-newest/drop-oldest). A full local
librdkafka queue (BufferError) is waited out: backpressure, not loss.

Producer defaults (any of them can be overridden with kafka.options):
- enable.idempotence + acks=all: the broker de-duplicates librdkafka's own
  re-sends, so a broker restart mid-batch neither loses nor doubles events.
- message.timeout.ms = 300000: librdkafka keeps retrying through outages
  of up to 5 minutes by itself; the sink re-sends only messages whose report
  is a failure, so an outage shorter than that causes no duplicate. After
  it, re-sending a timed-out message may duplicate it (counted: `resent`).
- compression.type = lz4: of the codecs measured (bench/kafka_compression.py,
  figures in the README) the cheapest in CPU that still compresses 9-13x;
  zstd stores about half the bytes in bursts for more CPU per event.
- linger.ms = 5: each round ends with flush(), which sends at once, so
  linger only groups the produce() calls of one round.
- reconnect.backoff.max.ms = 2000: after an outage the producer notices
  the broker is back within ~2 s instead of up to 10 s.
"""

from __future__ import annotations

import functools
import logging
import re
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from tenacity import Retrying, retry_if_exception_type, wait_exponential_jitter

from collector import shapes
from collector.encode import avro
from collector.errors import UsageError
from sinks.base import Event, PartialWriteError, Sink, TransientSinkError
from sinks.disk_buffer import DiskBuffer

log = logging.getLogger("collector.kafka")
rdlog = logging.getLogger("collector.kafka.librdkafka")

PRODUCER_DEFAULTS: dict[str, str] = {
    "enable.idempotence": "true",
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": "5",
    "message.timeout.ms": "300000",
    "reconnect.backoff.max.ms": "2000",
    "client.id": "process-collector",
}
#: settings that are callbacks in the Python client, or set by other keys
RESERVED_OPTIONS = {
    "bootstrap.servers": "set the brokers with kafka.bootstrap (--kafka-bootstrap)",
    "error_cb": "a callback, set by the sink", "logger": "a callback, set by the sink",
    "on_delivery": "a callback, set by the sink", "stats_cb": "a callback",
    "throttle_cb": "a callback", "oauth_cb": "a callback",
}
CONTENT_TYPES = {
    "json": "application/json",
    "avro-single-object": "application/vnd.apache.avro.single-object",
    "avro": "application/vnd.confluent.avro",
}
_SECRET_KEY = re.compile(r"password|secret|jaas|oauthbearer\.config|ssl\.key\.pem|private", re.I)

# Reports that will not get better by re-sending: drop (counted) and go on.
_DROP_REASONS: dict[int, str] = {
    KafkaError.MSG_SIZE_TOO_LARGE: "too_large",
    KafkaError.RECORD_LIST_TOO_LARGE: "too_large",
    KafkaError.INVALID_MSG_SIZE: "too_large",
    KafkaError.UNKNOWN_TOPIC_OR_PART: "unknown_topic",
    KafkaError._UNKNOWN_TOPIC: "unknown_topic",
    KafkaError._UNKNOWN_PARTITION: "unknown_topic",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "not_authorized",
    KafkaError.TOPIC_EXCEPTION: "invalid_topic",
    KafkaError.INVALID_RECORD: "invalid_record",
}
_PENDING = object()  # a report not in yet
Headers = dict[str, list[tuple[str, str | bytes | None]]]  # event type → message headers


def secret_values(options: dict[str, str]) -> list[str]:
    """Values of settings that must never be printed (passwords, keys)."""
    return sorted({v for k, v in options.items() if _SECRET_KEY.search(k) and v}, key=len,
                  reverse=True)


def redact(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        text = text.replace(s, "*****")
    return text


class Record(bytes):
    """A message value that also carries its key and event type. A bytes
    subclass, so the worker's batch_bytes limit counts it like any payload."""

    key: bytes
    event_type: str


def make_record(value: bytes, key: bytes, event_type: str) -> Record:
    rec = Record(value)
    rec.key = key
    rec.event_type = event_type
    return rec


def producer_config(section: dict[str, Any]) -> dict[str, str]:
    """librdkafka settings: our defaults, then kafka.options (checked by name)."""
    options: dict[str, str] = dict(section.get("options") or {})
    for key in options:
        if key in RESERVED_OPTIONS:
            raise UsageError(f"config key kafka.options.{key}: not allowed here; "
                             f"{RESERVED_OPTIONS[key]}")
    return {**PRODUCER_DEFAULTS, **options, "bootstrap.servers": section["bootstrap"]}


class _Round:
    """The reports of one delivery round, filled in by librdkafka's callbacks."""

    __slots__ = ("refused", "results", "waiting")

    def __init__(self, n: int) -> None:
        self.results: list[Any] = [_PENDING] * n
        self.waiting = 0
        self.refused: set[int] = set()  # refused by produce() itself, judged alone

    def report(self, i: int, err: KafkaError | None, _msg: Any) -> None:
        self.results[i] = err
        self.waiting -= 1


class _Outcome:
    """What one round did: indexes to retry, and drops by reason."""

    def __init__(self) -> None:
        self.delivered = 0
        self.retry: list[int] = []
        self.drops: dict[str, list[int]] = {}
        self.errors: Counter[str] = Counter()  # retriable error names, for the retry message


class _Delivery:
    """One producer and the produce-then-wait-for-every-report round."""

    def __init__(self, config: dict[str, str], topic: str, headers: Headers,
                 secrets: list[str]) -> None:
        self.config = config
        self.topic = topic
        self.headers = headers
        self.secrets = secrets
        self.acked = 0
        self.resent = 0  # messages re-sent after a failed report
        self.queue_full_waits = 0
        self.outage_since: float | None = None
        self._fatal: str | None = None
        self._last_logged: dict[str, float] = {}
        self.producer = self._new_producer()

    def _new_producer(self) -> Producer:
        conf: dict[str, Any] = dict(self.config)
        conf["error_cb"] = self._on_error
        conf["logger"] = LibrdkafkaLogger(self.secrets)
        try:
            return Producer(conf)
        except (KafkaException, ValueError, TypeError) as exc:
            raise UsageError(f"config key kafka.options: {redact(_text(exc), self.secrets)}") from None

    # -- errors from librdkafka's background threads -------------------------

    def _on_error(self, err: KafkaError) -> None:
        code, text = err.code(), redact(err.str(), self.secrets)
        if err.fatal():
            self._fatal = text
            log.error("kafka: producer fatal error: %s; a new producer takes over", text)
            return
        if code in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE):
            if self.outage_since is None:
                self.outage_since = time.monotonic()
            if self.refused():
                return  # the consequence of a refusal already reported, not an outage
            self._log_every("unreachable", 30.0, "kafka: broker %s unreachable (%s); events wait "
                            "and are sent when it answers", self.config["bootstrap.servers"], text)
        elif code == KafkaError._AUTHENTICATION:
            self._log_every("auth", 30.0, "kafka: authentication failed: %s; check sasl.mechanism, "
                            "sasl.username and sasl.password in kafka.options", text)
        elif code == KafkaError._SSL:
            self._log_every("ssl", 30.0, "kafka: TLS failed: %s; check ssl.ca.location and the "
                            "broker's certificate", text)
        else:
            self._log_every(err.name(), 30.0, "kafka: %s: %s", err.name(), text)

    def refused(self, within: float = 60.0) -> bool:
        """The broker answered but refused us (authentication or TLS) lately."""
        since = time.monotonic() - within
        return any(self._last_logged.get(k, -1e9) >= since for k in ("auth", "ssl"))

    def _log_every(self, what: str, period: float, fmt: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_logged.get(what, -1e9) >= period:
            self._last_logged[what] = now
            log.warning(fmt, *args)

    # -- one round ---------------------------------------------------------------

    def send(self, items: Sequence[Record], cancel: threading.Event | None = None) -> _Outcome:
        """Produce items and wait for every report (or cancel); classify them."""
        rnd = self._produce_and_wait(items, cancel)
        if self._fatal is not None:
            self._restart_producer()
        out = _Outcome()
        alone: list[int] = []
        for i, err in enumerate(rnd.results):
            if err is None:
                out.delivered += 1
            elif err is _PENDING:
                out.retry.append(i)
            else:
                reason = _DROP_REASONS.get(err.code())
                if reason == "too_large" and len(items) > 1 and i not in rnd.refused:
                    alone.append(i)  # the broker judges whole batches: try it by itself
                elif reason is not None:
                    out.drops.setdefault(reason, []).append(i)
                else:
                    out.retry.append(i)
                    out.errors[err.name()] += 1
        for i in alone:
            err = self._produce_and_wait([items[i]], cancel).results[0]
            if err is None:
                out.delivered += 1
            elif err is not _PENDING and _DROP_REASONS.get(err.code()) is not None:
                out.drops.setdefault(_DROP_REASONS[err.code()], []).append(i)
            else:
                out.retry.append(i)
                out.errors["cancelled" if err is _PENDING else err.name()] += 1
        self.acked += out.delivered
        if out.delivered and self.outage_since is not None:
            log.warning("kafka: delivering again after %.0fs", time.monotonic() - self.outage_since)
            self.outage_since = None
            self._last_logged.pop("unreachable", None)
        return out

    def _produce_and_wait(self, items: Sequence[Record], cancel: threading.Event | None) -> _Round:
        rnd = _Round(len(items))
        produce = self.producer.produce
        for i, rec in enumerate(items):
            while True:
                try:
                    produce(self.topic, rec, rec.key, headers=self.headers[rec.event_type],
                            on_delivery=functools.partial(rnd.report, i))
                    rnd.waiting += 1
                    break
                except BufferError:  # librdkafka's queue is full: wait, never drop
                    if cancel is not None and cancel.is_set():
                        break  # stays pending: counted by the caller, never sent
                    self.queue_full_waits += 1
                    self.producer.poll(0.1)
                except KafkaException as exc:  # refused before sending, e.g. too large
                    rnd.results[i] = exc.args[0]
                    rnd.refused.add(i)
                    break
        while rnd.waiting > 0:
            if cancel is not None and cancel.is_set():
                break
            self.producer.flush(0.5)
        return rnd

    def _restart_producer(self) -> None:
        """After a fatal error (idempotence state lost) the producer is unusable."""
        old, self.producer, self._fatal = self.producer, self._new_producer(), None
        old.purge()
        old.flush(0)


class LibrdkafkaLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """librdkafka's own log lines: debug only (error_cb reports what matters),
    with secrets removed."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__(rdlog, {})
        self.secrets = secrets

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if rdlog.isEnabledFor(logging.DEBUG):
            text = (str(msg) % args) if args else str(msg)
            rdlog.debug("librdkafka: %s", redact(text, self.secrets))


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.str() if isinstance(arg, KafkaError) else str(arg)


class KafkaSink(Sink):
    """See the module docstring."""

    name = "kafka"
    #: set by the SinkWorker: count items given up as dropped (not written)
    count_dropped: Callable[[int, str], None] | None = None

    def __init__(self, *, bootstrap: str, topic: str, fmt: str = "json",
                 options: dict[str, str] | None = None, schema_registry: str = "",
                 buffer: str = "memory", buffer_path: str = "", buffer_max_bytes: int = 1 << 30,
                 when_full: str = "block", batch_events: int = 1000,
                 registry_settings: dict[str, str] | None = None, schema: str = "native") -> None:
        self.shape = shapes.get(schema)  # the record shape of the values (collector.shapes)
        self._json = self.shape.json_encoder()
        self._datum = self.shape.datum_encoder()
        section = {"bootstrap": bootstrap, "options": options or {}}
        self.config = producer_config(section)
        self.secrets = secret_values(self.config)
        self.topic = topic
        self.format = fmt
        if fmt not in CONTENT_TYPES:
            raise UsageError(f"config key kafka.format: '{fmt}' is not valid; expected one of "
                             + ", ".join(CONTENT_TYPES))
        if fmt == "avro" and not schema_registry:
            raise UsageError("config key kafka.schema_registry: required with kafka.format = "
                             "avro (the Confluent wire format)")
        self.registry_url = schema_registry if fmt == "avro" else ""
        #: SchemaRegistry's user, password, token, ca, cert, key (kafka.schema_registry_*)
        self.registry_settings = dict(registry_settings or {})
        self.when_full = when_full
        self.batch_events = batch_events
        self.schema_id: int | None = None
        self._fingerprint = self.shape.fingerprint.hex()
        self.delivery = _Delivery(self.config, topic, self._headers(), self.secrets)
        self.buffer = DiskBuffer(buffer_path, buffer_max_bytes) if buffer == "disk" else None
        self.drops: Counter[str] = Counter()  # totals, also for health()
        self._unreported: Counter[str] = Counter()  # sender drops not yet told to the worker
        self._lock = threading.Lock()
        self._sender: _BufferSender | None = None
        self._probed = False
        self._cancel = threading.Event()  # the shutdown deadline passed: stop waiting

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> KafkaSink:
        return cls(bootstrap=section["bootstrap"], topic=section["topic"], fmt=section["format"],
                   options=section.get("options") or {},
                   schema_registry=section.get("schema_registry") or "",
                   buffer=section.get("buffer", "memory"),
                   buffer_path=section.get("buffer_path") or "",
                   buffer_max_bytes=section.get("buffer_max_bytes", 1 << 30),
                   when_full=section.get("when_full", "block"),
                   batch_events=section.get("batch_events", 1000),
                   registry_settings={k: section.get(f"schema_registry_{k}") or "" for k in
                                      ("user", "password", "token", "ca", "cert", "key")},
                   schema=section.get("schema") or "native")

    def _headers(self) -> Headers:
        kind = self.format
        if kind == "avro":
            identity = [("schema-id", str(self.schema_id or 0).encode())]
        elif kind == "avro-single-object":
            identity = [("schema-fingerprint", self._fingerprint.encode())]
        else:
            identity = []
        base = [("content-type", CONTENT_TYPES[kind].encode()), *identity]
        return {t: [("event-type", t.encode()), *base] for t in ("process_exec", "process_exit")}

    # -- the Sink interface ------------------------------------------------------

    def open(self) -> None:
        """Runs at start on the main thread (and again on the worker thread if it
        raised a TransientSinkError): keep it quick. An unreachable broker is not
        an error here: a probe thread says so at once (or that the broker refused
        our credentials or certificate), even before any event, and delivery waits."""
        if self.registry_url and self.schema_id is None:
            self._register_schema()
        if self.buffer is None and not self._probed:
            self._probed = True
            threading.Thread(target=self._probe_broker, name="kafka-probe", daemon=True).start()
        if self.buffer is not None and self._sender is None:
            if self.buffer.backlog_at_start:
                log.warning("kafka: %d events left in the disk buffer %s by an earlier run are "
                            "sent first", self.buffer.backlog_at_start, self.buffer.path)
            self._sender = _BufferSender(self)
            self._sender.start()

    def _register_schema(self) -> None:
        """Register under <topic>-value; unreachable → TransientSinkError, so the
        worker retries opening while events queue; refused → fatal SinkError."""
        from sinks.schema_registry import SchemaRegistry

        subject = f"{self.topic}-value"
        rs = self.registry_settings
        registry = SchemaRegistry(self.registry_url, user=rs.get("user", ""),
                                  password=rs.get("password", ""), token=rs.get("token", ""),
                                  ca=rs.get("ca", ""), cert=rs.get("cert", ""),
                                  key=rs.get("key", ""))
        self.schema_id = registry.register(subject, self.shape.raw_schema)
        log.info("kafka: schema registered under %s with id %s", subject, self.schema_id)
        self.delivery.headers = self._headers()

    def _probe_broker(self) -> None:
        """One metadata request, so that a broker that is down, or refuses us, gets
        one clear line at once (delivery itself simply waits for it). Its own
        short-lived producer: polling the delivery producer from this thread would
        run delivery callbacks here, beside the worker's."""
        conf: dict[str, Any] = {**self.config,
                                "error_cb": self.delivery._on_error,  # same lines, same dedup
                                "logger": LibrdkafkaLogger(self.secrets)}
        try:
            probe = Producer(conf)  # the settings the delivery producer was made with
            meta = probe.list_topics(self.topic, timeout=5)
        except (ValueError, TypeError) as exc:  # not expected: the same settings made one
            log.warning("kafka: could not probe the broker at start: %s",
                        redact(_text(exc), self.secrets))
            return
        except KafkaException as exc:
            probe.poll(0.5)  # serve error_cb: was it refused rather than down?
            if self.delivery.refused():
                return  # the authentication or TLS line said what to fix
            where = "disk buffer " + str(self.buffer.path) if self.buffer else "memory queue"
            log.warning("kafka: broker %s not reachable at start (%s); events wait in the %s "
                        "(when_full=%s) and are delivered once it answers",
                        self.config["bootstrap.servers"], redact(_text(exc), self.secrets), where,
                        self.when_full)
            return
        topic = meta.topics.get(self.topic)
        if topic is not None and topic.error is not None:
            # Not a warning: most brokers create the topic on the first write. When
            # one does not, every drop says so in its own line.
            log.info("kafka: topic '%s': %s (created on first write if the broker allows it)",
                     self.topic, redact(topic.error.str(), self.secrets))

    def encode(self, event: Event) -> Record:
        if self.format == "json":
            value = self._json(event)[:-1]  # the stdout line; an exact-size copy
        elif self.format == "avro-single-object":
            value = avro.SINGLE_OBJECT_MAGIC + self.shape.fingerprint + self._datum(event)
        else:  # avro: open() registered the schema before any event is encoded
            assert self.schema_id is not None
            value = avro.CONFLUENT_MAGIC + struct.pack(">I", self.schema_id) + self._datum(event)
        return make_record(value, event["process"]["exec_id"].encode(), event["event_type"])

    def write_batch(self, batch: Sequence[Any]) -> None:
        if self.buffer is not None:
            self._append_to_buffer(batch)
            return
        out = self.delivery.send(batch, cancel=self._cancel)
        if self._cancel.is_set():
            # given up on: those not yet sent must not be sent later by close()'s
            # flush, or an event counted as not delivered would arrive after all
            self.delivery.producer.purge(in_queue=True, in_flight=False)
        for reason, idx in out.drops.items():
            self._dropped(len(idx), reason, [batch[i] for i in idx])
        if out.retry:
            if not self._cancel.is_set():
                self.delivery.resent += len(out.retry)
            errors = ", ".join(f"{k} x{v}" for k, v in out.errors.items()) or "not delivered"
            raise PartialWriteError(f"{len(out.retry)} of {len(batch)} messages to be re-sent "
                                    f"({errors})", [batch[i] for i in out.retry])

    def flush(self) -> None:
        if self._sender is not None:
            self._sender.wait_empty(settle=3.0, limit=8.0)
        self._report_sender_drops()

    def cancel(self) -> None:
        """Stop waiting for reports; the messages without one are re-raised as
        not written (the worker counts them as shutdown_timeout drops)."""
        self._cancel.set()

    def close(self) -> None:
        if self._sender is not None:
            self._sender.stop()
            self._report_sender_drops()
        producer = self.delivery.producer
        left = producer.flush(2.0)
        if self.buffer is not None:
            if self.buffer.rows:
                log.warning("kafka: %d events stay in the disk buffer %s; they are sent first at "
                            "the next start", self.buffer.rows, self.buffer.path)
            self.buffer.close()
        elif left:
            log.error("kafka: %d messages were still unacknowledged at close", left)

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"acked": self.delivery.acked, "resent": self.delivery.resent,
                               "queue_full_waits": self.delivery.queue_full_waits}
        if self.buffer is not None:
            out["backlog"] = self.buffer.rows
            out["backlog_bytes"] = self.buffer.bytes
        return out

    # -- drops -------------------------------------------------------------------

    def _dropped(self, count: int, reason: str, items: Sequence[bytes], *, worker: bool = True) -> None:
        """Count and report items given up for a reason (one line per batch)."""
        with self._lock:
            self.drops[reason] += count
            if not worker:
                self._unreported[reason] += count
        if worker and self.count_dropped is not None:
            self.count_dropped(count, reason)
        largest = max((len(i) for i in items), default=0)
        log.error("kafka: dropped %d events: %s", count, self._why(reason, largest))

    def _why(self, reason: str, largest: int) -> str:
        return {
            "too_large": f"larger than the broker accepts (largest {largest} bytes); raise the "
                         "topic's max.message.bytes or lower capture.args_max_bytes",
            "unknown_topic": f"topic '{self.topic}' does not exist and the broker does not "
                             "create it; create the topic or fix kafka.topic",
            "not_authorized": f"not authorized to write to topic '{self.topic}'; grant WRITE "
                              "(and IDEMPOTENT_WRITE) to the collector's principal",
            "invalid_topic": f"'{self.topic}' is not a valid topic name; fix kafka.topic",
            "invalid_record": "the broker rejected the record as invalid",
            "buffer_full": f"the disk buffer is full (kafka.buffer_max_bytes; policy "
                           f"{self.when_full})",
        }.get(reason, reason)

    def _report_sender_drops(self) -> None:
        """Tell the worker (on its own thread) about drops made by the sender."""
        with self._lock:
            pending, self._unreported = self._unreported, Counter()
        if self.count_dropped is not None:
            for reason, n in pending.items():
                self.count_dropped(n, reason)

    # -- disk buffer -------------------------------------------------------------

    def _append_to_buffer(self, batch: Sequence[Any]) -> None:
        assert self.buffer is not None and self._sender is not None
        self._report_sender_drops()
        rows = [(r.key, bytes(r), r.event_type) for r in batch]
        stored = self.buffer.append(rows)
        if stored < len(rows) and self.when_full == "drop-oldest":
            need = sum(len(k) + len(v) for k, v, _ in rows[stored:])
            evicted = self.buffer.evict_oldest(need, self._sender.inflight_max)
            if evicted:
                self._dropped(evicted, "buffer_full", [])
            stored += self.buffer.append(rows[stored:])
        if stored:
            self._sender.wake()
        if stored < len(rows):
            rest = batch[stored:]
            if self.when_full == "block":
                raise PartialWriteError(f"the disk buffer is full ({self.buffer.bytes} of "
                                        f"{self.buffer.max_bytes} bytes); waiting for Kafka", rest)
            self._dropped(len(rest), "buffer_full", rest)


class _BufferSender:
    """The disk buffer's sender thread: oldest rows → Kafka → delete after the report."""

    def __init__(self, sink: KafkaSink) -> None:
        assert sink.buffer is not None
        self.sink = sink
        self.buffer = sink.buffer
        self.inflight_max = 0  # rows up to this id are being sent: not evictable
        self._stop = threading.Event()  # no new rounds
        self._cancel = threading.Event()  # stop waiting for the current round's reports
        self._wake = threading.Event()
        self._progress = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="kafka-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Let the current round finish for a few seconds, then give up on it: its
        rows stay in the buffer (a message that was in flight may then be sent
        again at the next start: at-least-once across restarts)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(5.0)
        if self._thread.is_alive():
            self.sink.delivery.producer.purge(in_queue=True, in_flight=False)
            self._thread.join(2.0)
            self._cancel.set()
            self._thread.join(5.0)

    def wait_empty(self, settle: float, limit: float) -> None:
        """Give the sender a chance to empty the buffer: until it is empty, or no
        row was delivered for `settle` seconds, or `limit` seconds passed."""
        end = time.monotonic() + limit
        self._progress = time.monotonic()
        while self.buffer.rows and time.monotonic() < end and self._thread.is_alive():
            if time.monotonic() - self._progress > settle:
                break
            time.sleep(0.05)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _run(self) -> None:
        self.sink._probe_broker()
        retrying = Retrying(retry=retry_if_exception_type(TransientSinkError),
                            wait=wait_exponential_jitter(initial=0.1, max=10.0, jitter=0.1),
                            stop=lambda _s: self._stop.is_set(), sleep=self._sleep,
                            reraise=True)
        while not self._stop.is_set():
            try:
                for attempt in retrying:
                    with attempt:
                        sent = self._round()
            except TransientSinkError:
                break  # stopping
            except Exception:  # keep the sink honest: a crash here must be visible
                log.exception("kafka: the disk buffer sender failed; events stay in the buffer")
                return
            if not sent:
                self._wake.wait(0.5)
                self._wake.clear()

    def _round(self) -> int:
        rows = self.buffer.oldest(self.sink.batch_events)
        if not rows:
            return 0
        self.inflight_max = rows[-1].id
        records = [make_record(r.value, r.key, r.event_type) for r in rows]
        out = self.sink.delivery.send(records, cancel=self._cancel)
        retry = set(out.retry)
        done = [r.id for i, r in enumerate(rows) if i not in retry]
        self.buffer.delete(done)
        if out.delivered:
            self._progress = time.monotonic()
        for reason, idx in out.drops.items():
            self.sink._dropped(len(idx), reason, [records[i] for i in idx], worker=False)
        self.inflight_max = 0
        if retry:
            if not self._stop.is_set():
                self.sink.delivery.resent += len(retry)
            errors = ", ".join(f"{k} x{v}" for k, v in out.errors.items()) or "stopping"
            log.debug("kafka: %d buffered messages to be re-sent (%s)", len(retry), errors)
            raise TransientSinkError(f"{len(retry)} buffered messages not delivered ({errors})")
        return len(rows)


def check_reachable(cfg: dict[str, Any]) -> tuple[bool, str]:
    """`collector check`: can we reach the brokers (with the configured security)?"""
    section = {k[len("kafka."):]: v for k, v in cfg.items() if k.startswith("kafka.")}
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
        why = errors[-1] if errors else _text(exc)
        return False, redact(f"kafka sink: {config['bootstrap.servers']} not reachable: {why}", secrets)
    topic = section.get("topic") or "process-events"
    line = f"kafka sink: {config['bootstrap.servers']} reachable ({len(meta.brokers)} broker(s)); "
    if topic in meta.topics and meta.topics[topic].error is None:
        line += f"topic {topic} has {len(meta.topics[topic].partitions)} partition(s)"
    else:
        line += f"topic {topic} does not exist yet (it is created on first write only if the " \
                "broker allows auto-creation)"
    return True, redact(line, secrets)
