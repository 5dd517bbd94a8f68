"""Prometheus metrics and the /healthz check: a reader of the counters, never a
second set of them.

Nothing here counts. At each scrape `StatsCollector.collect()` takes one
`Snapshot` (collector.pipeline.stats, the one snapshot API the stats line
is rendered from too) and turns it into metric families, so a scrape and
the stats line can never disagree, and the hot path pays nothing for
metrics being on. To serve another source of counters, hand
`MetricsServer` another `snapshot` callable.

The metric names are a contract (dashboards and alerts depend on them); see
the README section "Metrics and health".
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from collector.errors import UsageError
from collector.pipeline.stats import SINK_DROP_REASONS, Snapshot
from collector.probe.layout import DropReason

SnapshotSource = Callable[[], Snapshot]
# the backend that runs (select.backend_of): read at scrape time, since auto decides at attach
BackendSource = Callable[[], str]


def version() -> str:
    try:
        return metadata.version("process-collector")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class StatsCollector(Collector):
    """The collector_* families, read from a Snapshot at scrape time."""

    def __init__(self, snapshot: SnapshotSource, backend: BackendSource) -> None:
        self.snapshot = snapshot
        self.backend = backend

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot()
        reader = snap.reader
        events = CounterMetricFamily("collector_events", "Events handed to the sinks, after "
                                     "filters", labels=["event_type"])
        for event_type, n in reader.emitted().items():
            events.add_metric([event_type], n)
        yield events
        yield CounterMetricFamily("collector_kernel_records", "Records read from the kernel "
                                  "ring buffer", value=reader.records)
        drops = CounterMetricFamily("collector_kernel_drops", "Records the kernel could not "
                                    "queue (ring buffer full), by kind", labels=["kind"])
        kinds = {r.name.lower(): 0 for r in DropReason} | reader.kernel_drops
        for kind, n in sorted(kinds.items()):
            drops.add_metric([kind], n)
        yield drops
        yield CounterMetricFamily("collector_decode_errors", "Kernel records that could not be "
                                  "decoded (skipped)", value=reader.decode_errors)
        yield CounterMetricFamily("collector_events_filtered", "Events dropped by filter rules "
                                  "(by design, not a loss)", value=reader.filtered)
        yield from self._sinks(snap)
        yield GaugeMetricFamily("collector_process_cache_entries", "Live processes in the "
                                "process cache", value=snap.enrich.get("cache", 0))
        yield CounterMetricFamily("collector_process_cache_evictions", "Processes evicted from "
                                  "the full process cache", value=snap.enrich.get("evictions", 0))
        info = GaugeMetricFamily("collector_build_info", "Always 1; the labels say what runs",
                                 labels=["version", "backend"])
        info.add_metric([version(), self.backend()], 1)
        yield info

    def _sinks(self, snap: Snapshot) -> Iterator[Metric]:
        events = CounterMetricFamily("collector_sink_events", "Events a sink accepted into its "
                                     "queue (queued) and delivered (written)",
                                     labels=["sink", "outcome"])
        dropped = CounterMetricFamily("collector_sink_dropped", "Events a sink gave up, by "
                                      "reason", labels=["sink", "reason"])
        retries = CounterMetricFamily("collector_sink_retries", "Retries of a sink's open or "
                                      "batch after a transient error", labels=["sink"])
        depth = GaugeMetricFamily("collector_sink_queue_depth", "Events waiting in a sink's "
                                  "queue", labels=["sink"])
        up = GaugeMetricFamily("collector_sink_up", "1 while the sink runs without errors, 0 "
                               "when it failed or is retrying", labels=["sink"])
        for s in snap.sinks:
            events.add_metric([s.name, "queued"], s.queued)
            events.add_metric([s.name, "written"], s.written)
            by_reason = {r: 0 for r in SINK_DROP_REASONS} | s.dropped
            for reason, n in sorted(by_reason.items()):
                dropped.add_metric([s.name, reason], n)
            retries.add_metric([s.name], s.retries)
            depth.add_metric([s.name], s.queue_depth)
            up.add_metric([s.name], 0 if s.failed or s.retrying else 1)
        yield from (events, dropped, retries, depth, up)


def problem(snap: Snapshot) -> str | None:
    """What /healthz reports: None when the probes are attached and every sink runs,
    else one line naming the first thing that is wrong."""
    if snap.probe_problem:
        return snap.probe_problem
    for s in snap.sinks:
        if s.failed:
            return f"sink {s.name} failed: {s.failed}"
        if s.retrying:
            return f"sink {s.name} is retrying after: {s.retrying}"
    return None


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper must not hold the collector's stop


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood stderr, which carries the stats line."""


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class MetricsServer:
    """/metrics and /healthz on one HTTP server, in a daemon thread."""

    def __init__(self, address: str, snapshot: SnapshotSource, backend: BackendSource) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, memory, fds
        self.registry.register(StatsCollector(snapshot, backend))
        self.snapshot = snapshot
        self._metrics_app = make_wsgi_app(self.registry)
        host, port = _split(address)
        server_class = _Server6 if ":" in host else _Server
        try:
            self._httpd = make_server(host, port, self._app, server_class, _QuietHandler)
        except (OSError, OverflowError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UsageError(f"config key metrics.address: cannot listen on {address}: {why}; "
                             "choose another HOST:PORT") from None
        bound_host, bound_port = str(self._httpd.server_address[0]), self._httpd.server_address[1]
        self.url = f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics",
                                        daemon=True)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            why = problem(self.snapshot())
            body = ("ok" if why is None else why).encode("utf-8", "backslashreplace") + b"\n"
            start_response("200 OK" if why is None else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
            return [body]
        return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]

    def start(self) -> None:
        self._thread.start()
        print(f"collector: metrics on {self.url}/metrics, health on {self.url}/healthz",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()
