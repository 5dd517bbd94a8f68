"""One librdkafka producer and its delivery rounds: produce every message,
wait for every report (or a cancel), classify them (delivery.classify).

The producer's lifecycle is here too: librdkafka's background errors
(error_cb: unreachable, authentication, TLS; each said once per 30 s, with
secrets removed), and a new producer after a fatal error (the idempotence
state is then lost and the old one unusable). `producer_factory` is the
confluent_kafka.Producer; tests pass a fake with produce/poll/flush/purge.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from collector.errors import UsageError
from sinks.kafka.delivery import DROP_REASONS, PENDING, Outcome, classify
from sinks.kafka.message import Headers, Message
from sinks.kafka.native import native_part
from sinks.kafka.options import redact
from sinks.kafka.producer_stats import ProducerStats

log = logging.getLogger("collector.kafka")
rdlog = logging.getLogger("collector.kafka.librdkafka")
_BROKER_NAME = re.compile(r"^(\S+:\d+/\d+): ")  # librdkafka's "host:port/node-id: ..."


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


def error_text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.str() if isinstance(arg, KafkaError) else str(arg)


# confluent-kafka's produce() takes its arguments by position in this order:
# topic, value, key, partition (-1: the partitioner's), callback (the delivery
# report; on_delivery is its alias, next), timestamp (0: now), headers. By keyword
# they cost 0.4 µs of its 1.4 per message (bench/per_call_costs.py); the order is
# held to the library's by tests/unit/test_kafka_produce_by_position.py.
PRODUCE_BY_POSITION = ("topic", "value", "key", "partition", "callback", "on_delivery",
                       "timestamp", "headers")


REFUSALS = (BufferError, KafkaException)  # produce() refusing one message: see _produce_refused


def produce_all_py(produce: Callable[..., Any], topic: str, items: Sequence[Message], start: int,
                   callbacks: list[Callable[[KafkaError | None, Any], None]], headers: Headers,
                   refusals: tuple[type[BaseException], ...]) -> tuple[int, BaseException] | None:
    """produce() of items[start:], message i with callbacks[i] and its event type's
    headers, by position; at the first refusal (one of `refusals`), (its index, the
    exception), else None. The reference of sinks.kafka._produce.produce_all (C:
    no interpreter loop per message), and produce_all when it is not built."""
    for i in range(start, len(items)):
        msg = items[i]
        try:
            produce(topic, msg.value, msg.key, -1, callbacks[i], None, 0, headers[msg.event_type])
        except refusals as exc:
            return i, exc
    return None


_NATIVE: Callable[..., tuple[int, BaseException] | None] | None = native_part("produce_all")
NATIVE = _NATIVE is not None  # for tests, the benches and `collector check`
produce_all = _NATIVE if _NATIVE is not None else produce_all_py


class _Round:
    """The reports of one round. The producer reports failures only
    (delivery.report.only.error, see sinks.kafka.options): a message is delivered
    when the producer's queue has emptied (flush returned 0) with no report for
    it; until then it is PENDING."""

    __slots__ = ("callbacks", "refused", "reported", "results")

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.refused: set[int] = set()  # refused by produce() itself, judged alone
        self.reported = False  # a report came in (a failure: see the class docstring)
        # the report callback of message i, made once and kept for the next rounds:
        # a partial per message cost 0.5 µs of produce()'s 1.9 (measured); reusing
        # them is safe once a round has settled (no report of it can come later)
        self.callbacks: list[Callable[[KafkaError | None, Any], None]] = []

    def begin(self, n: int) -> None:
        self.results = [PENDING] * n
        self.refused = set()
        self.reported = False
        callbacks = self.callbacks
        for i in range(len(callbacks), n):
            callbacks.append(functools.partial(self.report, i))

    def report(self, i: int, err: KafkaError | None, _msg: Any) -> None:
        self.results[i] = err
        self.reported = True

    def settled(self) -> None:
        """Every message of the round left the producer: those not reported failed
        were acknowledged (acks=all). With no report and no refusal (the usual
        round) that is all of them, without a Python loop over the round."""
        results = self.results
        if not self.reported and not self.refused:
            self.results = [None] * len(results)
            return
        for i, err in enumerate(results):
            if err is PENDING:
                results[i] = None


class Rounds:
    """One producer and the produce-then-wait-for-every-report round."""

    def __init__(self, config: dict[str, Any], topic: str, headers: Headers,
                 secrets: list[str],
                 producer_factory: Callable[[dict[str, Any]], Any] = Producer) -> None:
        self.config = config
        self.topic = topic
        self.headers = headers
        self.secrets = secrets
        self.acked = 0
        self.resent = 0  # messages re-sent after a failed report
        self.queue_full_waits = 0
        self.outage_since: float | None = None
        self._factory = producer_factory
        self._fatal: str | None = None
        self._last_logged: dict[str, float] = {}
        self._retired_retries = self._retired_leader_changes = 0  # of producers replaced
        self.producer_stats = ProducerStats(self.on_broker_lost)
        self.producer = self._new_producer()
        self._settled: _Round | None = None  # the last round, if it settled: reused

    def _new_producer(self) -> Any:
        conf: dict[str, Any] = dict(self.config)
        conf["error_cb"] = self.on_error
        conf["logger"] = LibrdkafkaLogger(self.secrets)
        conf["stats_cb"] = self.producer_stats
        try:
            return self._factory(conf)
        except (KafkaException, ValueError, TypeError) as exc:
            raise UsageError(f"config key kafka.options: "
                             f"{redact(error_text(exc), self.secrets)}") from None

    # -- errors from librdkafka's background threads -------------------------------------

    def on_error(self, err: KafkaError) -> None:
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
            # librdkafka names the one broker it lost ("host:port/id: ..."); in a
            # cluster the others take over its partitions, so say which one it was
            lost = _BROKER_NAME.match(text)
            several = "," in self.config["bootstrap.servers"]
            if code != KafkaError._ALL_BROKERS_DOWN and lost and several:
                self._log_every(f"unreachable {lost.group(1)}", 30.0, "kafka: broker %s "
                                "unreachable (%s); its partitions wait for a new leader "
                                "(counted as producer_retries, not drops)", lost.group(1), text)
            else:
                self._log_every("unreachable", 30.0, "kafka: broker %s unreachable (%s); events "
                                "wait and are sent when it answers",
                                self.config["bootstrap.servers"], text)
        elif code == KafkaError._AUTHENTICATION:
            self._log_every("auth", 30.0, "kafka: authentication failed: %s; check sasl.mechanism, "
                            "sasl.username and sasl.password in kafka.options", text)
        elif code == KafkaError._SSL:
            self._log_every("ssl", 30.0, "kafka: TLS failed: %s; check ssl.ca.location and the "
                            "broker's certificate", text)
        else:
            self._log_every(err.name(), 30.0, "kafka: %s: %s", err.name(), text)

    def on_broker_lost(self, name: str, state: str) -> None:
        """From the statistics: a node's connection is no longer UP (librdkafka's
        error_cb may never say so, see producer_stats)."""
        if "," in self.config["bootstrap.servers"] and not self.refused():
            if self.outage_since is None:
                self.outage_since = time.monotonic()
            self._log_every(f"unreachable {name}", 30.0, "kafka: broker %s unreachable "
                            "(connection lost, now %s); its partitions wait for a new leader "
                            "(counted as producer_retries, not drops)", name, state)

    def refused(self, within: float = 60.0) -> bool:
        """The broker answered but refused us (authentication or TLS) lately."""
        since = time.monotonic() - within
        return any(self._last_logged.get(k, -1e9) >= since for k in ("auth", "ssl"))

    def _log_every(self, what: str, period: float, fmt: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_logged.get(what, -1e9) >= period:
            self._last_logged[what] = now
            log.warning(fmt, *args)

    # -- one round ------------------------------------------------------------------------

    def send(self, items: Sequence[Message], cancel: threading.Event | None = None) -> Outcome:
        """Produce items and wait for every report (or cancel); classify them."""
        rnd = self._produce_and_wait(items, cancel)
        if self._fatal is not None:
            self._restart_producer()
        out = classify(rnd.results, rnd.refused)
        for i in out.alone:
            err = self._produce_and_wait([items[i]], cancel).results[0]
            if err is None:
                out.delivered += 1
            elif err is not PENDING and DROP_REASONS.get(err.code()) is not None:
                out.drops.setdefault(DROP_REASONS[err.code()], []).append(i)
            else:
                out.retry.append(i)
                out.errors["cancelled" if err is PENDING else err.name()] += 1
        self.acked += out.delivered
        if out.delivered and self.outage_since is not None:
            log.warning("kafka: delivering again after %.0fs", time.monotonic() - self.outage_since)
            self.outage_since = None
            for key in [k for k in self._last_logged if k.startswith("unreachable")]:
                del self._last_logged[key]
        return out

    def _produce_and_wait(self, items: Sequence[Message], cancel: threading.Event | None) -> _Round:
        rnd = self._settled if self._settled is not None else _Round()
        self._settled = None  # until this round has settled too
        rnd.begin(len(items))
        produce, callbacks, topic, headers = self.producer.produce, rnd.callbacks, self.topic, self.headers
        start = 0
        while (refused := produce_all(produce, topic, items, start, callbacks, headers,
                                      REFUSALS)) is not None:
            i, exc = refused  # the rare case, out of the loop
            self._produce_refused(rnd, i, items[i], exc, cancel)
            start = i + 1
        # flush() serves the reports and returns what is still queued or in flight;
        # only the producer's own rounds put messages in it, one round at a time
        while self.producer.flush(0.5):
            if cancel is not None and cancel.is_set():
                return rnd  # what was not reported stays PENDING: re-sent, or counted
        rnd.settled()
        self._settled = rnd
        return rnd

    def _produce_refused(self, rnd: _Round, i: int, msg: Message, exc: BaseException,
                         cancel: threading.Event | None) -> None:
        """produce() of message i raised exc: a full queue is waited for (never a
        drop); a refusal (e.g. too large) is its result."""
        while True:
            if isinstance(exc, KafkaException):  # refused before sending
                rnd.results[i] = exc.args[0]
                rnd.refused.add(i)
                return
            if cancel is not None and cancel.is_set():
                return  # stays pending: counted by the caller, never sent
            self.queue_full_waits += 1  # BufferError: librdkafka's queue is full
            self.producer.poll(0.1)
            try:
                self.producer.produce(self.topic, msg.value, msg.key, -1, rnd.callbacks[i],
                                      None, 0, self.headers[msg.event_type])
                return
            except (BufferError, KafkaException) as again:
                exc = again

    @property
    def producer_retries(self) -> int:
        """Messages librdkafka re-sent by itself (see sinks.kafka.producer_stats)."""
        return self._retired_retries + self.producer_stats.retries

    @property
    def leader_changes(self) -> int:
        """Partition leader moves seen in librdkafka's statistics, all producers."""
        return self._retired_leader_changes + self.producer_stats.leader_changes

    def _restart_producer(self) -> None:
        """After a fatal error (idempotence state lost) the producer is unusable."""
        self._retired_retries += self.producer_stats.retries
        self._retired_leader_changes += self.producer_stats.leader_changes
        self.producer_stats = ProducerStats(self.on_broker_lost)
        old, self.producer, self._fatal = self.producer, self._new_producer(), None
        self._settled = None  # the old producer's reports must not reach a reused round
        old.purge()
        old.flush(0)

    def purge_queued(self) -> None:
        """Messages not yet sent are never sent (the round was given up on)."""
        self.producer.purge(in_queue=True, in_flight=False)
