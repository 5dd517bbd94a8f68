"""A sink written outside the project is found by its entry point and gets
the core's pipeline: tests/plugin_sink is a separate distribution (its own
pyproject.toml, importing only collector.export), pip-installed into the
venv for this module and uninstalled after it. No file of the project names
it: `--sink memo` works because its entry point says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import COLLECTOR, REPO, CollectorProcess, stat_value

PLUGIN = REPO / "tests" / "plugin_sink"


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                   check=True)


@pytest.fixture(scope="module")
def memo_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # built from a copy (the build leaves files behind); offline: the venv has
    # setuptools (the test extra), so no build environment is fetched
    src = tmp_path_factory.mktemp("plugin") / "memo-sink"
    shutil.copytree(PLUGIN, src)
    pip("install", "--no-build-isolation", "--no-deps", str(src))
    try:
        yield
    finally:
        pip("uninstall", "-y", "memo-sink")


def test_before_it_is_installed_the_name_is_refused() -> None:
    # first in this module: the module's fixture has not installed the plugin yet
    res = subprocess.run([COLLECTOR, "run", "--sink", "memo"], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 2
    assert "'--sink': 'memo' is not one of" in res.stderr, res.stderr


def test_collector_sinks_lists_the_plugin_and_its_options(memo_installed: None) -> None:
    res = subprocess.run([COLLECTOR, "sinks"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(line.startswith("memo  (memo_sink:MemoSink)") for line in lines), res.stdout
    assert any(line.strip().startswith("memo.path  str") for line in lines)
    assert any(line.strip().startswith("memo.fail_first  int (batches) = 0") for line in lines)
    assert any("Env: COLLECTOR_MEMO_PATH" in line for line in lines)
    # the built-in ones are listed the same way
    assert [line.split()[0] for line in lines if not line.startswith(" ")][:3] == \
        ["stdout", "file", "kafka"]


def test_plugin_gets_every_event_and_its_failures_are_retried_by_the_core(
        memo_installed: None, tmp_path: Path) -> None:
    out = tmp_path / "memo.jsonl"
    with CollectorProcess("--sink", "memo", "--sink-option", f"memo.path={out}",
                          "--sink-option", "memo.fail_first=3",
                          "--sink-option", "memo.retry_initial_ms=20",
                          "--no-procfs-events", "--stats-interval", "0") as c:
        c.wait_attached()
        pids = []
        for i in range(20):
            p = subprocess.Popen(["/bin/true", "memo-plugin", str(i)], cwd=tmp_path)
            p.wait()
            pids.append(p.pid)
        time.sleep(0.5)
        assert c.stop() == 0, c.stderr
    events = [json.loads(line) for line in out.read_bytes().splitlines()]
    mine = [e for e in events if e["process"]["args"][:2] == ["/bin/true", "memo-plugin"]]
    for i, pid in enumerate(pids):
        kinds = [e["event_type"] for e in mine if e["process"]["pid"] == pid]
        assert kinds == ["process_exec", "process_exit"], (pid, kinds)
        assert next(e for e in mine if e["process"]["pid"] == pid)["process"]["args"][2] == str(i)
    line = c.stats_line()
    assert stat_value(line, "retries", "memo") == 3  # the core's retries, not the plugin's
    assert stat_value(line, "injected_failures", "memo") == 3
    assert stat_value(line, "dropped", "memo") == 0
    assert stat_value(line, "written", "memo") == stat_value(line, "queued", "memo") == len(events)


def test_plugin_options_from_the_environment_and_unknown_keys(memo_installed: None,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "env.jsonl"
    env = {"COLLECTOR_MEMO_PATH": str(out), "COLLECTOR_SINK": "memo"}
    with CollectorProcess("--duration", "1", env=env) as c:
        assert c.wait(30) == 0, c.stderr
    assert out.exists() and out.read_bytes()  # the start-up scan's events at least
    bad = subprocess.run([COLLECTOR, "run", "--sink", "memo", "--sink-option",
                          f"memo.path={out}", "--sink-option", "memo.colour=blue"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "collector: config key memo.colour: unknown key; `collector sinks` lists the keys of "
        "the memo sink"]
    missing = subprocess.run([COLLECTOR, "run", "--sink", "memo"], capture_output=True,
                             text=True, check=False)
    assert missing.returncode == 2
    assert "config key memo.path: required with --sink memo" in missing.stderr


def test_a_sink_that_fails_for_good_while_running_exits_4(memo_installed: None,
                                                        tmp_path: Path) -> None:
    """errors.py: a sink that failed fatally is exit 4, at start or while running; the
    other sinks go on until the stop."""
    out = tmp_path / "fatal.jsonl"
    with CollectorProcess("--sink", "memo", "--sink", "stdout", "--sink-option",
                          f"memo.path={out}", "--sink-option", "memo.fatal_after=1",
                          "--sink-option", "memo.batch_timeout_ms=0") as c:
        c.wait_attached()
        for i in range(5):
            subprocess.run(["/bin/true", "memo-fatal", str(i)], check=True)
            time.sleep(0.1)
        time.sleep(0.5)
        assert c.proc.poll() is None  # stdout still works: the collector goes on
        assert c.stop() == 4, c.stderr
    assert [s for s in c.stderr_lines if s.startswith("collector: sink memo stopped: ")] == [
        "collector: sink memo stopped: memo sink: injected fatal failure; fix: none, it is "
        "a test"]
    line = c.stats_line()
    assert "FAILED(memo sink: injected fatal failure" in line
    assert stat_value(line, "dropped", "stdout") == 0
    stdout_pids = {e["process"]["args"][2] for e in c.events()
                   if e["process"]["args"][:2] == ["/bin/true", "memo-fatal"]}
    assert stdout_pids == {str(i) for i in range(5)}  # every event still reached stdout
