"""What /metrics and /healthz read, without a kernel: the Snapshot fields the
metrics need (events by type, a sink's retrying state, the probe problem, the
cache counters) and collector.metrics turning one Snapshot into the contract
names. The worker, its retries and tenacity are the real ones; the sink is
MemorySink told to fail.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from collector.export.testing import MemorySink
from collector.metrics import MetricsServer, StatsCollector, problem
from collector.pipeline.stats import (
    SINK_DROP_REASONS,
    ReaderStats,
    SinkStats,
    Snapshot,
    snapshot,
)
from collector.pipeline.worker import SinkWorker
from tests.unit.test_pipeline_worker import ev, settings


def wait_until(cond: Any, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return bool(cond())


def test_emitted_counts_by_type_after_filters_and_snapshot_copies() -> None:
    reader = ReaderStats(execs=10, exits=7, procfs=3, filtered=4)
    reader.filtered_by_type.update({"process_exec": 3, "process_exit": 1})
    snap = snapshot(reader, [], {"cache": 5, "evictions": 2}, "probes not attached yet")
    assert snap.reader.emitted() == {"process_exec": 10, "process_exit": 6}
    reader.filtered_by_type["process_exec"] += 1  # the reader goes on: the copy does not move
    assert snap.reader.emitted()["process_exec"] == 10
    assert snap.probe_problem == "probes not attached yet"


def test_retrying_is_set_by_the_retry_hook_and_cleared_by_a_written_batch() -> None:
    sink = MemorySink(fail_times=-1)
    w = SinkWorker(sink, settings(retry_initial_ms=20, retry_max_ms=20))
    w.start()
    try:
        w.put_many([ev(i) for i in range(3)])
        assert wait_until(lambda: w.stats.retrying is not None)
        snap = snapshot(ReaderStats(), [w.stats])
        assert snap.sinks[0].retrying == "injected failure"
        assert problem(snap) == "sink memory is retrying after: injected failure"
        sink.fail_times = 0  # the outage ends
        assert wait_until(lambda: w.stats.written == 3)
        assert wait_until(lambda: w.stats.retrying is None)
        assert problem(snapshot(ReaderStats(), [w.stats])) is None
    finally:
        assert w.drain(2.0)


def test_failed_open_is_retrying_until_it_opens() -> None:
    from collector.export import TransientSinkError
    from tests.unit.test_pipeline_worker import RecordingSink

    sink = RecordingSink(open_error=TransientSinkError("no route"), open_fail_times=1000)
    w = SinkWorker(sink, settings(retry_initial_ms=30, retry_max_ms=30))
    w.start()  # the first open (on this thread) fails; the worker retries it
    try:
        assert w.stats.retrying is not None and w.stats.retrying.endswith("no route")
        assert wait_until(lambda: sink.opens >= 3)
        assert problem(snapshot(ReaderStats(), [w.stats])) is not None
        sink.open_fail_times = 0  # reachable now
        assert wait_until(lambda: w.stats.retrying is None)
        assert w.error is None
    finally:
        assert w.drain(2.0)


def families(snap: Snapshot) -> dict[str, Any]:
    return {f.name: f for f in StatsCollector(lambda: snap, lambda: "core").collect()}


def test_collector_turns_one_snapshot_into_the_contract_names() -> None:
    reader = ReaderStats(records=20, execs=9, exits=8, filtered=1, decode_errors=2,
                         kernel_drops={"exec": 4})
    reader.filtered_by_type["process_exit"] = 1
    sink = SinkStats("file", queued=16, written=12, retries=3, queue_depth=2)
    sink.dropped.update({"queue_full": 1, "too_large": 1})
    snap = snapshot(reader, [sink], {"cache": 42, "evictions": 6})
    fams = families(snap)

    def sample(name: str, **labels: str) -> float:
        for s in fams[name].samples:
            if s.name == name + ("_total" if fams[name].type == "counter" else "") and \
                    all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
        raise AssertionError(f"{name} {labels} missing")

    assert sample("collector_events", event_type="process_exec") == 9
    assert sample("collector_events", event_type="process_exit") == 7
    assert sample("collector_kernel_records") == 20
    assert sample("collector_kernel_drops", kind="exec") == 4
    assert sample("collector_sink_events", sink="file", outcome="queued") == 16
    assert sample("collector_sink_events", sink="file", outcome="written") == 12
    for reason in SINK_DROP_REASONS:  # every core reason from 0, before its first drop
        assert sample("collector_sink_dropped", sink="file", reason=reason) == \
            (1 if reason == "queue_full" else 0)
    assert sample("collector_sink_dropped", sink="file", reason="too_large") == 1
    assert sample("collector_sink_retries", sink="file") == 3
    assert sample("collector_sink_queue_depth", sink="file") == 2
    assert sample("collector_sink_up", sink="file") == 1
    assert sample("collector_process_cache_entries") == 42
    assert sample("collector_process_cache_evictions") == 6
    assert sample("collector_build_info", backend="core") == 1


def test_server_serves_metrics_and_healthz_from_the_snapshot_source() -> None:
    state: dict[str, Any] = {"probe": None, "failed": None}

    def source() -> Snapshot:
        sink = SinkStats("stdout", queued=1, written=1, failed=state["failed"])
        return snapshot(ReaderStats(execs=1), [sink], {"cache": 1}, state["probe"])

    server = MetricsServer("127.0.0.1:0", source, lambda: "core")
    server.start()
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
            assert (resp.status, resp.read()) == (200, b"ok\n")
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as resp:
            names = {f.name for f in text_string_to_metric_families(resp.read().decode())}
        assert {"collector_events", "collector_sink_up", "process_cpu_seconds"} <= names
        state["failed"] = "disk full"
        try:
            urllib.request.urlopen(server.url + "/healthz", timeout=5)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            assert exc.read() == b"sink stdout failed: disk full\n"
        state["failed"], state["probe"] = None, "probes detached: stopping"
        try:
            urllib.request.urlopen(server.url + "/healthz", timeout=5)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            assert exc.read() == b"probes detached: stopping\n"
    finally:
        server.close()
