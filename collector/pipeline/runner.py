"""Run the collector: wire probe → reader → sink workers, then stop cleanly.

Start order: open sinks (a bad path fails before anything is attached),
attach the probes, start the reader. Stop order (SIGINT, SIGTERM,
--duration, or a closed stdout): stop reading (after draining the ring
buffer), drain and flush every sink within shutdown_timeout, print the
summary. Exit 0 when everything that reached the collector was delivered.
"""

from __future__ import annotations

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
from collector.filter import build_stage
from collector.pipeline.reader import Reader
from collector.pipeline.stats import summary_line
from collector.pipeline.worker import SinkWorker
from collector.probe import Probe, select
from sinks.base import Sink
from sinks.stdout import BrokenPipe

log = logging.getLogger("collector")


def build_sinks(cfg: Config) -> list[Sink]:
    """One Sink per name in cfg["sinks"], from the sinks/ package."""
    out: list[Sink] = []
    for name in cfg["sinks"]:
        if name == "stdout":
            from sinks.stdout import StdoutSink

            out.append(StdoutSink(cfg["stdout.format"]))
        elif name == "file":
            from sinks.file import FileSink

            out.append(FileSink.from_config(cfg.section("file")))
        elif name == "kafka":
            from sinks.kafka import KafkaSink

            out.append(KafkaSink.from_config(cfg.section("kafka")))
    return out


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
        self.sinks = sinks if sinks is not None else build_sinks(cfg)
        self.workers = [
            SinkWorker(s, cfg.section(s.name.split(":")[0]) if s.name in ("stdout", "file", "kafka")
                       else cfg.section("stdout"), on_fatal=self._on_fatal)
            for s in self.sinks
        ]
        self.probe = probe if probe is not None else build_probe(cfg)
        self.cache = ProcessCache.from_config(cfg, BootClock())
        self.reader = Reader(
            self.probe,
            self.cache,
            self._fan_out,
            stage=build_stage(cfg),
            poll_interval_ms=cfg["capture.poll_interval_ms"],
            procfs_scan=cfg["enrich.procfs_scan"],
            procfs_events=cfg["enrich.procfs_events"],
        )

    def _fan_out(self, events: list[dict[str, Any]]) -> None:
        for w in self.workers:
            w.put_many(events)

    def _on_fatal(self, worker: SinkWorker, why: str) -> None:
        if isinstance(why, str) and worker.sink.name == "stdout" and "closed by its reader" in why:
            self.quiet_stop = True
            self.stop_event.set()
            return
        print(f"collector: sink {worker.sink.name} stopped: {why}", file=sys.stderr, flush=True)
        if all(w.stats.failed is not None for w in self.workers):
            self.stop_event.set()

    def stats_line(self) -> str:
        extra = self.cache.counters()
        return summary_line(self.reader.stats, [w.stats for w in self.workers], extra)

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
        log.info("attached in %.3fs", attached - started)
        print(f"collector: attached in {attached - started:.3f}s; backend "
              f"{select.backend_of(self.probe)}; node {self.cfg['node']}; sinks "
              f"{','.join(s.name for s in self.sinks)}", file=sys.stderr, flush=True)
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
        self.probe.close()
        all_delivered = True
        for w in self.workers:
            ok = w.drain(max(0.0, deadline - time.monotonic()))
            if w.stats.failed and self.quiet_stop and w.sink.name == "stdout":
                continue
            all_delivered = all_delivered and ok
        if not self.quiet_stop:
            print(self.stats_line(), file=sys.stderr, flush=True)
        if self.reader.error is not None:
            err = self.reader.error
            raise err if isinstance(err, CollectorError) else CollectorError(f"reader failed: {err}")
        if self.quiet_stop:
            return 0
        if not all_delivered:
            lost = sum(w.stats.queued - w.stats.written for w in self.workers)
            print(f"collector: {lost} events were not delivered (see the stats line)",
                  file=sys.stderr, flush=True)
            return 1
        return 0


__all__ = ["BrokenPipe", "Collector", "SinkError", "build_sinks"]
