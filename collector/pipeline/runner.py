"""Run the collector: wire probe → reader → sink workers, then stop cleanly.

Start order: open sinks (a bad path fails before anything is attached),
attach the probes, start the reader. Stop order (SIGINT, SIGTERM,
--duration, or a closed stdout): stop reading (after draining the ring
buffer), drain and flush every sink within shutdown_timeout, print the
summary. Exit 0 when everything that reached the collector was delivered.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
import time
from typing import Any

from collector.clock import BootClock
from collector.config import Config
from collector.enrich.process_cache import ProcessCache
from collector.errors import CollectorError, SinkError
from collector.export.contract import OutputClosed, Sink
from collector.export.registry import sink_class
from collector.filter import build_stage
from collector.pipeline.reader import Reader
from collector.pipeline.stats import Snapshot, render, snapshot
from collector.pipeline.worker import SinkWorker
from collector.probe import Probe, select
from collector.probe.privileges import missing_scan_privileges

log = logging.getLogger("collector")

# The cyclic collector's first generation runs after this many new container
# objects (CPython's default: 700). An exec storm makes ~10 per event (records,
# their lists, the event), nearly all freed by reference counting within one
# poll; at 700 a collection every ~70 events walks the poll's live events and
# promotes them to older generations, which walk them again. At this threshold
# most die before a collection sees them: 0.92x the CPU per event for stdout,
# 0.93x for Kafka JSON (bench/results/gc_ab.json, gc_ab_kafka.json). The
# pipeline makes no cycles of its own, so what the collector frees late is rare.
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Freeze what start-up made (modules, schemas, config, sinks: never garbage,
    never walked again) and raise the first generation's threshold."""
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def build_sinks(cfg: Config) -> list[Sink]:
    """One Sink per name in cfg["sinks"]: the registered class, built from its
    section's option values (SinkClass(options))."""
    return [sink_class(name)(cfg.sink_options(name)) for name in cfg["sinks"]]


def build_probe(cfg: Config) -> Probe:
    return select.build(cfg["capture.backend"], cfg.section("capture"))


