"""Run the real collector as a subprocess and read what it wrote.

Tests drive `collector run` exactly as a user does (the console script of
the venv the tests run in), so the CLI, the probes and the sinks are all
real. The collector ignores its own descendants, and these tests spawn
their processes from pytest, not from the collector, so they are seen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

COLLECTOR = str(Path(sys.executable).with_name("collector"))
REPO = Path(__file__).resolve().parent.parent


class CollectorProcess:
    """`collector <args>` in the background, its stdout and stderr collected."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: str | None = None,
                 command: str = "run", prefix: tuple[str, ...] = (),
                 collector: str = COLLECTOR) -> None:
        """prefix: a command the collector runs under, e.g. setpriv with its options;
        collector: its path there (e.g. inside a container image)."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [*prefix, collector, command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
        )
        self.stdout_lines: list[bytes] = []
        self.stderr_lines: list[str] = []
        self._attached = threading.Event()
        self._t_out = threading.Thread(target=self._pump_out, daemon=True)
        self._t_err = threading.Thread(target=self._pump_err, daemon=True)
        self._t_out.start()
        self._t_err.start()
        self.returncode: int | None = None
        self._parsed = 0
        self._by_pid: dict[int, list[dict[str, Any]]] = {}

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout_lines.append(line)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines.append(line)
            if "attached in" in line:
                self._attached.set()

    def wait_attached(self, timeout: float = 30.0) -> CollectorProcess:
        deadline = time.monotonic() + timeout
        while not self._attached.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._t_err.join(2)
                raise AssertionError(f"collector did not attach (rc={self.proc.poll()}): "
                                     + "\n".join(self.stderr_lines[-20:]))
        return self

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 60.0) -> int:
        self.returncode = self.proc.wait(timeout)
        self._t_out.join(10)
        self._t_err.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return self.returncode

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in list(self.stdout_lines)]

    def of_pid(self, pid: int, event_type: str | None = None,
               since: str | None = None) -> list[dict[str, Any]]:
        """Kernel events (not /proc finds) of one pid, parsed incrementally; since:
        only processes that began after it (see the module-level of_pid)."""
        lines = self.stdout_lines
        while self._parsed < len(lines):
            event = orjson.loads(lines[self._parsed])
            self._parsed += 1
            if "procfs" in event["process"]["flags"]:
                continue
            self._by_pid.setdefault(event["process"]["pid"], []).append(event)
        return [e for e in self._by_pid.get(pid, [])
                if (event_type is None or e["event_type"] == event_type)
                and (since is None or e["process"]["start_time"] >= since)]

    def wait_exit(self, pid: int, timeout: float = 10.0, since: str | None = None,
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Wait for pid's exit event; return (its exec events, the exit event)."""
        wait_for(lambda: self.of_pid(pid, "process_exit", since), timeout)
        time.sleep(0.05)  # an exit is the last event of a pid: nothing more can come
        exits = self.of_pid(pid, "process_exit", since)
        assert len(exits) == 1, f"pid {pid}: {len(exits)} exit events: {exits}"
        return self.of_pid(pid, "process_exec", since), exits[0]

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def stats_line(self) -> str:
        lines = [s for s in self.stderr_lines if s.startswith("stats:")]
        assert lines, f"no stats line in stderr:\n{self.stderr}"
        return lines[-1]

    def __enter__(self) -> CollectorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        if self.returncode is None:
            self.wait(10)


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy; return its value or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def of_pid(events: Iterable[dict[str, Any]], pid: int, event_type: str | None = None,
           since: str | None = None) -> list[dict[str, Any]]:
    """Events whose process has this pid (and type, if given), in order.

    since (a started_since() value) keeps only processes that began after it:
    pids wrap (at 32768 on a default machine), so a collector that runs for a
    whole test module can have seen an earlier process with the same pid."""
    return [e for e in events if e["process"]["pid"] == pid
            and (event_type is None or e["event_type"] == event_type)
            and "procfs" not in e["process"]["flags"]
            and (since is None or e["process"]["start_time"] >= since)]


# how far the collector's boot-to-wall conversion may sit from time.time_ns()
START_TIME_SLACK_NS = 1_000_000_000


def started_since() -> str:
    """A start_time bound for of_pid: now less the clock slack. The timestamps
    are fixed-width RFC 3339 UTC, so they compare as strings."""
    from collector.encode.timefmt import rfc3339_ns

    return rfc3339_ns(time.time_ns() - START_TIME_SLACK_NS)


_test_began: str | None = None  # set by tests/conftest.py for every test


def since_this_test() -> str | None:
    """started_since() taken as the running test began: processes the test
    starts began after it, those of earlier tests (the same pids, after a
    wrap) before it. For collectors that run through a whole test module."""
    return _test_began


def stat_value(stats_line: str, name: str, section: str | None = None) -> int:
    """A counter from the stats line, e.g. stat_value(line, "drops") or
    stat_value(line, "written", section="stdout")."""
    parts = stats_line.removeprefix("stats: ").split(" | ")
    for part in parts:
        words = part.split()
        if section is not None and (not words or words[0] != section):
            continue
        for w in words:
            if w.startswith(name + "="):
                return int(w.split("=", 1)[1].split(",")[0].split(":")[-1])
    raise AssertionError(f"no counter {name} ({section}) in {stats_line}")
