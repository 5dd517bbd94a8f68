"""The deploy files, checked by the tools that will read them: systemd-analyze
for the unit, the Kubernetes schema (kubernetes-validate) for the DaemonSet;
and the unit's capability set, run for real: an unprivileged user holding
exactly those capabilities (setpriv) captures events with metrics on, and
without any one of them the collector says clearly what is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helpers import COLLECTOR, REPO, CollectorProcess, wait_for
from tests.test_metrics import base_url, healthz, scrape, value

UNIT = REPO / "deploy" / "process-collector.service"
DAEMONSET = REPO / "deploy" / "daemonset.yaml"
NOBODY = 65534

# How the collector fails without each capability of the unit: a capability is in the unit
# only if this test shows what it is needed for.
WITHOUT = {
    "CAP_BPF": "without CAP_BPF",
    "CAP_PERFMON": "without CAP_PERFMON",
    "CAP_SYS_PTRACE": "without CAP_SYS_PTRACE the /proc scan cannot read",
}
CAP_BITS = {"CAP_SYS_PTRACE": 19, "CAP_PERFMON": 38, "CAP_BPF": 39}


def unit_directive(name: str) -> list[str]:
    values = [line.split("=", 1)[1].split() for line in UNIT.read_text().splitlines()
              if line.startswith(name + "=")]
    assert len(values) == 1, f"{name} appears {len(values)} times in {UNIT}"
    return values[0]


def unit_caps() -> set[str]:
    ambient = set(unit_directive("AmbientCapabilities"))
    assert ambient == set(unit_directive("CapabilityBoundingSet"))
    return ambient


# -- systemd --------------------------------------------------------------------------------


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify, in a private mount namespace where the unit's ExecStart
    (/opt/process-collector/.venv) is this test's venv: nothing on the host changes."""
    venv = Path(sys.prefix)
    script = ("mount -t tmpfs tmpfs /opt && mkdir -p /opt/process-collector/.venv && "
              f"mount --bind {venv} /opt/process-collector/.venv && "
              f"exec systemd-analyze verify {unit}")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)


def test_systemd_analyze_verify_passes_without_a_warning() -> None:
    assert shutil.which("systemd-analyze"), "systemd-analyze missing (apt-get install systemd)"
    exec_start = unit_directive("ExecStart")
    assert exec_start[0] == "/opt/process-collector/.venv/bin/collector"
    r = verify(UNIT)
    assert r.returncode == 0 and r.stdout == r.stderr == "", r.stdout + r.stderr


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above can fail: a unit with an unknown key is reported."""
    bad = tmp_path / "process-collector.service"
    bad.write_text(UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivileges=yes\nNoNewPrivilege=yes"))
    r = verify(bad)
    assert "Unknown key" in r.stderr, r.stdout + r.stderr


def test_the_unit_serves_metrics_on_the_port_the_daemonset_scrapes() -> None:
    args = unit_directive("ExecStart")
    addr = args[args.index("--metrics-address") + 1]
    assert addr.rsplit(":", 1)[1] == str(metrics_port())


# -- Kubernetes -----------------------------------------------------------------------------


def manifests() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(DAEMONSET.read_text()) if d]


def daemonset() -> dict[str, Any]:
    (ds,) = [d for d in manifests() if d["kind"] == "DaemonSet"]
    return ds


def container() -> dict[str, Any]:
    (c,) = daemonset()["spec"]["template"]["spec"]["containers"]
    return c


def metrics_port() -> int:
    (port,) = [p for p in container()["ports"] if p["name"] == "metrics"]
    return int(port["containerPort"])


def test_daemonset_validates_against_the_kubernetes_schema() -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} == {"DaemonSet", "ConfigMap"}
    for doc in docs:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_the_schema_check_would_catch_a_mistake() -> None:
    ds = daemonset()
    ds["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, kubernetes_validate.latest_version(), strict=True)


def test_daemonset_probes_metrics_port_and_scrape_annotations() -> None:
    c = container()
    port = metrics_port()
    assert f"--metrics-address=0.0.0.0:{port}" in c["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
    notes = daemonset()["spec"]["template"]["metadata"]["annotations"]
    assert notes == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                     "prometheus.io/path": "/metrics"}
    assert daemonset()["spec"]["template"]["spec"]["hostPID"] is True


def test_daemonset_image_is_the_one_make_image_builds() -> None:
    r = subprocess.run(["make", "-s", "-C", str(REPO), "print-image"], capture_output=True,
                       text=True, timeout=60, check=True)
    assert container()["image"] == r.stdout.strip()


def test_daemonset_and_unit_grant_the_same_capabilities() -> None:
    sc = container()["securityContext"]["capabilities"]
    assert sc["drop"] == ["ALL"]
    assert {"CAP_" + c for c in sc["add"]} == unit_caps()


# -- capabilities, for real -----------------------------------------------------------------


def setpriv(caps: set[str]) -> tuple[str, ...]:
    """Run as nobody holding exactly `caps` (inheritable, ambient, bounding)."""
    names = ",".join("+" + c.removeprefix("CAP_").lower() for c in sorted(caps))
    keep = f"-all,{names}" if names else "-all"
    return ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            f"--inh-caps={keep}", f"--ambient-caps={keep}", f"--bounding-set={keep}")


@pytest.fixture
def scan_marker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A root-owned process running before the collector starts, with a relative argv[0]
    (so its binary can only come from /proc/PID/exe) and a cwd of its own."""
    exe = tmp_path / f"scanmark-{uuid.uuid4().hex[:12]}"
    shutil.copy("/bin/sleep", exe)
    proc = subprocess.Popen([exe.name, "120"], executable=str(exe), cwd=str(tmp_path))
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def scan_event(c: CollectorProcess, pid: int) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((e for e in c.events() if e["process"]["pid"] == pid
                     and "procfs" in e["process"]["flags"]), None)
    found: dict[str, Any] = wait_for(find)
    return found


