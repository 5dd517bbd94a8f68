"""The capture checks the kernel matrix runs on every kernel (inside each qemu guest, and on the host).

Standalone (stdlib only; no pytest in the guest): it runs `collector check`,
then one `collector run` (JSON lines on stdout), spawns processes whose truth
it knows (pid, ppid, uid, binary, argv with non-UTF-8 bytes, a cwd with a
space, exit code, signal, threads that exit together, a 16-thread group
exit, a burst of a few hundred, a failed exec), stops the collector, and
compares every event with that truth. Only the processes it spawned are
looked at, so other collectors and workloads on the same kernel do not
matter.

Output, one line each, all prefixed "KCHECK " so the host can find them in
a serial log mixed with kernel messages:

    KCHECK kernel 6.1.0-57-amd64
    KCHECK PASS exec-exit-truth
    KCHECK FAIL burst-300: 3 of 300 pids have no exit event
    KCHECK SUMMARY 9 passed, 1 failed

Exit 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PREFIX = "KCHECK"
NOBODY = 65534
BURST = 300
GROUP_THREADS = 16
TRUE = os.path.realpath("/bin/true")
SH = os.path.realpath("/bin/sh")
SLEEP = os.path.realpath("/bin/sleep")
EXECVE_NR = "59"  # x86_64: what /proc/PID/syscall shows while a task is inside execve
PYTHON = os.path.realpath(sys.executable)

Event = dict[str, Any]


def say(*words: object) -> None:
    print(PREFIX, *words, flush=True)


def text(raw: bytes) -> str:
    """What the collector writes for kernel bytes: UTF-8 with \\xNN for the rest."""
    return raw.decode("utf-8", "backslashreplace")


class Collector:
    """`collector run` in the background; events by pid, parsed as they arrive."""

    def __init__(self, exe: str, backend: str = "core", env: dict[str, str] | None = None) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
        full.update(env or {})
        self.proc = subprocess.Popen([exe, "run", "--stats-interval", "0", "--backend", backend],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=full)
        self.stderr: list[str] = []
        self.events: dict[int, list[Event]] = {}
        self.lock = threading.Lock()
        self.attached = threading.Event()
        self.bad_lines = 0
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._out, self._err)]
        for t in self._threads:
            t.start()

    def _out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if "procfs" in event["process"]["flags"]:
                continue
            with self.lock:
                self.events.setdefault(event["process"]["pid"], []).append(event)

    def _err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr.append(line)
            if "attached in" in line:
                self.attached.set()

    def wait_attached(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.attached.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
        return True

    def of(self, pid: int, kind: str | None = None) -> list[Event]:
        with self.lock:
            return [e for e in self.events.get(pid, []) if kind is None or e["event_type"] == kind]

    def wait_exit(self, pid: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.of(pid, "process_exit"):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        for t in self._threads:
            t.join(10)
        return rc


class Failed(Exception):
    """A check's assertion did not hold; the message says what was seen."""


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)


def one(events: list[Event], what: str) -> Event:
    expect(len(events) == 1, f"{what}: {len(events)} events, expected 1: {events[:3]}")
    return events[0]


# --- the processes with known truth ------------------------------------------------------
# Each scenario spawns (while the collector runs) and returns a verifier to run after.

Verifier = Callable[["Collector"], None]


def exec_exit_truth(work: Path) -> Verifier:
    cwd = work / "dir with space"
    cwd.mkdir(exist_ok=True)
    argv = [b"true", b"exec-truth", b"bytes-\xff\xfe-not-utf8", b'quote" and\nnewline', b"caf\xc3\xa9"]
    child = subprocess.Popen(argv, executable=TRUE, cwd=cwd)
    code = child.wait()

    def verify(c: Collector) -> None:
        expect(c.wait_exit(child.pid), f"pid {child.pid}: no exit event")
        ex = one(c.of(child.pid, "process_exec"), "exec")["process"]
        exit_ = one(c.of(child.pid, "process_exit"), "exit")
        for key, want in (("pid", child.pid), ("tid", child.pid), ("ppid", os.getpid()),
                          ("uid", 0), ("euid", 0), ("binary", TRUE),
                          ("args", [text(a) for a in argv]), ("cwd", str(cwd)),
                          ("args_truncated", False)):
            expect(ex[key] == want, f"exec {key}: {ex[key]!r} != {want!r}")
        expect(code == 0 and exit_["exit_code"] == 0, f"exit_code {exit_['exit_code']!r} (wait: {code})")
        expect(exit_["signal"] is None, f"signal {exit_['signal']!r}")
        expect(exit_["process"]["exec_id"] == ex["exec_id"], "exit exec_id != exec exec_id")
    return verify