class Collector:
    """The running agent; `run()` returns the process exit code."""

    def __init__(self, cfg: Config, sinks: list[Sink] | None = None, probe: Probe | None = None) -> None:
        self.cfg = cfg
        self.stop_event = threading.Event()  # set by other threads (a sink that failed)
        self._signalled: int | None = None  # SIGINT/SIGTERM seen (set by the handler)
        self._hup = False  # SIGHUP seen, reopen not yet requested
        self.quiet_stop = False
        self._probe_state: str | None = "probes not attached yet"  # None: attached, reading
        self.sinks = sinks if sinks is not None else build_sinks(cfg)
        self.workers = [SinkWorker(s, cfg.pipeline(s.name), on_fatal=self._on_fatal)
                        for s in self.sinks]
        self.probe = probe if probe is not None else build_probe(cfg)
        self.cache = ProcessCache.from_config(cfg, BootClock())
        self.reader = Reader(
            self.probe,
            self.cache,
            self._fan_out,
            stage=build_stage(cfg),
            poll_interval_ms=cfg["capture.poll_interval_ms"],
            busy_poll_interval_ms=cfg["capture.busy_poll_interval_ms"],
            procfs_scan=cfg["enrich.procfs_scan"],
            procfs_events=cfg["enrich.procfs_events"],
        )

    def _fan_out(self, events: list[dict[str, Any]]) -> None:
        for w in self.workers:
            w.put_many(events)

    def _on_fatal(self, worker: SinkWorker, why: str) -> None:
        if isinstance(worker.error, OutputClosed):
            self.quiet_stop = True
            self.stop_event.set()
            return
        print(f"collector: sink {worker.sink.name} stopped: {why}", file=sys.stderr, flush=True)
        if all(w.stats.failed is not None for w in self.workers):
            self.stop_event.set()

    def snapshot(self) -> Snapshot:
        """Every counter at this moment (reader, each sink, the cache, the
        encoders' fallbacks, whether the probes are attached): the one source of
        the stats line, of metrics and of /healthz."""
        avro = sys.modules.get("collector.encode.avro")  # imported only where Avro is written
        enrich = {**self.cache.counters(), "avro_fallbacks": avro.fallbacks() if avro else 0}
        return snapshot(self.reader.stats, [w.stats for w in self.workers], enrich,
                        self._probe_problem())

    def _probe_problem(self) -> str | None:
        """None while the probes are attached and the reader runs."""
        if self._probe_state is not None:
            return self._probe_state
        if self.reader.error is not None:
            return f"reader failed: {self.reader.error}"
        if self.reader._thread.ident is not None and not self.reader._thread.is_alive():
            return "reader stopped"
        return None

    def stats_line(self) -> str:
        return render(self.snapshot())

    def _install_signals(self) -> None:
        # The handlers take no lock: Python runs them in the main thread between two
        # bytecodes, possibly while that thread holds the very lock (stop_event.wait
        # inside its Condition): Event.set() here deadlocked the stop. They set plain
        # flags, which the main loop reads at least every 0.2 s.
        def on_stop(signo: int, _frame: Any) -> None:
            self._signalled = signo

        def on_hup(signo: int, _frame: Any) -> None:
            self._hup = True

        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def run(self) -> int:
        self._install_signals()
        metrics = None
        if self.cfg.get("metrics.address"):
            from collector.metrics import MetricsServer

            metrics = MetricsServer(self.cfg["metrics.address"], self.snapshot,
                                    lambda: select.backend_of(self.probe))
            metrics.start()  # before the sinks open: /healthz says what start-up waits for
        try:
            return self._run()
        finally:
            if metrics is not None:
                metrics.close()

    def _run(self) -> int:
        started = time.monotonic()
        try:
            for w in self.workers:
                w.start()  # opens its sink: a bad path fails here, before probes attach
            self.probe.start()
        except CollectorError:
            for w in self.workers:
                w.drain(1.0)
            raise
        attached = time.monotonic()
        self._probe_state = None
        scan_problem = missing_scan_privileges()
        if scan_problem:
            print(f"collector: warning: {scan_problem}", file=sys.stderr, flush=True)
        log.info("attached in %.3fs", attached - started)
        print(f"collector: attached in {attached - started:.3f}s; backend "
              f"{select.backend_of(self.probe)}; node {self.cfg['node']}; sinks "
              f"{','.join(s.name for s in self.sinks)}", file=sys.stderr, flush=True)
        tune_gc()
        self.reader.start()
        duration = self.cfg["duration"]
        interval = self.cfg["stats_interval"]
        next_stats = time.monotonic() + interval if interval else None
        end = attached + duration if duration else None
        while not self.stop_event.is_set() and self._signalled is None:
            timeout = 0.2
            now = time.monotonic()
            if end is not None:
                timeout = min(timeout, max(0.0, end - now))
            if next_stats is not None:
                timeout = min(timeout, max(0.0, next_stats - now))
            self.stop_event.wait(timeout)
            if self._hup:
                self._hup = False
                for w in self.workers:
                    w.request_reopen()
            now = time.monotonic()
            if end is not None and now >= end:
                break
            if self.reader.error is not None or not self.reader._thread.is_alive():
                break
            if next_stats is not None and now >= next_stats:
                print(self.stats_line(), file=sys.stderr, flush=True)
                next_stats = now + interval
        return self.shutdown()

    def shutdown(self) -> int:
        deadline = time.monotonic() + self.cfg["shutdown_timeout"]
        for w in self.workers:
            w.stop_blocking(deadline)  # a stuck sink (policy block) must not hang the stop
        self.reader.stop()
        self._probe_state = "probes detached: stopping"
        self.probe.close()
        all_delivered = True
        for w in self.workers:
            ok = w.drain(max(0.0, deadline - time.monotonic()))
            if isinstance(w.error, OutputClosed):
                continue
            all_delivered = all_delivered and ok
        if not self.quiet_stop:
            print(self.stats_line(), file=sys.stderr, flush=True)
        if self.reader.error is not None:
            err = self.reader.error
            raise err if isinstance(err, CollectorError) else CollectorError(f"reader failed: {err}")
        if self.quiet_stop:
            return 0
        failed = [w for w in self.workers
                  if w.error is not None and not isinstance(w.error, OutputClosed)]
        if failed:  # errors.py: a sink that failed fatally, at start or while running, is exit 4
            print(f"collector: sink {', '.join(w.sink.name for w in failed)} failed; events "
                  "not delivered are on the stats line", file=sys.stderr, flush=True)
            return SinkError.exit_code
        if not all_delivered:
            lost = sum(w.stats.queued - w.stats.written for w in self.workers)
            print(f"collector: {lost} events were not delivered (see the stats line)",
                  file=sys.stderr, flush=True)
            return 1
        return 0


__all__ = ["Collector", "SinkError", "build_sinks"]
