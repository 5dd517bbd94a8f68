"""Process lineage from the cache, against real process trees started here.

One collector (with 3 ancestors on exec events) runs for the module; each
test starts a tree from pytest and follows exec_id links through it.
"""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import CollectorProcess, of_pid, since_this_test, stat_value, wait_for

BASH = os.path.realpath("/bin/bash")
SH = os.path.realpath("/bin/sh")
TRUE = os.path.realpath("/bin/true")
SLEEP = os.path.realpath("/bin/sleep")
PYTHON = os.path.realpath(sys.executable)

Event = dict[str, Any]


@pytest.fixture(scope="module")
def collector() -> Iterator[CollectorProcess]:
    with CollectorProcess("--ancestors", "3") as c:
        c.wait_attached()
        yield c
        assert c.stop() == 0, c.stderr
        assert stat_value(c.stats_line(), "drops") == 0


def pytest_image(c: CollectorProcess) -> dict[str, Any]:
    """This pytest process as the start-up scan found it."""
    found = [e for e in c.events() if e["process"]["pid"] == os.getpid()
             and "procfs" in e["process"]["flags"]]
    assert len(found) == 1, found
    return found[0]["process"]  # type: ignore[no-any-return]


def exit_of(c: CollectorProcess, pid: int) -> Event:
    found = wait_for(lambda: of_pid(c.events(), pid, "process_exit", since_this_test()))
    assert len(found) == 1, found
    return found[0]  # type: ignore[no-any-return]


def execs_of(c: CollectorProcess, pid: int) -> list[Event]:
    return of_pid(c.events(), pid, "process_exec", since_this_test())


def child_exec(c: CollectorProcess, parent: Event, binary: str) -> Event:
    """The one exec of `binary` whose parent record is `parent`'s image."""
    found = [e for e in c.events() if e["event_type"] == "process_exec"
             and e["process"]["binary"] == binary and e["parent"] is not None
             and e["parent"]["exec_id"] == parent["process"]["exec_id"]]
    assert len(found) == 1, found
    return found[0]


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["exec_id"] for r in records]


def test_tree_bash_python_sh_true(collector: CollectorProcess) -> None:
    code = "import subprocess; subprocess.run(['sh', '-c', '/bin/true tree-leaf; exit 0'])"
    # "; exit 0" keeps each shell from exec'ing its last command in place
    bash = subprocess.Popen(["bash", "-c", f"{shlex.quote(PYTHON)} -c {shlex.quote(code)}; exit 0"])
    assert bash.wait() == 0
    bash_exit = exit_of(collector, bash.pid)
    [bash_exec] = execs_of(collector, bash.pid)
    py_exec = child_exec(collector, bash_exec, PYTHON)
    sh_exec = child_exec(collector, py_exec, SH)
    true_exec = child_exec(collector, sh_exec, TRUE)
    assert true_exec["process"]["args"] == ["/bin/true", "tree-leaf"]
    me = pytest_image(collector)

    chain = [me, bash_exec["process"], py_exec["process"], sh_exec["process"],
             true_exec["process"]]
    for parent, child in itertools.pairwise(chain):
        assert child["parent_exec_id"] == parent["exec_id"]
        assert child["ppid"] == parent["pid"]
        assert child["pid"] != parent["pid"]
    for ev, parent in ((bash_exec, me), (py_exec, chain[1]), (sh_exec, chain[2]),
                       (true_exec, chain[3])):
        assert ev["parent"] == parent  # the full record, exactly as it was emitted
    # ancestors: the parent's parent first, at most 3
    assert ids(true_exec["ancestors"]) == ids([chain[2], chain[1], me])
    assert ids(sh_exec["ancestors"]) == ids([chain[1], me, *pytest_parent(collector, me)])
    # every exit carries its exec's exec_id and the same parent record
    for ev in (bash_exec, py_exec, sh_exec, true_exec):
        ex = exit_of(collector, ev["process"]["pid"])
        assert ex["process"]["exec_id"] == ev["process"]["exec_id"]
        assert ex["parent"] == ev["parent"]
        assert ex["ancestors"] is None
        assert ex["exit_code"] == 0
    assert bash_exit["process"]["ppid"] == os.getpid()


def pytest_parent(c: CollectorProcess, me: dict[str, Any]) -> list[dict[str, Any]]:
    """pytest's own parent record (from the start-up scan), if it has one."""
    found = [e for e in c.events() if e["process"]["pid"] == me["ppid"]
             and "procfs" in e["process"]["flags"]]
    return [found[0]["process"]] if found else []


def test_exec_without_fork_keeps_pid_new_exec_id(collector: CollectorProcess) -> None:
    child = subprocess.Popen(["bash", "-c", "exec /bin/true in-place"])
    assert child.wait() == 0
    ex = exit_of(collector, child.pid)
    bash_image, true_image = execs_of(collector, child.pid)
    assert bash_image["process"]["binary"] == BASH
    assert true_image["process"]["binary"] == TRUE
    assert true_image["process"]["pid"] == bash_image["process"]["pid"] == child.pid
    assert true_image["process"]["exec_id"] != bash_image["process"]["exec_id"]
    # the parent of the new image is the image it replaced
    assert true_image["parent"] == bash_image["process"]
    assert true_image["process"]["parent_exec_id"] == bash_image["process"]["exec_id"]
    assert true_image["process"]["ppid"] == os.getpid()
    assert true_image["ancestors"][0]["exec_id"] == pytest_image(collector)["exec_id"]
    assert ex["process"]["exec_id"] == true_image["process"]["exec_id"]
    assert ex["parent"]["exec_id"] == bash_image["process"]["exec_id"]
    assert ex["process"]["start_time"] == bash_image["process"]["start_time"]


