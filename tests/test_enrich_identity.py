"""User names and namespace inode numbers on real processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from collector.enrich.namespaces import KINDS
from tests.helpers import CollectorProcess, of_pid, since_this_test, wait_for

SLEEP = os.path.realpath("/bin/sleep")
UNKNOWN_UID = 54321  # no passwd entry on the test machine (checked below)


@pytest.fixture(scope="module")
def collector() -> Iterator[CollectorProcess]:
    with CollectorProcess("--namespaces") as c:
        c.wait_attached()
        yield c
        assert c.stop() == 0, c.stderr


def _ns(pid: int) -> dict[str, int]:
    return {k: int(os.readlink(f"/proc/{pid}/ns/{k}").split("[")[1].rstrip("]")) for k in KINDS}


def _exec_exit(c: CollectorProcess, pid: int) -> tuple[dict[str, object], dict[str, object]]:
    [exit_] = wait_for(lambda: of_pid(c.events(), pid, "process_exit", since_this_test()))
    execs = of_pid(c.events(), pid, "process_exec", since_this_test())
    return execs[-1], exit_


def test_user_names(collector: CollectorProcess) -> None:
    import pwd

    with pytest.raises(KeyError):
        pwd.getpwuid(UNKNOWN_UID)
    named = subprocess.Popen([SLEEP, "0"], user=65534, group=65534)
    unnamed = subprocess.Popen([SLEEP, "0"], user=UNKNOWN_UID, group=UNKNOWN_UID)
    root = subprocess.Popen([SLEEP, "0"])
    for p in (named, unnamed, root):
        assert p.wait() == 0
    for p, uid, user in ((named, 65534, "nobody"), (unnamed, UNKNOWN_UID, None),
                         (root, 0, "root")):
        ex, exit_ = _exec_exit(collector, p.pid)
        for e in (ex, exit_):
            proc = e["process"]
            assert isinstance(proc, dict)
            assert (proc["uid"], proc["euid"], proc["gid"], proc["user"]) == (uid, uid, uid, user)


def test_namespaces_are_the_processes_own(collector: CollectorProcess) -> None:
    host = subprocess.Popen([SLEEP, "2"])
    alone = subprocess.Popen(["unshare", "--net", "--uts", "--ipc", SLEEP, "2"])
    try:
        for p in (host, alone):
            wait_for(lambda: os.readlink(f"/proc/{p.pid}/exe") == SLEEP)  # noqa: B023
        want = {p.pid: _ns(p.pid) for p in (host, alone)}
        events = {p.pid: wait_for(lambda: [
            e for e in of_pid(collector.events(), p.pid, "process_exec",  # noqa: B023
                              since_this_test())
            if e["process"]["binary"] == SLEEP]) for p in (host, alone)}
    finally:
        for p in (host, alone):
            p.kill()
            p.wait()
    assert events[host.pid][0]["process"]["namespaces"] == want[host.pid]
    assert events[alone.pid][0]["process"]["namespaces"] == want[alone.pid]
    differ = {k for k in KINDS if want[host.pid][k] != want[alone.pid][k]}
    assert differ == {"net", "uts", "ipc"}
    assert want[host.pid] == _ns(os.getpid())
    # the exit keeps what the exec saw
    _, exit_ = _exec_exit(collector, alone.pid)
    assert exit_["process"]["namespaces"] == want[alone.pid]  # type: ignore[index]
