"""Allow and deny rules together, and rule mistakes, through the real CLI.

`run_filtered` is shared by the per-kind tests (tests/test_filter_*.py):
it runs the collector with a TOML config, lets the test start processes,
then stops the collector, which drains every kernel record queued before
the stop, so each of the test's processes has been either emitted or
filtered by then.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import COLLECTOR, CollectorProcess, wait_for

Event = dict[str, Any]
TRUE = os.path.realpath("/bin/true")
SLEEP = os.path.realpath("/bin/sleep")


def run_filtered(tmp_path: Path, config: str, spawn: Callable[[], Any],
                 *args: str) -> tuple[list[Event], dict[str, int], Any]:
    """(events, stats counters, what spawn() returned) for one collector run."""
    cfg = tmp_path / "collector.toml"
    cfg.write_text(config)
    with CollectorProcess("--config", str(cfg), *args) as c:
        c.wait_attached()
        wait_for(lambda: any("start-up scan:" in s for s in c.stderr_lines))
        spawned = spawn()
        assert c.stop() == 0, c.stderr
        line = c.stats_line()
    stats = {k: int(v) for k, v in (w.split("=", 1) for w in line.split() if "=" in w)
             if v.isdigit()}
    return c.events(), stats, spawned


def run(argv: list[str], **kw: Any) -> int:
    """Start a process, wait for it, return its pid."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
    p.wait()
    return p.pid


def types_of(events: list[Event], pid: int) -> list[str]:
    return [e["event_type"] for e in events if e["process"]["pid"] == pid]


def test_deny_wins_over_allow_and_keys_of_a_rule_all_match(tmp_path: Path) -> None:
    config = """
[[filter.allow]]
binary = ["/sleep$", "/true$"]

[[filter.deny]]
args = "deny-me"

[[filter.deny]]
binary = "/true$"
args = "both-keys"
"""

    def spawn() -> dict[str, int]:
        return {
            "sleep": run([SLEEP, "0"]),
            "sleep-denied": run([SLEEP, "0", "deny-me"]),
            "true-one-key": run([TRUE, "both"]),  # args matches "both" only: not "both-keys"
            "true-both-keys": run([TRUE, "both-keys"]),
            "sleep-both-keys": run([SLEEP, "0", "both-keys"]),  # binary does not match
            "sh-not-allowed": run(["sh", "-c", "exit 0"]),
        }

    events, stats, pids = run_filtered(tmp_path, config, spawn)
    passed = {"sleep", "true-one-key", "sleep-both-keys"}
    for name, pid in pids.items():
        want = ["process_exec", "process_exit"] if name in passed else []
        assert types_of(events, pid) == want, name
    assert stats["filtered"] >= 6


def test_no_rules_means_no_stage(tmp_path: Path) -> None:
    events, stats, pid = run_filtered(tmp_path, "", lambda: run([TRUE]))
    assert types_of(events, pid) == ["process_exec", "process_exit"]
    assert stats["filtered"] == 0


@pytest.mark.parametrize(("toml", "message"), [
    ('[[filter.deny]]\nbinay = "x"',
     "config key filter.deny[0].binay: unknown filter key; use one of event_type, binary, "
     "args, parent_binary, uid, pid, container_id"),
    ('[[filter.allow]]\nuid = 0\n[[filter.allow]]\nbinary = "(unclosed"',
     "config key filter.allow[1].binary: bad regular expression '(unclosed': missing ), "
     "unterminated subpattern at position 0"),
    ("[[filter.deny]]\n",
     "config key filter.deny[0]: an empty rule matches every event; give it at least one of "
     "event_type, binary, args, parent_binary, uid, pid, container_id"),
    ('[[filter.deny]]\nevent_type = "exec"',
     "config key filter.deny[0].event_type: 'exec' is not valid; expected one of process_exec, "
     "process_exit"),
    ('[[filter.allow]]\nuid = "root"',
     "config key filter.allow[0].uid: 'root' is not valid; expected a non-negative integer or "
     "a list of them"),
    ("[[filter.allow]]\npid = []",
     "config key filter.allow[0].pid: [] is not valid; expected a value or a non-empty list of "
     "values"),
    ('[[filter.deny]]\ncontainer_id = "not-hex"',
     "config key filter.deny[0].container_id: 'not-hex' is not valid; expected a container id "
     "or a prefix of one (lowercase hex), a list of them, or true/false"),
    ('[redact]\npatterns = ["ok=(\\\\S+)", "[bad"]',
     "config key redact.patterns[1]: bad regular expression '[bad': unterminated character set "
     "at position 0"),
    ('[redact]\npatterns = ["x*"]',
     "config key redact.patterns[0]: 'x*' matches the empty string, so it would mask every "
     "argument; make it match a secret"),
])
def test_rule_mistakes_are_one_line_and_exit_2(tmp_path: Path, toml: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml + "\n")
    res = subprocess.run([COLLECTOR, "run", "--config", str(cfg), "--duration", "1"],
                         capture_output=True, text=True, timeout=30,
                         env={k: v for k, v in os.environ.items()
                              if not k.startswith("COLLECTOR_")})
    assert res.returncode == 2
    assert res.stderr == f"collector: {message}\n"
    assert res.stdout == ""
