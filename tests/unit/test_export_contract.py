"""The sink contract as the core applies it: give-ups counted as dropped,
failures kept as exceptions (not strings), one RetryPolicy."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from collector.export import OutputClosed, PipelineSettings, RetryPolicy, Sink
from collector.export.testing import MemorySink
from collector.pipeline.worker import SinkWorker

FAST = PipelineSettings(batch_events=10, retry=RetryPolicy(0.01, 0.05, 5.0))


class GivingUp(MemorySink):
    """Gives up the item 'big' of every batch (as the Kafka sink does for too_large),
    and 2 more from another thread (as its disk-buffer sender does)."""

    def write_batch(self, batch: Sequence[Any]) -> None:
        kept = [x for x in batch if x["n"] != "big"]
        if len(kept) < len(batch):
            self.give_up(len(batch) - len(kept), "too_large")
        super().write_batch(kept)

    def flush(self) -> None:
        t = threading.Thread(target=self.give_up, args=(2, "buffer_full"))
        t.start()
        t.join()


def test_given_up_items_are_dropped_not_written() -> None:
    sink = GivingUp()
    w = SinkWorker(sink, FAST)
    for n in (1, "big", 2, 3):
        w.put({"n": n})
    w.start()
    w.drain(5.0)
    st = w.stats
    assert [e["n"] for e in sink.events] == [1, 2, 3]
    assert dict(st.dropped) == {"too_large": 1, "buffer_full": 2}
    assert st.written == 4 - 1 - 2 and st.queued == 4
    assert st.undelivered == 0


def test_a_fatal_failure_is_kept_as_its_exception() -> None:
    err = OutputClosed("stdout was closed by its reader")
    sink = MemorySink("stdout", fail_times=-1, error=err)
    w = SinkWorker(sink, FAST)
    w.start()
    w.put({"n": 1})
    deadline = time.monotonic() + 5
    while w.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.error is err  # the runner decides by type, never by the words
    assert w.stats.failed == "stdout was closed by its reader"
    assert not w.drain(1.0)


def test_the_sink_is_given_the_cores_settings_before_it_opens() -> None:
    seen: list[PipelineSettings] = []

    class Opening(MemorySink):
        def open(self) -> None:
            seen.append(self.pipeline)

    w = SinkWorker(Opening(), FAST)
    w.start()
    assert w.drain(2.0)
    assert seen == [FAST]  # e.g. the Kafka sender retries with FAST.retry


def test_retry_policy_backs_off_and_a_stop_cuts_it_short() -> None:
    policy = RetryPolicy(0.05, 0.2, 60.0)
    stop = threading.Event()
    tries: list[float] = []

    def flaky() -> None:
        tries.append(time.monotonic())
        from collector.export import TransientSinkError

        if len(tries) == 3:
            stop.set()
        raise TransientSinkError("down")

    t0 = time.monotonic()
    try:
        for attempt in policy.retrying(stop, elapsed_limit=False):
            with attempt:
                flaky()
    except Exception as exc:
        assert type(exc).__name__ == "TransientSinkError"
    assert len(tries) == 3  # stopped after the third, not retried for ever
    assert tries[1] - tries[0] >= 0.05 and tries[2] - tries[1] >= 0.1  # doubling
    assert time.monotonic() - t0 < 2.0


def test_a_plugin_needs_only_name_options_encode_and_write_batch() -> None:
    from collector.export import Option

    class Minimal(Sink):
        name = "minimal"
        options = (Option("prefix", "str", ">", "put before each line"),)

        def __init__(self, options: dict[str, Any] | None = None) -> None:
            super().__init__(options)
            self.lines: list[bytes] = []

        def encode(self, event: dict[str, Any]) -> bytes:
            return f"{self.settings['prefix']}{event['n']}\n".encode()

        def write_batch(self, batch: Sequence[Any]) -> None:
            self.lines.extend(batch)

    sink = Minimal({"prefix": "#"})
    w = SinkWorker(sink, FAST)
    w.start()
    w.put_many([{"n": i} for i in range(3)])
    assert w.drain(2.0)
    assert sink.lines == [b"#0\n", b"#1\n", b"#2\n"]
    assert w.stats.written == 3 and w.stats.batches == 1
