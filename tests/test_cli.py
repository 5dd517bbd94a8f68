"""The CLI contract: exit codes, one-line errors, clean stops, precedence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from collector.config import resolve
from collector.config_doc import example_toml
from collector.schema import raw_schema
from tests.helpers import COLLECTOR, REPO, CollectorProcess, wait_for

AS_NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
        prefix: tuple[str, ...] | list[str] = ()) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    full_env.update(env or {})
    return subprocess.run([*prefix, COLLECTOR, *args], capture_output=True, text=True,
                          env=full_env, stdin=subprocess.DEVNULL, timeout=timeout, check=False)


def assert_one_line_error(res: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert res.returncode == code, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("collector: ")
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--bogus"], "--bogus"),
        (["run", "--duration", "soon"], "--duration"),
        (["run", "--sink", "printer"], "printer"),
        (["run", "--format", "xml"], "xml"),
        (["run", "--args-max", "40000"], "capture.args_max_bytes"),
        (["run", "--sink", "file"], "file.path"),
        (["run", "--sink", "kafka"], "kafka.bootstrap"),
        (["run", "--kafka-option", "novalue", "--sink", "stdout"], "KEY=VALUE"),
        (["run", "--config", "/nonexistent/collector.toml"], "not found"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_usage_errors_exit_2(args: list[str], needle: str) -> None:
    assert_one_line_error(cli(*args), 2, needle)


def test_config_file_errors_name_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[capture]\nargs_max_bytes = "lots"\n')
    assert_one_line_error(cli("run", "--config", str(cfg)), 2, "capture.args_max_bytes", "lots")
    cfg.write_text("[capture]\nspeed = 3\n")
    assert_one_line_error(cli("run", "--config", str(cfg)), 2, "capture.speed", "unknown key")
    cfg.write_text("[stdout]\nwhen_full = \"explode\"\n")
    assert_one_line_error(cli("run", "--config", str(cfg)), 2, "stdout.when_full", "explode",
                          "drop-newest")
    cfg.write_text("this is = not = toml\n")
    assert_one_line_error(cli("run", "--config", str(cfg)), 2, "not valid TOML")


def test_environment_errors_name_the_variable() -> None:
    assert_one_line_error(cli("run", env={"COLLECTOR_DURATION": "-5"}), 2, "duration")
    assert_one_line_error(cli("run", env={"COLLECTOR_NO_SUCH": "1"}), 2, "COLLECTOR_NO_SUCH")
    # rules are tables: the environment cannot carry them, and says so rather than ignore them
    assert_one_line_error(cli("run", env={"COLLECTOR_FILTER_ALLOW": "uid=0"}), 2,
                          "COLLECTOR_FILTER_ALLOW", "config file", "[[filter.allow]]")
    res = cli("run", env={"COLLECTOR_KAFKA_OPTIONS": "sasl.password=pa;ss-tail"})
    assert_one_line_error(res, 2, "COLLECTOR_KAFKA_OPTIONS", "item 2 is not KEY=VALUE")
    assert "ss-tail" not in res.stderr  # a piece of a password is never echoed


def test_kafka_options_from_both_environment_variables() -> None:
    assert resolve(environ={"COLLECTOR_KAFKA_OPTIONS": r"sasl.password=a\;b;acks=1"})[
        "kafka.options"] == {"sasl.password": "a;b", "acks": "1"}  # '\;' keeps a ';'
    cfg = resolve(environ={"COLLECTOR_KAFKA_OPTIONS": "acks=1;linger.ms=7",
                           "COLLECTOR_KAFKA_OPTION": "linger.ms=9"})
    assert cfg["kafka.options"] == {"acks": "1", "linger.ms": "9"}
    flags = {"kafka.options": {"acks": "all"}}
    assert resolve(environ={"COLLECTOR_KAFKA_OPTIONS": "acks=1"}, flags=flags)["kafka.options"] \
        == {"acks": "all"}


def test_debug_variable_is_not_a_config_key() -> None:
    res = cli("run", "--duration", "0.3", env={"COLLECTOR_DEBUG": "1"})
    assert res.returncode == 0, res.stderr
    assert "collector: INFO attached in " in res.stderr  # the debug level is on


def test_unprivileged_run_is_one_clear_line() -> None:
    res = cli("run", "--duration", "1", prefix=AS_NOBODY)
    assert_one_line_error(res, 77, "CAP_BPF", "run as root")


def test_root_without_bpf_capabilities() -> None:
    # a container started without CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN
    drop = ["setpriv", "--bounding-set", "-sys_admin,-bpf,-perfmon",
            "--inh-caps", "-sys_admin,-bpf,-perfmon"]
    res = cli("run", "--duration", "1", prefix=drop)
    assert_one_line_error(res, 77, "running as root without CAP_BPF and CAP_PERFMON")


def test_check_as_root_and_as_nobody() -> None:
    ok = cli("check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = ok.stdout.strip().splitlines()
    # '-- ' marks a problem of the backend that is not selected (bcc here)
    assert all(line.startswith(("ok ", "-- ")) for line in lines), lines
    assert any(line.startswith("ok  probes:") and "attached" in line for line in lines)
    bad = cli("check", prefix=AS_NOBODY)
    assert bad.returncode == 1
    assert any(line.startswith("FAIL") and "CAP_BPF" in line for line in bad.stdout.splitlines())
    assert "Traceback" not in bad.stderr


def test_schemas_prints_the_schema_file() -> None:
    res = cli("schemas")
    assert res.returncode == 0
    assert json.loads(res.stdout) == json.loads((REPO / "schemas" / "process_event.avsc").read_text())
    assert json.loads(res.stdout) == raw_schema()


def test_example_config_is_current_and_loads() -> None:
    text = (REPO / "config" / "collector.toml").read_text()
    assert text == example_toml(), "regenerate: .venv/bin/collector example-config > config/collector.toml"
    res = cli("run", "--config", str(REPO / "config" / "collector.toml"), "--duration", "0.5")
    assert res.returncode == 0, res.stderr


def test_duration_stops_cleanly() -> None:
    start = time.monotonic()
    res = cli("run", "--duration", "1.5")
    elapsed = time.monotonic() - start
    assert res.returncode == 0, res.stderr
    assert 1.5 <= elapsed < 15
    assert "stats: kernel records=" in res.stderr
    for line in res.stdout.splitlines():
        json.loads(line)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_cleanly(sig: int) -> None:
    with CollectorProcess() as c:
        c.wait_attached()
        assert c.stop(sig) == 0
        assert "Traceback" not in c.stderr
        assert c.stats_line()


def test_stops_whenever_the_signals_come() -> None:
    """Signals that land while the main thread is inside a lock (a handler that
    took the same lock deadlocked the stop): a storm of SIGHUP and repeated
    SIGTERM, then the collector must still stop, cleanly and soon."""
    for _ in range(3):
        with CollectorProcess() as c:
            c.wait_attached()
            for i in range(400):
                c.proc.send_signal(signal.SIGHUP)
                if i % 50 == 49:
                    time.sleep(0.01)
            for _ in range(20):
                c.proc.send_signal(signal.SIGTERM)
            assert c.wait(15) == 0, c.stderr
            assert "Traceback" not in c.stderr


def test_closed_pipe_ends_quietly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    res = subprocess.run(f"{COLLECTOR} run | head -n 1", shell=True, capture_output=True,
                         text=True, timeout=60, env=env, executable="/bin/bash",
                         stdin=subprocess.DEVNULL)
    # the collector's own status: bash reports the last command's; use PIPESTATUS
    status = subprocess.run(
        f"{COLLECTOR} run --stats-interval 0 2>/dev/null | head -n 1 >/dev/null; "
        "echo ${PIPESTATUS[0]}", shell=True, capture_output=True, text=True, timeout=60,
        env=env, executable="/bin/bash", stdin=subprocess.DEVNULL)
    assert status.stdout.strip() == "0"
    assert len(res.stdout.splitlines()) == 1
    json.loads(res.stdout)
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr


def test_flag_beats_env_beats_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('node = "from-file"\n')

    def node_of(*args: str, env: dict[str, str] | None = None) -> str:
        res = cli("run", "--config", str(cfg), "--duration", "0.3", *args, env=env)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout.splitlines()[0])["node"]

    assert node_of() == "from-file"
    assert node_of(env={"COLLECTOR_NODE": "from-env"}) == "from-env"
    assert node_of("--node", "from-flag", env={"COLLECTOR_NODE": "from-env"}) == "from-flag"


def test_stats_interval_prints_periodically() -> None:
    with CollectorProcess("--stats-interval", "0.5") as c:
        c.wait_attached()
        wait_for(lambda: sum(s.startswith("stats:") for s in c.stderr_lines) >= 2, timeout=10)
        assert c.stop() == 0


def test_least_privilege_non_root_with_capabilities(tmp_path: Path) -> None:
    """What deploy/ promises: a non-root user with CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and
    CAP_DAC_READ_SEARCH (ambient) captures real events."""
    caps = "+bpf,+perfmon,+dac_read_search,+sys_ptrace"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    proc = subprocess.Popen(
        [*AS_NOBODY, "--inh-caps", caps, "--ambient-caps", caps, COLLECTOR, "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    try:
        assert proc.stderr is not None
        assert b"attached in" in proc.stderr.readline()
        child = subprocess.Popen(["/bin/true", "least-privilege"], cwd=tmp_path)
        child.wait()
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    execs = [json.loads(line) for line in out.splitlines()
             if b'"least-privilege"' in line]
    assert [e["event_type"] for e in execs] == ["process_exec", "process_exit"]
    assert execs[0]["process"]["pid"] == child.pid
