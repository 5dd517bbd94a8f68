"""container_id from real cgroups: the test creates cgroup v2 directories named
the way docker, containerd (CRI, and Kubernetes' cgroupfs layout), CRI-O and
podman name them, moves processes it spawns into them, and checks the ids
the collector derives from the kernel's cgroup id. Everything it creates
lives under one uniquely named directory, removed at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.enrich.containers import container_id_from_path
from tests.helpers import CollectorProcess, of_pid, stat_value, wait_for

SLEEP = os.path.realpath("/bin/sleep")
TRUE = os.path.realpath("/bin/true")


def _cgroup2_mount() -> Path:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.startswith("cgroup2 ") and pre.split()[3] == "/":
                return Path(pre.split()[4])
    pytest.fail("no cgroup2 mount: this test needs cgroup v2 (unified or hybrid)")


CG2 = _cgroup2_mount()


@pytest.fixture
def cgroup_root() -> Iterator[Path]:
    root = CG2 / f"pc-test-{secrets.token_hex(4)}"
    root.mkdir()
    try:
        yield root
    finally:
        for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _remove(path)
        _remove(root)


def _remove(path: Path) -> None:
    deadline = time.monotonic() + 5
    while (path / "cgroup.procs").read_text().strip():  # processes still exiting
        if time.monotonic() > deadline:  # a failed test left one behind
            (path / "cgroup.kill").write_text("1")
        time.sleep(0.02)
    path.rmdir()


def layouts(cid: str) -> dict[str, tuple[str, str | None]]:
    """name → (cgroup path under the test root, the container id expected)."""
    pod = f"pod{uuid.uuid4()}"
    pod_unit = pod.replace("-", "_")
    return {
        "docker-systemd": (f"system.slice/docker-{cid[0]}.scope", cid[0]),
        "docker-cgroupfs": (f"docker/{cid[1]}", cid[1]),
        "cri-containerd": ("kubepods.slice/kubepods-burstable.slice/"
                           f"kubepods-burstable-{pod_unit}.slice/cri-containerd-{cid[2]}.scope",
                           cid[2]),
        "k8s-cgroupfs": (f"kubepods/besteffort/{pod}/{cid[3]}", cid[3]),
        "crio": (f"machine.slice/crio-{cid[4]}.scope", cid[4]),
        "crio-conmon": (f"machine.slice/crio-conmon-{cid[5]}.scope", None),
        "podman": (f"machine.slice/libpod-{cid[6]}.scope", cid[6]),
        "host": ("system.slice/cron.service", None),
    }


def _ids() -> list[str]:
    return [secrets.token_hex(32) for _ in range(7)]


def _join(cgroup: Path, then: str) -> list[str]:
    """sh moves itself into the cgroup, then execs `then` there."""
    return ["sh", "-c", f'echo $$ > "{cgroup}/cgroup.procs" && exec {then}']


def _exec_and_exit(c: CollectorProcess, pid: int, binary: str) -> tuple[dict[str, Any], ...]:
    """The sh exec, the image's exec and its exit; matched by exec_id, since on a busy host
    (pid_max 32768) another process may have had this pid during the run."""
    def found() -> tuple[dict[str, Any], ...] | None:
        events = c.events()
        execs = of_pid(events, pid, "process_exec")
        for i, ex in enumerate(execs):
            if ex["process"]["binary"] != binary or i == 0:
                continue
            exits = [e for e in of_pid(events, pid, "process_exit")
                     if e["process"]["exec_id"] == ex["process"]["exec_id"]]
            if exits:
                [exit_] = exits
                return execs[i - 1], ex, exit_
        return None
    return wait_for(found)


def test_container_ids_from_real_cgroups(cgroup_root: Path) -> None:
    cases = layouts(_ids())
    for rel, _ in cases.values():
        (cgroup_root / rel).mkdir(parents=True)
    mine = Path("/proc/self/cgroup").read_text().split("0::", 1)[1].split()[0]
    my_cgroup = os.stat(CG2 / mine.lstrip("/")).st_ino
    with CollectorProcess() as c:
        c.wait_attached()
        procs = {}
        for name, (rel, _) in cases.items():
            # long-lived (its /proc entry names the cgroup) and short-lived (gone by then)
            procs[name, "sleep"] = subprocess.Popen(_join(cgroup_root / rel, "/bin/sleep 0.3"))
            procs[name, "true"] = subprocess.Popen(_join(cgroup_root / rel, "/bin/true"))
        for p in procs.values():
            assert p.wait() == 0
        results = {key: _exec_and_exit(c, p.pid, SLEEP if key[1] == "sleep" else TRUE)
                   for key, p in procs.items()}
        assert c.stop() == 0, c.stderr
    for (name, kind), (sh_exec, ex, exit_) in results.items():
        rel, want = cases[name]
        cgroup_id = os.stat(cgroup_root / rel).st_ino
        # sh started in our cgroup; the image it exec'd runs in the "container"
        assert sh_exec["process"]["cgroup_id"] == my_cgroup, (name, kind)
        assert sh_exec["process"]["container_id"] is None, (name, kind)
        assert ex["process"]["cgroup_id"] == cgroup_id, (name, kind)
        assert ex["process"]["container_id"] == want, (name, kind)
        assert exit_["process"]["cgroup_id"] == cgroup_id, (name, kind)
        assert exit_["process"]["container_id"] == want, (name, kind)
        assert ex["parent"]["exec_id"] == sh_exec["process"]["exec_id"]
    assert stat_value(c.stats_line(), "drops") == 0


def test_container_found_by_the_startup_scan(cgroup_root: Path, tmp_path: Path) -> None:
    cid = secrets.token_hex(32)
    cgroup = cgroup_root / f"system.slice/docker-{cid}.scope"
    cgroup.mkdir(parents=True)
    go = tmp_path / "go"
    script = (f'echo $$ > "{cgroup}/cgroup.procs"; while [ ! -e "{go}" ]; do sleep 0.02; done; '
              "/bin/true in-container; exit 0")
    runner = subprocess.Popen(["sh", "-c", script])
    try:
        wait_for(lambda: str(cgroup.relative_to(CG2)) in
                 Path(f"/proc/{runner.pid}/cgroup").read_text())
        with CollectorProcess() as c:
            c.wait_attached()
            [found] = wait_for(lambda: [e for e in c.events() if e["process"]["pid"] == runner.pid
                                        and "procfs" in e["process"]["flags"]])
            go.touch()
            assert runner.wait() == 0
            [exit_] = wait_for(lambda: [e for e in c.events() if e["process"]["pid"] == runner.pid
                                        and e["event_type"] == "process_exit"])
            true_exec = wait_for(lambda: [e for e in c.events() if e["event_type"] == "process_exec"
                                          and e["process"]["args"] == ["/bin/true", "in-container"]
                                          and e["process"]["ppid"] == runner.pid])
            assert c.stop() == 0, c.stderr
    finally:
        go.touch()
        runner.wait()
    assert found["process"]["container_id"] == cid
    assert found["process"]["cgroup_id"] == os.stat(cgroup).st_ino
    assert exit_["process"]["container_id"] == cid
    assert true_exec[0]["process"]["container_id"] == cid
    assert true_exec[0]["parent"]["container_id"] == cid


@pytest.mark.parametrize(("path", "want"), [
    ("/system.slice/docker-" + "a" * 64 + ".scope", "a" * 64),
    ("/docker/" + "b" * 64, "b" * 64),
    ("/kubepods/burstable/pod0f7e0b3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b/" + "c" * 64, "c" * 64),
    ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f7e0b3a_1c2d.slice/"
     "cri-containerd-" + "d" * 64 + ".scope", "d" * 64),
    ("/machine.slice/crio-" + "e" * 64 + ".scope", "e" * 64),
    ("/machine.slice/crio-conmon-" + "e" * 64 + ".scope", None),
    ("/machine.slice/libpod-" + "f" * 64 + ".scope/container", "f" * 64),
    # docker in docker: the innermost container
    ("/docker/" + "1" * 64 + "/docker/" + "2" * 64, "2" * 64),
    ("/system.slice/docker.service", None),
    ("/user.slice/user-1000.slice/session-2.scope", None),
    ("/", None),
    ("/docker/" + "a" * 63, None),
    ("/docker/" + "A" * 64, None),
])
def test_container_id_from_path(path: str, want: str | None) -> None:
    assert container_id_from_path(path) == want


def test_resolver_walks_only_for_new_ids(cgroup_root: Path) -> None:
    """The resolver on its own, with real cgroups and no live process to ask
    (pid 0): each id newer than every walk costs one walk, then is remembered;
    a removed cgroup's id costs no walk and is never guessed."""
    from collector.enrich.containers import CgroupResolver

    r = CgroupResolver(str(CG2))
    first, second = secrets.token_hex(32), secrets.token_hex(32)
    a = cgroup_root / f"docker-{first}.scope"
    a.mkdir()
    gone = cgroup_root / "gone.scope"
    gone.mkdir()
    gone_id = os.stat(gone).st_ino
    gone.rmdir()
    b = cgroup_root / f"crio-{second}.scope"
    b.mkdir()
    a_id, b_id = os.stat(a).st_ino, os.stat(b).st_ino
    assert a_id < gone_id < b_id  # ids grow
    assert r.container_id(b_id, 0) == second
    assert r.stats.scans == 1
    assert r.container_id(a_id, 0) == first  # found by that same walk
    assert r.container_id(b_id, 0) == second  # remembered
    assert r.container_id(gone_id, 0) is None  # older than the walk, not in it: removed
    assert (r.stats.scans, r.stats.unresolved) == (1, 1)
    c = cgroup_root / "host.scope"
    c.mkdir()
    assert r.container_id(os.stat(c).st_ino, 0) is None  # a host cgroup: a real answer
    assert r.stats.scans == 2
    # with a live process in the cgroup, /proc answers without a walk
    d = cgroup_root / f"docker-{first}.scope" / "init.scope"
    d.mkdir()
    p = subprocess.Popen(_join(d, "/bin/sleep 5"))
    try:
        wait_for(lambda: "init.scope" in Path(f"/proc/{p.pid}/cgroup").read_text())
        assert r.container_id(os.stat(d).st_ino, p.pid) == first
        assert (r.stats.scans, r.stats.from_proc) == (2, 1)
    finally:
        p.kill()
        p.wait()
