"""The reader thread: ring buffer → decode → enrich → filter → fan-out.

One thread owns the process cache, so enrichment needs no locks. Records
are taken from the kernel in batches (one poll returns everything queued);
the per-record work is plain Python calls, with no extra thread hops.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from collector.decode import DecodeError, ExecRecord, ExitRecord, ForkRecord, decode
from collector.enrich.process_cache import ProcessCache
from collector.enrich.scan import reported_by_kernel, startup_scan, without_repeats
from collector.filter import Stage
from collector.pipeline.poll import next_poll_ms
from collector.pipeline.stats import ReaderStats
from collector.probe import Probe

log = logging.getLogger("collector.reader")

# the events of one ring-buffer poll, in order: one call (and one queue lock per
# sink) per poll rather than per event, which the traced workload pays for
Emit = Callable[[list[dict[str, Any]]], None]

try:
    from collector.pipeline._reader import dispatch as _dispatch
except ImportError:  # installed without a C compiler
    _dispatch = None
NATIVE = _dispatch is not None  # for tests, the benches and `collector check`

# The kernel's drop counters cost a map lookup per reason and an fdinfo read per
# program (about 25 µs, measured): no need to pay it every poll (40 a second).
# Read this often while running, and always at the last drain.
DROPS_REFRESH_S = 0.5


class Reader:
    def __init__(
        self,
        probe: Probe,
        cache: ProcessCache,
        emit: Emit,
        *,
        stage: Stage | None = None,
        poll_interval_ms: int = 25,
        busy_poll_interval_ms: int | None = None,
        procfs_scan: bool = True,
        procfs_events: bool = True,
    ) -> None:
        self.probe = probe
        self.cache = cache
        self.emit = emit
        self.stage = stage
        self.poll_interval_ms = poll_interval_ms
        # None: one fixed interval (as for the tests that build a Reader themselves)
        self.busy_poll_interval_ms = (poll_interval_ms if busy_poll_interval_ms is None
                                      else busy_poll_interval_ms)
        self.procfs_scan = procfs_scan
        self.procfs_events = procfs_events
        self.stats = ReaderStats()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after draining what the kernel has queued so far."""
        self._stop.set()
        self._thread.join()

    def _staged(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Events through the filter/redaction stage (those it drops are counted)."""
        stage = self.stage
        if stage is None:
            return events
        out = []
        for event in events:
            staged = stage(event)
            if staged is None:
                self.stats.filtered += 1
                self.stats.filtered_by_type[event["event_type"]] += 1
            else:
                out.append(staged)
        return out

    def _run(self) -> None:
        try:
            if self.procfs_scan:
                now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
                events = startup_scan(self.cache, self.procfs_events, now)
                raws = self.probe.read(0)  # since attach: may repeat some of the scan
                if events:
                    events = without_repeats(events, reported_by_kernel(self.cache, raws))
                self.stats.procfs += len(events)
                events = self._staged(events)
                if events:
                    self.emit(events)
                took_ms = (time.clock_gettime_ns(time.CLOCK_BOOTTIME) - now) / 1e6
                print(f"collector: start-up scan: {self.cache.stats.scanned} processes in "
                      f"{took_ms:.1f} ms",
                      file=sys.stderr, flush=True)
                self.handle(raws)
            next_drops = 0.0
            wait_ms = self.poll_interval_ms
            quiet_ms, busy_ms = self.poll_interval_ms, self.busy_poll_interval_ms
            while True:
                stopping = self._stop.is_set()
                raws = self.probe.read(0 if stopping else wait_ms)
                wait_ms = next_poll_ms(len(raws), quiet_ms, busy_ms)
                self.handle(raws)
                now_s = time.monotonic()
                if stopping or now_s >= next_drops:
                    self.stats.kernel_drops = self.probe.kernel_drops()
                    next_drops = now_s + DROPS_REFRESH_S
                self.cache.maintain()
                if stopping:
                    break
        except BaseException as exc:  # surfaced by the runner, which stops the collector
            log.exception("reader failed")
            self.error = exc

    def handle(self, raws: list[bytes]) -> None:
        """One poll's records through decode and the process cache, then the
        filter stage, then out: collector.pipeline._reader's loop when built,
        else handle_py (its reference)."""
        if _dispatch is None:
            return self.handle_py(raws)
        st = self.stats
        cache = self.cache
        st.records += len(raws)  # taken from the ring buffer, all of them
        events, execs, exits, forks, errors = _dispatch(
            raws, decode, ExecRecord, ExitRecord, ForkRecord,
            cache.on_exec, cache.on_exit, cache.on_fork, DecodeError, self._refused)
        st.execs += execs
        st.exits += exits
        st.forks += forks
        st.decode_errors += errors
        if self.stage is not None:
            events = self._staged(events)
        if events:
            self.emit(events)
        return None

    @staticmethod
    def _refused(exc: DecodeError) -> None:
        log.warning("skipping a raw record: %s", exc)

    def handle_py(self, raws: list[bytes]) -> None:
        st = self.stats
        cache = self.cache
        events: list[dict[str, Any]] = []
        out = events.append
        on_exec, on_exit, on_fork = cache.on_exec, cache.on_exit, cache.on_fork
        st.records += len(raws)  # taken from the ring buffer, all of them
        for raw in raws:
            try:
                rec = decode(raw)
            except DecodeError as exc:
                st.decode_errors += 1
                self._refused(exc)
                continue
            if isinstance(rec, ExecRecord):
                st.execs += 1
                out(on_exec(rec))
            elif isinstance(rec, ExitRecord):
                st.exits += 1
                out(on_exit(rec))
            elif isinstance(rec, ForkRecord):
                st.forks += 1
                on_fork(rec)
        if self.stage is not None:
            events = self._staged(events)
        if events:
            self.emit(events)
