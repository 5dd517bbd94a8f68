"""The reader's poll timer: the quiet interval while polls bring few records,
the busy one after a poll of BUSY_RECORDS or more, back to quiet at the first
smaller poll; 0 for the last drain; every record of every poll still emitted.
Driven through Reader's own loop with a probe that plays back scripted polls
and records the wait it was asked for."""

from __future__ import annotations

import threading
import time
from typing import Any

from collector.clock import BootClock
from collector.enrich.containers import CgroupResolver
from collector.enrich.process_cache import ProcessCache
from collector.pipeline.poll import BUSY_RECORDS, next_poll_ms
from collector.pipeline.reader import Reader
from collector.probe.layout import EXIT_EVENT, EventKind

PID0 = 6_000_000  # above any pid_max: /proc knows none of them


def _exits(n: int, first: int) -> list[bytes]:
    t = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - 10**9
    return [EXIT_EVENT.pack(EventKind.EXIT, EXIT_EVENT.size, t + i, PID0 + first + i,
                            PID0 + first + i, 1, 0, t, 1, b"true".ljust(16, b"\0"), 0, 0)
            for i in range(n)]


class ScriptedProbe:
    """Returns the scripted polls in order, then empty ones; stops the reader
    once the script is played."""

    def __init__(self, script: list[int]) -> None:
        self.polls: list[list[bytes]] = []
        at = 0
        for n in script:
            self.polls.append(_exits(n, at))
            at += n
        self.waits: list[int] = []
        self.played = threading.Event()

    def read(self, timeout_ms: int) -> list[bytes]:
        self.waits.append(timeout_ms)
        if self.polls:
            return self.polls.pop(0)
        self.played.set()
        return []

    def kernel_drops(self) -> dict[str, int]:
        return {}


def _run(script: list[int], quiet: int, busy: int | None) -> tuple[list[int], int]:
    probe = ScriptedProbe(script)
    emitted: list[dict[str, Any]] = []
    cache = ProcessCache("n", BootClock(), cgroups=CgroupResolver(None))
    reader = Reader(probe, cache, emitted.extend, procfs_scan=False,  # type: ignore[arg-type]
                    poll_interval_ms=quiet, busy_poll_interval_ms=busy)
    reader.start()
    assert probe.played.wait(10)
    reader.stop()
    assert reader.error is None
    return probe.waits, len(emitted)


def test_the_rule() -> None:
    assert next_poll_ms(0, 25, 100) == 25
    assert next_poll_ms(BUSY_RECORDS - 1, 25, 100) == 25
    assert next_poll_ms(BUSY_RECORDS, 25, 100) == 100
    assert next_poll_ms(10 * BUSY_RECORDS, 25, 100) == 100


def test_busy_polls_wait_longer_and_quiet_ones_restore_the_interval() -> None:
    b = BUSY_RECORDS
    script = [3, b, 2 * b, b - 1, 0, b, 1]
    waits, emitted = _run(script, quiet=7, busy=40)
    # the first poll waits the quiet interval; each next one follows the poll before it
    assert waits[:len(script) + 1] == [7, 7, 40, 40, 7, 7, 40, 7]
    assert waits[-1] == 0  # the last drain after stop() does not wait
    assert emitted == sum(script)  # every exit an event (unknown pids: still reported)


def test_without_a_busy_interval_the_interval_is_fixed() -> None:
    waits, emitted = _run([2 * BUSY_RECORDS, 5], quiet=9, busy=None)
    assert set(waits[:-1]) == {9} and waits[-1] == 0
    assert emitted == 2 * BUSY_RECORDS + 5
