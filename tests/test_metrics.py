"""/metrics and /healthz of a real `collector run`: scraped over HTTP and parsed
with prometheus_client's own text-format parser, compared with what the
collector wrote and with the stats line; sinks made to fail for real (a full
tmpfs, a Kafka port that refuses connections)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import COLLECTOR, CollectorProcess, stat_value, wait_for
from tests.support.small_fs import fill, small_tmpfs

CONTRACT = (
    "collector_events_total", "collector_kernel_records_total", "collector_kernel_drops_total",
    "collector_sink_events_total", "collector_sink_dropped_total", "collector_sink_retries_total",
    "collector_sink_queue_depth", "collector_process_cache_entries",
    "collector_process_cache_evictions_total", "collector_build_info",
    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def base_url(c: CollectorProcess) -> str:
    line = wait_for(lambda: next((s for s in c.stderr_lines if "metrics on http" in s), None))
    m = re.search(r"metrics on (http://\S+)/metrics", line)
    assert m, line
    return m.group(1)


def scrape(url: str) -> Samples:
    """Every sample of /metrics, keyed by (name, labels), via the real parser."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels}; have {sorted(k[0] for k in samples)}"
    return samples[key]


def healthz(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A copy of /bin/true under a name only this test uses: filters keep exactly its events."""
    path = tmp_path / f"marker-{uuid.uuid4().hex[:12]}"
    shutil.copy("/bin/true", path)
    return path


def only(marker: Path, tmp_path: Path) -> Path:
    cfg = tmp_path / "only-marker.toml"
    cfg.write_text(f"[[filter.allow]]\nbinary = '^{re.escape(str(marker))}$'\n")
    return cfg


def spawn(marker: Path, n: int, *args: str) -> None:
    for _ in range(n):
        subprocess.run([str(marker), *args], check=True)


def test_every_name_and_counts_match_the_output(marker: Path, tmp_path: Path) -> None:
    n = 25
    with CollectorProcess("--config", str(only(marker, tmp_path)), "--no-procfs-events",
                          "--metrics-address", "127.0.0.1:0") as c:
        c.wait_attached()
        url = base_url(c)
        assert healthz(url) == (200, "ok\n")
        spawn(marker, n)
        wait_for(lambda: len(c.stdout_lines) >= 2 * n)
        samples = wait_for(lambda: (s := scrape(url)) and value(
            s, "collector_sink_events_total", sink="stdout", outcome="written") >= 2 * n and s)
        names = {k[0] for k in samples}
        missing = [name for name in CONTRACT if name not in names]
        assert not missing, f"missing from /metrics: {missing}"
        assert value(samples, "collector_events_total", event_type="process_exec") >= n
        assert value(samples, "collector_events_total", event_type="process_exit") >= n
        written = value(samples, "collector_sink_events_total", sink="stdout", outcome="written")
        assert written == len(c.stdout_lines) == 2 * n
        assert value(samples, "collector_sink_events_total", sink="stdout", outcome="queued") == written
        for reason in ("queue_full", "sink_failed", "retries_exhausted", "shutdown_timeout",
                       "encode_error"):
            assert value(samples, "collector_sink_dropped_total", sink="stdout", reason=reason) == 0
        assert value(samples, "collector_sink_retries_total", sink="stdout") == 0
        assert value(samples, "collector_sink_queue_depth", sink="stdout") == 0
        for kind in ("exec", "exit", "fork"):
            assert value(samples, "collector_kernel_drops_total", kind=kind) >= 0
        assert value(samples, "collector_kernel_records_total") >= 2 * n
        assert value(samples, "collector_process_cache_entries") > 0
        info = [dict(k[1]) for k in samples if k[0] == "collector_build_info"]
        assert info == [{"version": "0.1.0", "backend": "core"}]
        assert value(samples, "collector_build_info", version="0.1.0", backend="core") == 1
        assert value(samples, "process_cpu_seconds_total") > 0
        assert c.stop() == 0
    # the stats line and the metrics read one set of counters
    line = c.stats_line()
    assert stat_value(line, "written", section="stdout") == 2 * n
    assert stat_value(line, "records") >= value(samples, "collector_kernel_records_total")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of its own, so filling it fills nothing else."""
    with small_tmpfs(tmp_path, 1) as mnt:
        yield mnt


def test_a_full_disk_turns_health_503_and_moves_the_drop_counters(
        marker: Path, tmp_path: Path, tmpfs: Path) -> None:
    out = tmpfs / "events.jsonl"
    env = {"COLLECTOR_FILE_WHEN_FULL": "drop-newest", "COLLECTOR_FILE_RETRY_MAX_ELAPSED_S": "1",
           "COLLECTOR_FILE_RETRY_INITIAL_MS": "50", "COLLECTOR_FILE_RETRY_MAX_MS": "200",
           "COLLECTOR_FILE_BATCH_TIMEOUT_MS": "0"}
    with CollectorProcess("--config", str(only(marker, tmp_path)), "--no-procfs-events",
                          "--sink", "stdout", "--sink", "file", "--file-path", str(out),
                          "--metrics-address", "127.0.0.1:0", env=env) as c:
        c.wait_attached()
        url = base_url(c)
        spawn(marker, 5)
        wait_for(lambda: value(scrape(url), "collector_sink_events_total", sink="file",
                               outcome="written") == 10)
        assert healthz(url) == (200, "ok\n")

        filler = fill(tmpfs)
        # each event larger than a page: none fits in the slack of the file's last page
        spawn(marker, 5, "x" * 6000)
        _, body = wait_for(lambda: (h := healthz(url))[0] == 503 and h)
        assert body.count("\n") == 1 and body.startswith("sink file is retrying after: "), body
        assert "No space left on device" in body, body
        samples = wait_for(lambda: (s := scrape(url)) and value(
            s, "collector_sink_dropped_total", sink="file", reason="retries_exhausted") > 0 and s,
            timeout=15)
        assert value(samples, "collector_sink_retries_total", sink="file") > 0
        assert value(samples, "collector_sink_up", sink="file") == 0
        # the other sink is unaffected
        assert value(samples, "collector_sink_events_total", sink="stdout", outcome="written") == 20
        assert value(samples, "collector_sink_up", sink="stdout") == 1

        filler.unlink()  # room again: the next batch goes through and health recovers
        spawn(marker, 1)
        wait_for(lambda: healthz(url) == (200, "ok\n"), timeout=15)
        c.stop()
    dropped = value(samples, "collector_sink_dropped_total", sink="file", reason="retries_exhausted")
    assert stat_value(c.stats_line(), "dropped", section="file") >= dropped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_broker_that_refuses_connections_turns_health_503(marker: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: every connection is refused
    env = {"COLLECTOR_KAFKA_WHEN_FULL": "drop-newest", "COLLECTOR_KAFKA_QUEUE_EVENTS": "4",
           "COLLECTOR_KAFKA_RETRY_MAX_ELAPSED_S": "1", "COLLECTOR_KAFKA_RETRY_INITIAL_MS": "50",
           "COLLECTOR_METRICS_ADDRESS": "127.0.0.1:0"}  # the environment variable this time
    with CollectorProcess("--config", str(only(marker, tmp_path)), "--no-procfs-events",
                          "--sink", "stdout", "--sink", "kafka",
                          "--kafka-bootstrap", f"127.0.0.1:{port}",
                          "--kafka-option", "message.timeout.ms=500", env=env) as c:
        c.wait_attached()
        url = base_url(c)
        spawn(marker, 20)
        _, body = wait_for(lambda: (h := healthz(url))[0] == 503 and h, timeout=20)
        assert body.startswith("sink kafka is retrying after: "), body
        samples = wait_for(lambda: (s := scrape(url)) and sum(
            v for (name, labels), v in s.items() if name == "collector_sink_dropped_total"
            and ("sink", "kafka") in labels) > 0 and s, timeout=20)
        assert value(samples, "collector_sink_events_total", sink="kafka", outcome="written") == 0
        assert value(samples, "collector_sink_retries_total", sink="kafka") > 0
        wait_for(lambda: len(c.stdout_lines) >= 40)
        c.stop()


def test_metrics_address_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    for bad in ("nonsense", "127.0.0.1:99999", ":9100"):
        r = subprocess.run([COLLECTOR, "run", "--metrics-address", bad],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (bad, r.stderr)
        assert r.stderr.count("\n") == 1 and "metrics.address" in r.stderr, r.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        r = subprocess.run([COLLECTOR, "run", "--metrics-address", addr, "--duration", "1"],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (f"collector: config key metrics.address: cannot listen on {addr}: "
                                "Address already in use; choose another HOST:PORT"), r.stderr


@pytest.mark.parametrize(("flag", "runs"), [("bcc", "bcc"), ("auto", "core")])
def test_build_info_names_the_backend_that_runs(flag: str, runs: str) -> None:
    """collector_build_info{backend} is the backend chosen at attach (auto: CO-RE here,
    where it loads), not the configured name."""
    from tests.support.bcc_headers import kernel_source

    with CollectorProcess("--backend", flag, "--no-procfs-events",
                          "--metrics-address", "127.0.0.1:0",
                          env={"BCC_KERNEL_SOURCE": str(kernel_source())}) as c:
        c.wait_attached(600.0)  # bcc compiles at start (tests/test_capture.py ATTACH_TIMEOUT_S)
        assert any(f"backend {runs};" in line for line in c.stderr_lines), c.stderr
        samples = scrape(base_url(c))
        info = [dict(k[1]) for k in samples if k[0] == "collector_build_info"]
        assert info == [{"version": "0.1.0", "backend": runs}]
        assert c.stop() == 0