def exit_code(work: Path) -> Verifier:
    child = subprocess.Popen([SH, "-c", "exit 7"], cwd=work)
    code = child.wait()

    def verify(c: Collector) -> None:
        expect(c.wait_exit(child.pid), f"pid {child.pid}: no exit event")
        ex = one(c.of(child.pid, "process_exec"), "exec")["process"]
        exit_ = one(c.of(child.pid, "process_exit"), "exit")
        expect(ex["binary"] == SH and ex["args"] == [SH, "-c", "exit 7"], f"exec {ex['binary']} {ex['args']}")
        expect(code == 7 and exit_["exit_code"] == 7, f"exit_code {exit_['exit_code']!r} (wait: {code})")
    return verify


def non_root_uid(work: Path) -> Verifier:
    child = subprocess.Popen([TRUE, "as-nobody"], cwd="/", user=NOBODY, group=NOBODY, extra_groups=[])
    code = child.wait()

    def verify(c: Collector) -> None:
        expect(c.wait_exit(child.pid), f"pid {child.pid}: no exit event")
        ex = one(c.of(child.pid, "process_exec"), "exec")["process"]
        for key in ("uid", "euid", "gid", "egid"):
            expect(ex[key] == NOBODY, f"exec {key}: {ex[key]!r} != {NOBODY}")
        expect(ex["ppid"] == os.getpid() and ex["cwd"] == "/", f"ppid {ex['ppid']} cwd {ex['cwd']!r}")
        expect(code == 0, f"wait status {code}")
    return verify


def sigkill(work: Path) -> Verifier:
    child = subprocess.Popen([SLEEP, "60"], cwd=work)
    deadline = time.monotonic() + 10
    # kill after the exec, so there is an image to see exit. /proc/PID/exe names the
    # new binary from the point of no return on, but the exec can still fail after it
    # (a SIGKILL there interrupts the new image's killable mmaps): then the kernel
    # reports no exec at all. So wait until the task is blocked in another syscall
    # (sleep's nanosleep): /proc/PID/syscall says "running" for a task on a CPU, which
    # it is for most of its exec.
    while time.monotonic() < deadline:
        try:
            nr = Path(f"/proc/{child.pid}/syscall").read_text().split()[0]
            if os.readlink(f"/proc/{child.pid}/exe") == SLEEP and nr.isdigit() and nr != EXECVE_NR:
                break
        except (OSError, IndexError):
            pass
        time.sleep(0.01)
    child.kill()
    code = child.wait()

    def verify(c: Collector) -> None:
        expect(c.wait_exit(child.pid), f"pid {child.pid}: no exit event")
        one(c.of(child.pid, "process_exec"), "exec")
        exit_ = one(c.of(child.pid, "process_exit"), "exit")
        expect(code == -signal.SIGKILL, f"wait status {code}")
        expect(exit_["signal"] == "SIGKILL" and exit_["exit_code"] is None,
               f"signal {exit_['signal']!r} exit_code {exit_['exit_code']!r}")
    return verify


# Every thread, the leader too, waits at one barrier and then calls exit(2) (not
# exit_group) at the same moment: the threads race to be the last one out. The
# status the parent sees is the leader's (3). ctypes releases the GIL for the call.
THREADS_TOGETHER = """
import ctypes, threading
libc = ctypes.CDLL(None, use_errno=True)
barrier = threading.Barrier({n})
def leave():
    barrier.wait()
    libc.syscall(60, 3)  # SYS_exit on x86_64: this thread only
for _ in range({n} - 1):
    threading.Thread(target=leave).start()
leave()
"""

GROUP_EXIT_FROM_MAIN = """
import os, threading, time
started = threading.Barrier({n} + 1)
def park():
    started.wait()
    time.sleep(60)
for _ in range({n}):
    threading.Thread(target=park, daemon=True).start()
started.wait()
os._exit(5)
"""

GROUP_EXIT_FROM_THREAD = """
import os, threading, time
started = threading.Barrier({n} + 1)
def park():
    started.wait()
    time.sleep(60)
for _ in range({n} - 1):
    threading.Thread(target=park, daemon=True).start()
def leave():
    started.wait()
    os._exit(6)
threading.Thread(target=leave).start()
started.wait()
time.sleep(60)
"""


