"""The bcc backend's own contract: offsets that are right or refused, the
old-kernel exit path, backend choice, and `collector check`.

The shared capture cases run for both backends in tests/test_capture.py.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.errors import ProbeError
from collector.probe import offsets
from collector.probe.bcc import (
    BTF_PATH,
    KERNEL_SOURCE_ENV,
    BccProbe,
    group_dead_arg,
    header_offsets,
    header_trees_dir,
    import_bcc,
)
from collector.probe.bcc import kernel_source as bcc_kernel_source
from collector.probe.core import CoreProbe
from collector.probe.layout import EXIT_EVENT, HEADER, TASK_IDS, EventKind
from collector.probe.select import AutoProbe
from tests.helpers import COLLECTOR, REPO
from tests.support.bcc_headers import kernel_source
from tests.support.cache import cache_dir

PYTHON = os.path.realpath(sys.executable)
NOWHERE = Path("/nonexistent/process-collector")


@pytest.fixture
def headers(monkeypatch: pytest.MonkeyPatch) -> Path:
    """BCC_KERNEL_SOURCE at the header tree `make setup` built (Debian's 6.1 here)."""
    tree = kernel_source()
    monkeypatch.setenv(KERNEL_SOURCE_ENV, str(tree))
    return tree


def cli(*args: str, env: dict[str, str] | None = None,
        wrap: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """The collector with COLLECTOR_* cleared and env added; wrap runs it under
    another command (e.g. a private mount namespace)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    full.update(env or {})
    return subprocess.run([*wrap, COLLECTOR, *args], capture_output=True, text=True, env=full,
                          stdin=subprocess.DEVNULL, timeout=120, check=False)


def without(*names: str) -> dict[str, str]:
    """os.environ minus names (COLLECTOR_* too), for a child that must not see them."""
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COLLECTOR_")}


def one_error_line(res: subprocess.CompletedProcess[str], code: int) -> str:
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


# --- offsets ------------------------------------------------------------------


def test_btf_offsets_agree_with_clang_on_the_same_btf(tmp_path: Path) -> None:
    """An independent reader of the kernel's BTF: clang laying out bpftool's C dump
    (build/vmlinux.h) must put every member where offsets.py's parser says."""
    found = offsets.btf_offsets(offsets.Btf.load(BTF_PATH))
    lines = ['#include "vmlinux.h"']
    for m in offsets.MEMBERS:
        lines.append(f"_Static_assert(__builtin_offsetof(struct {m.struct}, {m.path}) == "
                     f"{found[m.macro]}, \"{m.struct}.{m.path}\");")
        if m.size:
            lines.append(f"_Static_assert(sizeof(((struct {m.struct} *)0)->{m.path}) == {m.size}, "
                         f"\"size of {m.struct}.{m.path}\");")
    src = tmp_path / "offsets.c"
    src.write_text("\n".join(lines) + "\n")
    res = subprocess.run(["clang", "-target", "bpf", "-fsyntax-only", f"-I{REPO / 'build'}",
                          str(src)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert found["OFF_TASK_TGID"] != offsets.MISSING


def test_header_offsets_are_what_bcc_compiles(headers: Path) -> None:
    """Debian's 6.1 headers lay task_struct out differently from this kernel's BTF."""
    bcc = import_bcc()
    src = bcc_kernel_source()
    assert src is not None and src.path == headers
    from_headers = header_offsets(bcc, src)
    from_btf = offsets.btf_offsets(offsets.Btf.load(BTF_PATH))
    assert set(from_headers) == set(from_btf)
    if src.release == os.uname().release:
        assert offsets.compare(from_headers, from_btf) == []
    else:
        wrong = offsets.compare(from_headers, from_btf)
        assert any(w.startswith("task_struct.tgid at ") for w in wrong), wrong
        # the struct mount prefix bcc_offsets.c declares is the kernel's
        assert not any(w.startswith("mount.") for w in wrong), wrong


def test_headers_that_disagree_with_btf_are_refused(headers: Path) -> None:
    """Header offsets are never used silently: against BTF they are checked and refused."""
    if bcc_kernel_source() is not None and headers.name == os.uname().release:
        pytest.fail("this test needs headers of another kernel than the running one")
    res = cli("run", "--backend", "bcc", "--duration", "2",
              env={"COLLECTOR_CAPTURE_BCC_OFFSETS": "headers", KERNEL_SOURCE_ENV: str(headers)})
    line = one_error_line(res, 3)
    assert "do not match the running kernel" in line
    assert "task_struct.tgid at " in line and " in BTF" in line
    assert res.stdout == ""


def test_headers_of_another_release_are_refused_without_btf(headers: Path) -> None:
    probe = BccProbe(offset_source="headers", btf_path=NOWHERE)
    with pytest.raises(ProbeError, match=f"the running kernel is {os.uname().release}"):
        probe.start()
    probe.close()


def test_no_headers_is_one_clear_line() -> None:
    res = cli("run", "--backend", "bcc", "--duration", "1", env={KERNEL_SOURCE_ENV: str(NOWHERE)})
    line = one_error_line(res, 3)
    assert f"no kernel headers for {os.uname().release}" in line


def test_missing_bcc_is_one_clear_line() -> None:
    code = ("import sys; sys.modules['bcc'] = None; from collector.cli import main; "
            "sys.argv = ['collector', 'run', '--backend', 'bcc', '--duration', '1']; main()")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         env={k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")})
    line = one_error_line(res, 3)
    assert "bcc is not importable" in line and "python3-bpfcc" in line


# --- the exit path of kernels without group_dead -------------------------------------


def _exits(probe: BccProbe, pids: set[int], timeout: float = 5.0) -> list[tuple[int, int]]:
    """(pid, wait status) of every exit record of these pids, until all have one. Only
    groups this test forked count ((pid, group start) of a fork event whose parent is
    this process): another job's process that reuses a reaped pid is not a second exit."""
    out: list[tuple[int, int]] = []
    ours: set[tuple[int, int]] = set()
    me = os.getpid()

    def take(raw: bytes) -> None:
        kind = HEADER.unpack_from(raw)[0]
        if kind == EventKind.FORK:
            child = TASK_IDS.unpack_from(raw, HEADER.size)
            if child[2] == me and child[0] in pids:
                ours.add((child[0], child[4]))
        elif kind == EventKind.EXIT:
            fields = EXIT_EVENT.unpack_from(raw)
            if (fields[3], fields[7]) in ours:
                out.append((fields[3], fields[-2]))

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in probe.read(50):
            take(raw)
        if {p for p, _ in out} == pids:
            time.sleep(0.2)  # anything more would be a second exit
            for raw in probe.read(50):
                take(raw)
            return out
    return out


@pytest.fixture
def claim_probe(headers: Path) -> Iterator[BccProbe]:
    probe = BccProbe(group_dead=False, ignore_self=False)  # its children are ours to see
    probe.start()
    yield probe
    probe.close()


THREADED = {
    # threads exit first, then the main thread returns 5
    "threads_first": (
        "import threading, time, sys\n"
        "ts = [threading.Thread(target=time.sleep, args=(0.05,)) for _ in range(8)]\n"
        "[t.start() for t in ts]\n[t.join() for t in ts]\nsys.exit(5)\n", 5 << 8),
    # exit_group while 8 threads run: they all exit at once
    "exit_group": (
        "import threading, os, time\n"
        "for _ in range(8): threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "time.sleep(0.1)\nos._exit(9)\n", 9 << 8),
    # the main thread leaves first (pthread_exit); the last thread ends the group with 4
    "leader_first": (
        "import ctypes, threading, time, os\n"
        "def last():\n    time.sleep(0.2)\n    os._exit(4)\n"
        "threading.Thread(target=last).start()\n"
        "ctypes.CDLL(None).pthread_exit(None)\n", 4 << 8),
}


def test_claim_path_reports_one_exit_per_thread_group(claim_probe: BccProbe,
                                                      tmp_path: Path) -> None:
    """HAVE_GROUP_DEAD=0 (kernels whose exit tracepoint has no group_dead): the
    claim map lets exactly one thread of a group report, with the group's status."""
    children = {}
    for name, (code, status) in THREADED.items():
        for _ in range(5):
            child = subprocess.Popen([PYTHON, "-c", code], cwd=tmp_path)
            children[child.pid] = (name, status, child)
    for _, _, child in children.values():
        child.wait()
    exits = _exits(claim_probe, set(children))
    per_pid = Counter(pid for pid, _ in exits)
    assert all(per_pid[pid] == 1 for pid in children), {
        children[p][0]: n for p, n in per_pid.items() if n != 1} or "some exits missing"
    for pid, status in exits:
        assert status == children[pid][1], (children[pid][0], status)
    assert set(claim_probe.kernel_drops().values()) == {0}


ROUNDS = 500  # processes per mode and variant: a build without the claim fails ~2-3% of them
THREADS = 16


@pytest.fixture(scope="module")
def exit_together(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exit") / "exit_together"
    subprocess.run(["cc", "-O2", "-Wall", "-pthread", "-o", str(out),
                    str(REPO / "tests" / "support" / "exit_together.c")], check=True)
    return out


@pytest.mark.parametrize("group_dead", [None, False], ids=["detected", "claim"])
def test_one_exit_per_group_when_threads_end_together(headers: Path, exit_together: Path,
                                                      group_dead: bool | None) -> None:
    """Threads that pass do_exit at the same moment (tests/support/exit_together.c):
    exactly one exit per group, with the group's status, with either exit path."""
    probe = BccProbe(group_dead=group_dead, ignore_self=False)
    probe.start()
    try:
        # detected: group_dead where the kernel's BTF shows it (6.18 here), else the claim
        detected = group_dead_arg(offsets.Btf.load(BTF_PATH)) if BTF_PATH.exists() else False
        assert probe.has_group_dead is (detected if group_dead is None else False)
        for mode in ("group", "barrier"):
            code = 7 if mode == "group" else 0
            pids = set()
            for _ in range(ROUNDS):
                child = subprocess.Popen([str(exit_together), mode, str(THREADS), str(code)])
                assert child.wait() == code
                pids.add(child.pid)  # records wait in the 16 MiB ring buffer meanwhile
            statuses: dict[int, list[int]] = {pid: [] for pid in pids}
            for pid, status in _exits(probe, pids, timeout=20):
                statuses[pid].append(status)
            counts = Counter(len(v) for v in statuses.values())
            assert counts == {1: ROUNDS}, (mode, counts)
            assert {s for v in statuses.values() for s in v} == {code << 8}, mode
        assert probe.kernel_drops()["exit_claim"] == 0
    finally:
        probe.close()


def _claimed_tgids(probe: BccProbe) -> set[int]:
    return {int(k.tgid) for k in probe._bpf[b"exit_claims"].keys()}


def test_claims_live_until_the_group_is_reaped(headers: Path) -> None:
    """Zombies keep their claim; reaping them (the leader's task freed) removes it."""
    probe = BccProbe(group_dead=False, ignore_self=False)
    probe.start()
    try:
        children = [subprocess.Popen(["/bin/true"]) for _ in range(20)]
        pids = {c.pid for c in children}
        time.sleep(0.5)  # exited, not reaped
        assert pids <= _claimed_tgids(probe)
        for c in children:
            c.wait()
        deadline = time.monotonic() + 10
        while pids & _claimed_tgids(probe) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pids & _claimed_tgids(probe)
        assert Counter(pid for pid, _ in _exits(probe, pids)) == dict.fromkeys(pids, 1)
    finally:
        probe.close()


def test_a_full_claim_map_reports_and_counts(headers: Path) -> None:
    """No room for a claim: the exit is still sent, and counted as exit_claim."""
    probe = BccProbe(group_dead=False, ignore_self=False, exit_claims_max=1)
    probe.start()
    try:
        children = [subprocess.Popen(["/bin/true"]) for _ in range(20)]
        pids = {c.pid for c in children}
        time.sleep(0.5)  # zombies: the one slot stays taken
        for c in children:
            c.wait()
        assert Counter(pid for pid, _ in _exits(probe, pids)) == dict.fromkeys(pids, 1)
        assert probe.kernel_drops()["exit_claim"] >= 19
    finally:
        probe.close()


# --- backend choice and collector check -----------------------------------------------


def test_auto_prefers_core() -> None:
    res = cli("run", "--backend", "auto", "--duration", "0.5", "--no-procfs-events")
    assert res.returncode == 0, res.stderr
    assert "backend core;" in res.stderr


def test_backend_from_environment(headers: Path) -> None:
    res = cli("run", "--duration", "0.5", "--no-procfs-events",
              env={"COLLECTOR_BACKEND": "bcc", KERNEL_SOURCE_ENV: str(headers)})
    assert res.returncode == 0, res.stderr
    assert "backend bcc;" in res.stderr


def test_auto_falls_back_to_bcc_when_core_cannot_load(headers: Path, tmp_path: Path) -> None:
    probe = AutoProbe(CoreProbe(obj_path=NOWHERE), BccProbe(ignore_self=False))
    probe.start()
    try:
        assert probe.backend == "bcc"
        child = subprocess.Popen(["/bin/true"], cwd=tmp_path)
        child.wait()
        deadline, seen = time.monotonic() + 5, False
        while not seen and time.monotonic() < deadline:
            seen = any(HEADER.unpack_from(r)[0] == EventKind.EXIT
                       and EXIT_EVENT.unpack_from(r)[3] == child.pid for r in probe.read(50))
        assert seen
    finally:
        probe.close()


def test_auto_with_neither_backend_says_what_each_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KERNEL_SOURCE_ENV, str(NOWHERE))
    probe = AutoProbe(CoreProbe(obj_path=NOWHERE), BccProbe())
    with pytest.raises(ProbeError) as info:
        probe.start()
    probe.close()
    msg = str(info.value)
    assert msg.startswith("no probe backend can run on this host: CO-RE: ")
    assert str(NOWHERE) in msg.split("; bcc: ")[0]
    assert "no kernel headers" in msg.split("; bcc: ")[1]


def test_check_reports_both_backends(headers: Path) -> None:
    default = cli("check", env={KERNEL_SOURCE_ENV: str(NOWHERE)})
    assert default.returncode == 0, default.stdout + default.stderr
    lines = default.stdout.splitlines()
    assert any(line.startswith("ok  probes: loaded and attached") for line in lines), lines
    assert any(line.startswith("--  bcc: no kernel headers") for line in lines), lines

    bcc_missing = cli("check", "--backend", "bcc", env={KERNEL_SOURCE_ENV: str(NOWHERE)})
    assert bcc_missing.returncode == 1
    assert any(line.startswith("FAIL bcc: no kernel headers") for line in bcc_missing.stdout.splitlines())

    bcc_ok = cli("check", env={"COLLECTOR_BACKEND": "bcc", KERNEL_SOURCE_ENV: str(headers)})
    assert bcc_ok.returncode == 0, bcc_ok.stdout
    assert any(line.startswith("ok  bcc: compiled, loaded and attached") and
               f"offsets from {BTF_PATH}" in line for line in bcc_ok.stdout.splitlines())


# --- the header trees `make setup` merges, found without BCC_KERNEL_SOURCE -----------


def _tree(root: Path, name: str, release: str, complete: bool = True) -> Path:
    tree = root / "kernel-headers" / name
    (tree / "include" / "linux").mkdir(parents=True)
    (tree / "include" / "linux" / "sched.h").write_text("/* test */\n")
    (tree / "include" / "generated").mkdir()
    (tree / "include" / "generated" / "utsrelease.h").write_text(f'#define UTS_RELEASE "{release}"\n')
    if complete:
        (tree / ".complete").touch()
    return tree


@pytest.mark.parametrize("var", ["PROCESS_COLLECTOR_CACHE", "XDG_CACHE_HOME", None])
def test_header_trees_dir_is_the_download_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                var: str | None) -> None:
    """The collector's copy of the cache-root rule agrees with tests/support/cache.py's."""
    monkeypatch.delenv("PROCESS_COLLECTOR_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    if var is not None:
        monkeypatch.setenv(var, str(tmp_path / var))
    assert header_trees_dir() == cache_dir("kernel-headers")


def test_the_running_kernels_tree_wins_then_the_newest(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    running = os.uname().release
    build = Path("/lib/modules") / running / "build"
    if (build / "include" / "linux" / "sched.h").exists():
        pytest.fail(f"{build} is a whole header tree here: it would win over the cache's")
    monkeypatch.delenv(KERNEL_SOURCE_ENV, raising=False)
    monkeypatch.setenv("PROCESS_COLLECTOR_CACHE", str(tmp_path))
    assert bcc_kernel_source() is None
    _tree(tmp_path, "9.9.9-half", "9.9.9-half", complete=False)  # bcc_headers.sh was interrupted
    assert bcc_kernel_source() is None
    old = _tree(tmp_path, "1.0.0-old", "1.0.0-old")
    newer = _tree(tmp_path, "2.0.0-newer", "2.0.0-newer")
    src = bcc_kernel_source()
    assert src is not None and (src.path, src.release) == (newer, "2.0.0-newer")
    mine = _tree(tmp_path, running, running)
    src = bcc_kernel_source()
    assert src is not None and (src.path, src.release) == (mine, running)
    monkeypatch.setenv(KERNEL_SOURCE_ENV, str(old))  # an explicit tree is the only one looked at
    src = bcc_kernel_source()
    assert src is not None and src.path == old


def test_bcc_runs_with_the_setup_tree_and_no_env(headers: Path) -> None:
    """After `make setup`, --backend bcc needs no BCC_KERNEL_SOURCE: the merged tree is found."""
    env = without(KERNEL_SOURCE_ENV)
    res = subprocess.run([COLLECTOR, "run", "--backend", "bcc", "--duration", "0.5",
                          "--no-procfs-events"], capture_output=True, text=True, env=env,
                         stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "backend bcc;" in res.stderr
    check = subprocess.run([COLLECTOR, "check", "--backend", "bcc"], capture_output=True, text=True,
                           env=env, stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert check.returncode == 0, check.stdout
    assert f"ok  bcc: kernel headers {headers} (" in check.stdout


def test_the_setup_tree_of_another_kernel_is_refused_without_btf(
        headers: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found without BCC_KERNEL_SOURCE or not: another release's offsets are not used blind."""
    if headers.name == os.uname().release:
        pytest.fail("this test needs the setup tree of another kernel than the running one")
    monkeypatch.delenv(KERNEL_SOURCE_ENV)
    probe = BccProbe(btf_path=NOWHERE)  # offsets auto: from headers, as on a kernel without BTF
    with pytest.raises(ProbeError, match=f"are for {headers.name}, the running kernel is "
                                         f"{os.uname().release}; without BTF"):
        probe.start()
    probe.close()


def test_check_judges_the_configured_offset_source(headers: Path) -> None:
    """capture.bcc_offsets=headers with another kernel's headers: check fails as run would."""
    if headers.name == os.uname().release:
        pytest.fail("this test needs headers of another kernel than the running one")
    res = cli("check", "--backend", "bcc",
              env={"COLLECTOR_CAPTURE_BCC_OFFSETS": "headers", KERNEL_SOURCE_ENV: str(headers)})
    assert res.returncode == 1, res.stdout
    assert (f"FAIL bcc: kernel headers {headers} ({headers.name}): not the running kernel "
            f"{os.uname().release}; its struct offsets cannot be used") in res.stdout


# --- a libbpf that cannot load --------------------------------------------------------


def _libbpf_file() -> str:
    """The file dlopen("libbpf.so.1") maps, as this process sees it."""
    ctypes.CDLL("libbpf.so.1")
    for line in Path("/proc/self/maps").read_text().splitlines():
        if "/libbpf.so" in line:
            return line.split()[-1]
    raise AssertionError("libbpf.so.1 loaded but not in /proc/self/maps")


def test_check_names_a_libbpf_that_cannot_load() -> None:
    """libbpf.so.1 replaced by an empty file inside a private mount namespace (the
    host's file is untouched): check names libbpf and the fix, no traceback; bcc, whose
    Debian libbcc links the same libbpf, says so too; auto says what each backend lacks."""
    hide = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount --bind /dev/null "{_libbpf_file()}" && exec "$@"', "hide-libbpf")
    res = cli("check", wrap=hide)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stdout.splitlines()
    assert any(ln.startswith("FAIL libbpf: libbpf.so.1 not loadable (") and
               ln.endswith("apt-get install libbpf1") for ln in lines), lines
    assert any(ln.startswith("--  bcc: bcc is installed but its library cannot load (") and
               "libbpf.so.1" in ln for ln in lines), lines
    run = cli("run", "--backend", "auto", "--duration", "1", wrap=hide)
    line = one_error_line(run, 3)
    assert line.startswith("collector: no probe backend can run on this host: CO-RE: libbpf ")
    assert "apt-get install libbpf1" in line and "bcc: bcc is installed but" in line