def status_of(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_unprivileged_user_with_exactly_the_unit_capabilities_sees_events(
        tmp_path: Path, scan_marker: subprocess.Popen[bytes]) -> None:
    caps = unit_caps()
    assert set(WITHOUT) == caps, "every capability of the unit needs a test showing its use"
    with CollectorProcess("--metrics-address", "127.0.0.1:0", prefix=setpriv(caps),
                          cwd="/") as c:
        c.wait_attached()
        st = status_of(c.proc.pid)
        assert st["Uid"].split()[0] == str(NOBODY)
        assert int(st["CapEff"], 16) == sum(1 << CAP_BITS[cap] for cap in caps)
        url = base_url(c)
        assert healthz(url) == (200, "ok\n")
        true = subprocess.Popen(["/bin/true", f"caps-{uuid.uuid4().hex}"])
        true.wait()
        execs, exit_event = c.wait_exit(true.pid)
        assert [e["process"]["args"][1] for e in execs] == [true.args[1]]  # type: ignore[index]
        assert exit_event["exit_code"] == 0
        # root's process, found in /proc by nobody: its exe and cwd links were readable
        found = scan_event(c, scan_marker.pid)
        exe = Path(scan_marker.args[0]).name  # type: ignore[index]
        assert found["process"]["binary"] == str(tmp_path / exe)
        assert found["process"]["cwd"] == str(tmp_path)
        samples = scrape(url)
        assert value(samples, "collector_events_total", event_type="process_exec") >= 1
        assert c.stop() == 0
    assert "warning" not in c.stderr, c.stderr


@pytest.mark.parametrize("dropped", ["CAP_BPF", "CAP_PERFMON"])
def test_without_a_bpf_capability_it_stops_with_one_clear_line(dropped: str) -> None:
    r = subprocess.run([*setpriv(unit_caps() - {dropped}), COLLECTOR, "run", "--duration", "5"],
                       capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 77, r.stderr
    assert r.stderr.count("\n") == 1 and WITHOUT[dropped] in r.stderr, r.stderr
    assert r.stdout == ""
    check = subprocess.run([*setpriv(unit_caps() - {dropped}), COLLECTOR, "check"],
                           capture_output=True, text=True, timeout=60, cwd="/")
    assert check.returncode == 1
    assert any(line.startswith("FAIL") and dropped in line for line in check.stdout.splitlines())


def test_without_sys_ptrace_it_warns_and_the_scan_loses_binary_and_cwd(
        scan_marker: subprocess.Popen[bytes]) -> None:
    with CollectorProcess(prefix=setpriv(unit_caps() - {"CAP_SYS_PTRACE"}), cwd="/") as c:
        c.wait_attached()
        found = scan_event(c, scan_marker.pid)
        assert found["process"]["binary"] == "" and found["process"]["cwd"] == ""
        c.stop()
    warnings = [line for line in c.stderr_lines if "warning" in line]
    assert len(warnings) == 1 and WITHOUT["CAP_SYS_PTRACE"] in warnings[0], c.stderr
    assert re.search(r"grant CAP_SYS_PTRACE", warnings[0])