def _one_exit_of_python(code: str, status: int, runs: int, work: Path) -> Verifier:
    children = []
    for _ in range(runs):
        child = subprocess.Popen([PYTHON, "-c", code], cwd=work)
        children.append((child, child.wait()))

    def verify(c: Collector) -> None:
        for child, got in children:
            expect(got == status, f"pid {child.pid}: wait status {got}, expected {status}")
            expect(c.wait_exit(child.pid), f"pid {child.pid}: no exit event")
            time.sleep(0.2)  # a second exit would come right behind the first
            exits = c.of(child.pid, "process_exit")
            expect(len(exits) == 1, f"pid {child.pid}: {len(exits)} exit events, expected 1")
            expect(exits[0]["exit_code"] == status, f"pid {child.pid}: exit_code {exits[0]['exit_code']}")
            one(c.of(child.pid, "process_exec"), f"pid {child.pid} exec")
    return verify


def threads_exit_together(work: Path) -> Verifier:
    return _one_exit_of_python(THREADS_TOGETHER.format(n=8), 3, 3, work)


def group_exit_16_threads(work: Path) -> Verifier:
    return _one_exit_of_python(GROUP_EXIT_FROM_MAIN.format(n=GROUP_THREADS), 5, 2, work)


def group_exit_from_a_thread(work: Path) -> Verifier:
    return _one_exit_of_python(GROUP_EXIT_FROM_THREAD.format(n=GROUP_THREADS), 6, 2, work)


# The burst comes from one shell that starts every child at once (fork is cheap in
# dash, so the burst is dense even under TCG); each child is known by its argv.
BURST_SCRIPT = 'i=0; while [ $i -lt {n} ]; do {true} {tag} $i & i=$((i+1)); done; wait'


def burst(work: Path) -> Verifier:
    tag = f"burst-{os.getpid()}-{time.monotonic_ns()}"
    shell = subprocess.Popen([SH, "-c", BURST_SCRIPT.format(n=BURST, true=TRUE, tag=tag)], cwd=work)
    status = shell.wait()

    def verify(c: Collector) -> None:
        expect(status == 0, f"the burst shell exited {status}")
        deadline = time.monotonic() + 30
        while True:
            with c.lock:
                mine = [e for evs in c.events.values() for e in evs
                        if e["event_type"] == "process_exec" and e["process"]["args"][1:2] == [tag]]
            if len(mine) >= BURST or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        by_index: dict[str, list[Event]] = {}
        for e in mine:
            by_index.setdefault(e["process"]["args"][-1], []).append(e)
        missing = [i for i in range(BURST) if len(by_index.get(str(i), [])) != 1]
        if missing:
            with c.lock:  # what the shell's other children looked like, to tell loss from damage
                others = [e for evs in c.events.values() for e in evs if e["event_type"] == "process_exec"
                          and e["process"]["ppid"] == shell.pid and e not in mine]
            seen = [(e["process"]["pid"], e["process"]["binary"], e["process"]["args"][:3],
                     e["process"]["flags"]) for e in others[:3]]
            raise Failed(f"{len(missing)} of {BURST} children lack exactly one exec: {missing[:5]}; "
                         f"{len(others)} other execs with ppid {shell.pid}: {seen}")
        for i in range(BURST):
            ex = by_index[str(i)][0]["process"]
            expect(ex["args"] == [TRUE, tag, str(i)] and ex["ppid"] == shell.pid and ex["binary"] == TRUE,
                   f"child {i}: args {ex['args']} ppid {ex['ppid']} (shell {shell.pid})")
        for e in mine:
            c.wait_exit(e["process"]["pid"], timeout=5)
        no_exit = [e["process"]["pid"] for e in mine if len(c.of(e["process"]["pid"], "process_exit")) != 1]
        expect(not no_exit, f"{len(no_exit)} of {BURST} children lack exactly one exit: {no_exit[:5]}")
        bad = [e["process"]["pid"] for e in mine
               if c.of(e["process"]["pid"], "process_exit")[0]["exit_code"] != 0]
        expect(not bad, f"children with exit_code != 0: {bad[:5]}")
    return verify


