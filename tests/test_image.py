"""The container image `make image` builds (buildah, on a debootstrap'd bookworm root),
run with podman as the DaemonSet runs it: in the host PID namespace, uid 0 holding only
the DaemonSet's capabilities, read-only root, the host's BTF mounted. It must capture
a host process's exec and exit and serve /healthz; its contents are checked too.

Podman on this kind of host needs two settings the test states explicitly: runc (crun
refuses hybrid v1+v2 cgroups) and rlimits no higher than the caller's (the default
nofile/nproc raise needs CAP_SYS_RESOURCE, which a sandboxed root may lack)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, CollectorProcess
from tests.test_deploy import container as daemonset_container
from tests.test_metrics import base_url, healthz, scrape, value

VENV_BIN = "/opt/process-collector/.venv/bin"


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    r = subprocess.run(["make", "-s", "-C", str(REPO), "print-image"], capture_output=True,
                       text=True, check=True)
    name = r.stdout.strip()
    build = subprocess.run(["make", "-C", str(REPO), "image"], capture_output=True, text=True,
                           timeout=1800)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    yield name


def podman(*args: str) -> list[str]:
    return ["podman", "run", "--runtime", "runc", "--rm", "--ulimit", "nofile=4096:4096",
            "--ulimit", "nproc=4096:4096", *args]


def as_daemonset() -> list[str]:
    """podman flags for the DaemonSet's pod spec: host PID, its capabilities only,
    read-only root, /sys/kernel/btf from the host, Unconfined seccomp."""
    sc = daemonset_container()["securityContext"]
    flags = ["--pid=host", "--network=host", "--read-only", "--user", str(sc["runAsUser"]),
             "--cap-drop=ALL", "--cap-add=" + ",".join(sc["capabilities"]["add"]),
             "-v", "/sys/kernel/btf:/sys/kernel/btf:ro", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro"]
    assert sc["seccompProfile"] == {"type": "Unconfined"}
    flags += ["--security-opt", "seccomp=unconfined"]
    if sc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    return flags


@pytest.mark.parametrize("mode", ["daemonset", "privileged"])
def test_image_captures_a_host_process_exec_and_exit(image: str, mode: str) -> None:
    flags = as_daemonset() if mode == "daemonset" else [
        "--privileged", "--pid=host", "--network=host"]
    name = f"pc-test-{uuid.uuid4().hex[:8]}"
    with CollectorProcess("--metrics-address", "127.0.0.1:0",
                          prefix=tuple(podman("--name", name, *flags, image)),
                          collector="run", command="--no-procfs-events") as c:
        try:
            c.wait_attached(timeout=120)
            url = base_url(c)
            assert healthz(url) == (200, "ok\n")
            marker = f"image-{uuid.uuid4().hex}"
            host = subprocess.Popen(["/bin/sh", "-c", "exit 7", marker])
            host.wait()
            execs, exit_event = c.wait_exit(host.pid, timeout=20)
            assert [e["process"]["args"] for e in execs] == [["/bin/sh", "-c", "exit 7", marker]]
            assert exit_event["exit_code"] == 7
            assert execs[0]["process"]["binary"] == str(Path("/bin/sh").resolve())
            assert value(scrape(url), "collector_build_info", version="0.1.0", backend="core") == 1
        finally:
            subprocess.run(["podman", "stop", "-t", "10", name], capture_output=True, timeout=60)
        assert c.wait(60) == 0, c.stderr
    assert "stats: kernel records=" in c.stderr


def test_collector_check_passes_inside_the_image(image: str) -> None:
    r = subprocess.run(podman(*as_daemonset(), image, "check"), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    # "-- " lines are the other backend's (no bcc in the image); they do not count
    assert all(line.startswith(("ok ", "-- ")) for line in lines), lines
    assert any(line.startswith("-- ") and "bcc" in line for line in lines), lines
    assert any("probes: loaded and attached" in line for line in lines), lines
    assert any(f"BPF object: {VENV_BIN[:-4]}/lib/python3" in line for line in lines), lines


def test_image_contents_and_config(image: str) -> None:
    """What the DaemonSet relies on: the entrypoint, uid 0, libbpf1 from Debian, the
    collector in a venv, and no build tools (the BPF object comes in the wheel)."""
    info = json.loads(subprocess.run(["podman", "image", "inspect", image], capture_output=True,
                                     text=True, check=True).stdout)[0]
    cfg = info["Config"]
    assert cfg["Entrypoint"] == [f"{VENV_BIN}/collector"]
    assert cfg["Cmd"] == ["run"]
    assert cfg.get("User") in ("0", "root")
    assert daemonset_container()["args"][0] == "run"
    script = ("dpkg-query -W -f '${Package} ${Status}\\n' libbpf1 python3 && "
              "test -f /usr/lib/x86_64-linux-gnu/libbpf.so.1 -o -f /usr/lib/aarch64-linux-gnu/libbpf.so.1 && "
              "for t in clang bpftool gcc; do command -v $t && exit 9; done; "
              f"{VENV_BIN}/python -c 'import collector.metrics, prometheus_client' && "
              "ls /opt/process-collector/.venv/lib/python3*/site-packages/collector/probe/process.bpf.o")
    r = subprocess.run(podman("--network=none", "--entrypoint", "/bin/sh", image, "-c", script),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "libbpf1 install ok installed" in r.stdout
    assert "python3 install ok installed" in r.stdout
