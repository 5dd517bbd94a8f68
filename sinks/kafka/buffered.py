"""kafka.buffer = disk: the worker's batches go to the SQLite buffer
(disk_buffer.py) and count as accepted once that commit is durable; a
sender thread delivers the oldest rows and deletes a row only after its
report. A backlog left by a crash is the oldest data, so it is sent first.

The sender retries with the core's RetryPolicy (kafka.retry_*), with no
elapsed limit: rows stay in the buffer until delivered, however long the
broker is away. Its drops (too_large, ...) are reported with Sink.give_up
from its own thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from collector.export import PartialWriteError, PipelineSettings, TransientSinkError
from sinks.kafka.disk_buffer import DiskBuffer
from sinks.kafka.message import Message
from sinks.kafka.producer import Rounds

log = logging.getLogger("collector.kafka")

Dropped = Callable[[int, str, Sequence[Message]], None]


class BufferSender:
    """The disk buffer's sender thread: oldest rows → Kafka → delete after the report."""

    def __init__(self, buffer: DiskBuffer, rounds: Rounds, pipeline: PipelineSettings,
                 dropped: Dropped, probe: Callable[[], None]) -> None:
        self.buffer = buffer
        self.rounds = rounds
        self.pipeline = pipeline
        self.dropped = dropped
        self.probe = probe
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
            self.rounds.purge_queued()
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

    def _run(self) -> None:
        self.probe()
        retrying = self.pipeline.retry.retrying(self._stop, elapsed_limit=False)
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
        rows = self.buffer.oldest(self.pipeline.batch_events)
        if not rows:
            return 0
        self.inflight_max = rows[-1].id
        messages = [Message(r.value, r.key, r.event_type) for r in rows]
        out = self.rounds.send(messages, cancel=self._cancel)
        retry = set(out.retry)
        self.buffer.delete([r.id for i, r in enumerate(rows) if i not in retry])
        if out.delivered:
            self._progress = time.monotonic()
        for reason, idx in out.drops.items():
            self.dropped(len(idx), reason, [messages[i] for i in idx])
        self.inflight_max = 0
        if retry:
            if not self._stop.is_set():
                self.rounds.resent += len(retry)
            errors = ", ".join(f"{k} x{v}" for k, v in out.errors.items()) or "stopping"
            log.debug("kafka: %d buffered messages to be re-sent (%s)", len(retry), errors)
            raise TransientSinkError(f"{len(retry)} buffered messages not delivered ({errors})")
        return len(rows)


class BufferedPath:
    """write_batch = a durable append; delivery is the sender's."""

    def __init__(self, buffer: DiskBuffer, rounds: Rounds, dropped: Dropped,
                 probe: Callable[[], None]) -> None:
        self.buffer = buffer
        self.rounds = rounds
        self.dropped = dropped
        self.probe = probe
        self.pipeline = PipelineSettings()
        self._sender: BufferSender | None = None

    @property
    def where(self) -> str:
        return f"disk buffer {self.buffer.path}"

    def open(self, pipeline: PipelineSettings) -> None:
        self.pipeline = pipeline
        if self._sender is None:
            if self.buffer.backlog_at_start:
                log.warning("kafka: %d events left in the disk buffer %s by an earlier run are "
                            "sent first", self.buffer.backlog_at_start, self.buffer.path)
            self._sender = BufferSender(self.buffer, self.rounds, pipeline, self.dropped,
                                        self.probe)
            self._sender.start()

    def write_batch(self, batch: Sequence[Message], cancel: threading.Event) -> None:
        assert self._sender is not None
        when_full = self.pipeline.when_full
        rows = [(m.key, m.value, m.event_type) for m in batch]
        stored = self.buffer.append(rows)
        if stored < len(rows) and when_full == "drop-oldest":
            need = sum(len(k) + len(v) for k, v, _ in rows[stored:])
            evicted = self.buffer.evict_oldest(need, self._sender.inflight_max)
            if evicted:
                self.dropped(evicted, "buffer_full", [])
            stored += self.buffer.append(rows[stored:])
        if stored:
            self._sender.wake()
        if stored < len(rows):
            rest = batch[stored:]
            if when_full == "block":
                raise PartialWriteError(f"the disk buffer is full ({self.buffer.bytes} of "
                                        f"{self.buffer.max_bytes} bytes); waiting for Kafka", rest)
            self.dropped(len(rest), "buffer_full", rest)

    def flush(self) -> None:
        if self._sender is not None:
            self._sender.wait_empty(settle=3.0, limit=8.0)

    def close(self) -> None:
        if self._sender is not None:
            self._sender.stop()
        self.rounds.producer.flush(2.0)
        if self.buffer.rows:
            log.warning("kafka: %d events stay in the disk buffer %s; they are sent first at "
                        "the next start", self.buffer.rows, self.buffer.path)
        self.buffer.close()

    def health(self) -> dict[str, Any]:
        return {"backlog": self.buffer.rows, "backlog_bytes": self.buffer.bytes}