def failed_exec(work: Path) -> Verifier:
    not_executable = work / "not-executable"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)
    code = (f"import os\nfor path in ('/nonexistent/cmd', {str(not_executable)!r}):\n"
            "    try:\n        os.execv(path, [path])\n    except OSError:\n        pass\nos._exit(7)\n")
    child = subprocess.Popen([PYTHON, "-c", code], cwd=work)
    status = child.wait()

    def verify(c: Collector) -> None:
        expect(status == 7, f"wait status {status}")
        expect(c.wait_exit(child.pid), f"pid {child.pid}: no exit event")
        binaries = [e["process"]["binary"] for e in c.of(child.pid, "process_exec")]
        expect(binaries == [PYTHON], f"exec events {binaries}, expected only the python image")
        exit_ = one(c.of(child.pid, "process_exit"), "exit")
        expect(exit_["exit_code"] == 7, f"exit_code {exit_['exit_code']}")
    return verify


SCENARIOS: list[tuple[str, Callable[[Path], Verifier]]] = [
    ("exec-exit-truth", exec_exit_truth),
    ("exit-code", exit_code),
    ("non-root-uid", non_root_uid),
    ("sigkill", sigkill),
    ("threads-exit-together", threads_exit_together),
    ("group-exit-16-threads", group_exit_16_threads),
    ("group-exit-from-a-thread", group_exit_from_a_thread),
    (f"burst-{BURST}", burst),
    ("failed-exec-no-event", failed_exec),
]