# A subreaper helper: runs `sh -c '(sleep &)'`, whose subshell forks the sleep
# and exits at once (a double fork), then reaps the orphaned sleep and prints
# its pid and status.
SUBREAPER = textwrap.dedent("""
    import ctypes, os, subprocess, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        sys.exit("prctl failed: %d" % ctypes.get_errno())
    sh = subprocess.run(["sh", "-c", "(/bin/sleep 0.5 &); exit 0"])
    pid, status = os.wait()  # the orphan, reparented to us
    print(pid, sh.returncode, os.waitstatus_to_exitcode(status), flush=True)
""")


def test_double_fork_daemon_reparented_to_subreaper(collector: CollectorProcess) -> None:
    helper = subprocess.run([PYTHON, "-c", SUBREAPER], capture_output=True, text=True, check=True)
    sleep_pid, sh_rc, sleep_rc = map(int, helper.stdout.split())
    assert (sh_rc, sleep_rc) == (0, 0)
    ex = exit_of(collector, sleep_pid)
    [sleep_exec] = execs_of(collector, sleep_pid)
    # the subshell that forked the sleep exited long before the sleep did
    subshell = sleep_exec["parent"]
    assert subshell["binary"] == SH
    assert subshell["flags"] == ["fork"]
    sub_exit = exit_of(collector, subshell["pid"])
    assert sub_exit["process"]["exec_id"] == subshell["exec_id"]
    assert sub_exit["time"] < ex["time"]
    # the lineage: sleep → subshell → sh → the helper's python
    [sh_exec] = execs_of(collector, subshell["ppid"])
    assert sh_exec["process"]["binary"] == SH
    assert subshell["parent_exec_id"] == sh_exec["process"]["exec_id"]
    assert sh_exec["parent"]["binary"] == PYTHON
    helper_pid = sh_exec["process"]["ppid"]
    assert sleep_exec["ancestors"][0] == sh_exec["process"]
    # the exit still names the subshell as parent; ppid is the subreaper's
    assert ex["parent"] == subshell
    assert ex["process"]["exec_id"] == sleep_exec["process"]["exec_id"]
    assert ex["process"]["ppid"] == helper_pid


def test_orphan_ppid_is_the_kernels_reaper(collector: CollectorProcess) -> None:
    """Without a subreaper of our own, whatever the kernel reparents to."""
    sh = subprocess.run(["sh", "-c", "(/bin/sleep 5 >/dev/null 2>&1 & echo $!); exit 0"], capture_output=True,
                        text=True, check=True)
    pid = int(sh.stdout)
    with open(f"/proc/{pid}/stat") as f:
        reaper = int(f.read().rsplit(")", 1)[1].split()[1])
    assert reaper != os.getpid()
    os.kill(pid, signal.SIGTERM)
    ex = exit_of(collector, pid)
    assert ex["process"]["ppid"] == reaper
    assert ex["signal"] == "SIGTERM"
    assert ex["parent"]["binary"] == SH
    assert ex["parent"]["flags"] == ["fork"]


# The forker moves on before its child execs: the child waits (without forking)
# until the pipe's write end closes, i.e. until the forker exec'd sleep (the end
# is close-on-exec) or exited; then it execs true. The kernel holds the child's
# fork record back and sends it at that exec (bpf/process.bpf.c, "Forks held
# back"), when the forker's live image is no longer the one that forked.
FORKER = """
import os, sys, time
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.close(w)
    os.read(r, 1)
    time.sleep(0.2)
    os.execv({true!r}, [{true!r}, "late-fork"])
os.close(r)
print(child, flush=True)
if sys.argv[1] == "exec":
    os.execv({sleep!r}, [{sleep!r}, "1"])
os._exit(0)
"""


@pytest.mark.parametrize("forker_then", ["exec", "exit"])
def test_the_forker_stays_the_parent_when_it_moves_on_first(collector: CollectorProcess,
                                                             forker_then: str) -> None:
    with subprocess.Popen([PYTHON, "-c", FORKER.format(true=TRUE, sleep=SLEEP), forker_then],
                          stdout=subprocess.PIPE, text=True) as helper:
        assert helper.stdout is not None
        child = int(helper.stdout.readline())
        assert helper.wait(10) == 0
    ex = exit_of(collector, child)
    [child_exec] = execs_of(collector, child)
    assert child_exec["process"]["args"] == [TRUE, "late-fork"]
    forker_execs = execs_of(collector, helper.pid)
    assert forker_execs[0]["process"]["binary"] == PYTHON
    # the parent is the image that forked (python), not what the forker became
    assert child_exec["parent"]["exec_id"] == forker_execs[0]["process"]["exec_id"]
    assert child_exec["parent"]["binary"] == PYTHON
    assert child_exec["process"]["parent_exec_id"] == forker_execs[0]["process"]["exec_id"]
    if forker_then == "exec":
        assert [e["process"]["binary"] for e in forker_execs] == [PYTHON, SLEEP]
        assert forker_execs[1]["parent"]["exec_id"] == forker_execs[0]["process"]["exec_id"]
    assert ex["parent"]["exec_id"] == forker_execs[0]["process"]["exec_id"]