def bpf_run_misses(pid: int) -> list[tuple[str, int | None]]:
    """(prog_tag, recursion_misses or None before 5.12) of every BPF program the collector holds.

    The kernel skips a tracing program that is already running on the CPU (it was
    preempted and the same tracepoint fired again) and only counts it here: the
    program never runs, so its own drop counters cannot see the loss.
    """
    out = []
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for entry in sorted(fdinfo.iterdir(), key=lambda p: int(p.name)):
        try:
            fields = dict(line.split(":", 1) for line in entry.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if "prog_tag" in fields and "link_type" not in fields:  # programs, not their links
            n = fields.get("recursion_misses")
            out.append((fields["prog_tag"].strip(), int(n) if n is not None else None))
    return out


# --- load failures: name the program and the verifier's line -----------------------------

def diagnose_load() -> list[str]:
    """Each program that failed to load and the verifier's last words about it."""
    try:
        from collector.errors import CollectorError
        from collector.probe.core import CoreProbe
    except ImportError as exc:
        return [f"cannot import the collector: {exc}"]
    probe = CoreProbe()
    try:
        probe.start()
        return []
    except CollectorError as exc:
        log = "\n".join(getattr(exc, "log", [])).splitlines()  # one libbpf message may hold many lines
        first = str(exc)
    finally:
        probe.close()
    for line in log[-25:]:  # the raw evidence, in the serial log
        say("load-log", line.rstrip())
    blocks: list[str] = []
    failed: list[str] = []
    block: list[str] = []
    prog: str | None = None
    for line in (ln.rstrip() for ln in log):
        if "-- BEGIN PROG LOAD LOG --" in line:
            prog, block = (line.split("'")[1] if "'" in line else "?"), []
        elif "-- END PROG LOAD LOG --" in line and prog is not None:
            blocks.append(f"{prog}: {_decisive(block)}")
            prog = None
        elif prog is not None:
            block.append(line)
        elif "BPF program load failed" in line:
            failed.append(line.removeprefix("libbpf: "))
    return blocks or failed or [first]


def _decisive(block: list[str]) -> str:
    noise = ("processed ", "verification time", "stack depth", "max_states", "mark_read")
    lines = [ln.strip() for ln in block if ln.strip() and not ln.strip().startswith(noise)]
    return lines[-1] if lines else "(empty verifier log)"


# --- main ----------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--collector", required=True, help="the installed `collector` command")
    parser.add_argument("--work", default="/tmp/kcheck", help="scratch folder")
    parser.add_argument("--backend", default="core", choices=("core", "bcc"),
                        help="the probe backend under test (bcc compiles on the guest: slow under TCG)")
    parser.add_argument("--bcc-offsets", default="auto", choices=("auto", "btf", "headers"),
                        help="bcc: where struct offsets come from (headers: the case bcc exists for)")
    args = parser.parse_args()
    env = {"COLLECTOR_CAPTURE_BCC_OFFSETS": args.bcc_offsets}
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results: list[tuple[str, str | None]] = []  # (check, failure or None)
    say("kernel", os.uname().release)
    say("version", os.uname().version, f"cpus={os.cpu_count()}")
    say("backend", args.backend, f"offsets={args.bcc_offsets}" if args.backend == "bcc" else "")
    try:  # the preemption model decides whether a BPF program can be preempted by its own tracepoint
        say("preempt", Path("/sys/kernel/debug/sched/preempt").read_text().strip())
    except OSError:
        pass

    check_env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")} | env
    check = subprocess.run([args.collector, "check", "--backend", args.backend], capture_output=True,
                           text=True, timeout=900, env=check_env)
    for line in (check.stdout + check.stderr).splitlines():
        say("check-output", line)
    bad = [ln for ln in check.stdout.splitlines() if not ln.startswith(("ok", "--"))]
    results.append(("collector-check", None if check.returncode == 0 else
                    f"exit {check.returncode}: {'; '.join(bad) or check.stderr.strip()}"))

    t0 = time.monotonic()
    c = Collector(args.collector, args.backend, env)
    if not c.wait_attached(600 if args.backend == "bcc" else 180):  # bcc: clang under TCG
        rc = c.stop()
        for line in c.stderr[-10:]:
            say("run-output", line)
        results.append(("collector-run-attaches", f"exit {rc}: {(c.stderr or ['(no output)'])[-1]}"))
        for line in (diagnose_load() if args.backend == "core" else c.stderr[-1:]):
            say("load-failure", line)
        return summary(results)
    results.append(("collector-run-attaches", None))
    say("attached-after", f"{time.monotonic() - t0:.1f}s")

    verifiers: list[tuple[str, Verifier | None, str | None]] = []
    for name, scenario in SCENARIOS:
        t = time.monotonic()
        try:
            verifiers.append((name, scenario(work), None))
        except Exception as exc:  # a scenario that cannot even spawn is a failed check
            verifiers.append((name, None, f"spawning: {type(exc).__name__}: {exc}"))
        say("spawned", name, f"{time.monotonic() - t:.1f}s")
    for name, verify, error in verifiers:
        if verify is not None:
            try:
                verify(c)
            except Failed as exc:
                error = str(exc)
        results.append((name, error))
    misses = bpf_run_misses(c.proc.pid)
    say("bpf-programs", " ".join(f"{tag}:misses={n}" for tag, n in misses) or "(none found)")
    counted = [n for _, n in misses if n is not None]
    runs = "single"  # bcc builds one program per tracepoint
    if args.backend == "core":
        try:
            from collector.probe import features
            runs = features.detect().choose().runs
        except Exception as exc:  # the check below then judges the runs as single programs
            say("variants", f"unknown: {type(exc).__name__}: {exc}")
    if runs == "copies" and counted:
        # skipped runs are expected with copies: the next copy handles the event, and a
        # checker counts a real loss as a kernel drop (exec_missed, ...), which no-kernel-drops
        # and the burst check judge; the skips are reported, not failed
        results.append((f"no-missed-bpf-runs (copies: {sum(counted)} skipped runs, "
                        "each handled by a later copy or counted in drops=)", None))
    elif not misses:
        results.append(("no-missed-bpf-runs", "no BPF program fds in the collector's fdinfo"))
    elif not counted:  # fdinfo has recursion_misses from 5.12 on
        results.append(("no-missed-bpf-runs (not reported by this kernel)", None))
    else:
        results.append(("no-missed-bpf-runs", None if sum(counted) == 0 else
                        f"the kernel skipped the collector's programs {sum(counted)} times "
                        "(recursion_misses: a program preempted by another run of itself on the "
                        "same CPU); those events are lost and not in drops="))
    rc = c.stop()
    stats = next((ln for ln in reversed(c.stderr) if ln.startswith("stats:")), "")
    say("stats", stats)
    results.append(("clean-stop", None if rc == 0 else f"exit {rc}: {c.stderr[-1:] or ''}"))
    drops = [w for w in stats.split() if w.startswith("drops=")]
    results.append(("no-kernel-drops", None if drops == ["drops=0"] else f"stats: {stats!r}"))
    results.append(("valid-json-lines", None if c.bad_lines == 0 else f"{c.bad_lines} bad lines"))
    return summary(results)


def summary(results: list[tuple[str, str | None]]) -> int:
    for name, error in results:
        say("PASS", name) if error is None else say("FAIL", f"{name}: {error}")
    failed = sum(error is not None for _, error in results)
    say("SUMMARY", f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
