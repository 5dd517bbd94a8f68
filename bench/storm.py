"""Per-event cost in an exec storm, side by side with other tracers (issue 15).

One run alternates untraced storms (U) with traced ones: U T1 U T2 ... Tn U,
then the same tracers in reverse order, for --rounds rounds, so every traced
storm sits between two untraced ones and slow drift on this shared 2-core
machine hits every tracer alike. A storm is 2 workers (bench/storm/spawner.c)
posix_spawning /bin/true as fast as they can; their pids are the parent pids
of every process they spawn, which is how each tracer's output is searched
for the storm's processes (the markers) among everything else on the machine.

Tracers: the floor (bench/storm/floor.c: the same tp_btf tracepoints as the
collector, one small record per event; batched wakeups and one wakeup per
record), Debian's libbpf-tools execsnoop + exitsnoop (the C peer; their stdout a
pipe the bench copies to a file, as the collector's stdout is), the same C tools
with their stdout a tmpfs file (libbpf-tools-file: they then pay the kernel for
the file's pages, as the collector's file sink does: its like-for-like peer),
auditd with execve/execveat/exit_group rules, and `collector run` with the
stdout, file and Kafka sinks (one or several collector executables: --collector).

Per traced storm: spawn rate; ratio to the mean of the two adjacent untraced
storms; tracer CPU per event = tracer CPU ÷ (2 × processes spawned), CPU from
se.sum_exec_runtime in /proc/PID/task/*/sched of every thread of the tracer
and of its descendants (auditd: the daemon plus the kauditd kernel thread;
Kafka: the collector only, the broker's CPU is reported on its own), summed
over the threads alive at the end of the storm; peak RSS (VmHWM, summed over
the tracer's processes); events found for the markers against 2 × spawned
(loss); kernel-side drops as the tracer reports them.

Figures go to bench/results/storm.json (--out); a table and the ratio summary
(collector CPU/event ÷ execsnoop+exitsnoop CPU/event, per sink, median of the
rounds with min-max) are printed. --profile instead records the collector with
py-spy during a storm and writes bench/results/storm_profile.md.

Usage (root): .venv/bin/python bench/storm.py [--seconds 15] [--rounds 2] [--quick]
              [--tracers floor-batched,...] [--collector [LABEL=]PATH]... [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import guest_memory  # noqa: E402  # bench/guest_memory.py

BUILD = REPO / "build" / "storm"
RESULTS = REPO / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
DEFAULT_COLLECTOR = REPO / ".venv" / "bin" / "collector"
TRACEFS = Path("/sys/kernel/tracing")
APT_PACKAGES = ("libbpf-tools", "auditd")  # bench-only: not in `make setup`
SHM = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())


def usage_error(msg: str) -> None:
    """Bad options: one line, exit 2."""
    print(f"storm.py: {msg}", file=sys.stderr)
    raise SystemExit(2)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ set-up


def ensure_apt() -> None:
    """The C peer and auditd, installed on first use (bench-only packages).

    Debian starts auditd from the package's postinst where an init system
    lets it; the bench runs its own auditd, so a started service is stopped.
    """
    missing = [p for p in APT_PACKAGES
               if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if not missing:
        return
    log(f"installing {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def ensure_py_spy() -> str:
    exe = VENV_BIN / "py-spy"
    if not exe.exists():
        subprocess.run([str(VENV_BIN / "pip"), "install", "-q", "--disable-pip-version-check",
                        "py-spy"], check=True)
    return str(exe)


def build() -> None:
    """The spawner and the floor consumer (clang, bpftool, libbpf-dev: make setup's)."""
    subprocess.run(["make", "-s", "-C", str(REPO / "bench" / "storm"), f"OUT={BUILD}"],
                   check=True)


# ------------------------------------------------------ /proc measurements


def children_of(pids: set[int]) -> set[int]:
    """pids and every descendant (one /proc scan, parents before children)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{d}/stat").read_text()
                parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    out = set(pids)
    grew = True
    while grew:
        new = {p for p, pp in parent.items() if pp in out and p not in out}
        out |= new
        grew = bool(new)
    return out


def runtime_ns(pids: set[int]) -> dict[tuple[int, int], int]:
    """se.sum_exec_runtime of every thread (the file prints milliseconds with a
    nanosecond fraction)."""
    out: dict[tuple[int, int], int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    for line in Path(f"/proc/{pid}/task/{tid}/sched").read_text().splitlines():
                        if line.startswith("se.sum_exec_runtime"):
                            ms = line.split(":")[1].strip()
                            whole, _, frac = ms.partition(".")
                            out[(pid, int(tid))] = int(whole) * 1_000_000 + int(frac.ljust(6, "0")[:6])
                            break
    return out


def cpu_between(before: dict[tuple[int, int], int], after: dict[tuple[int, int], int]) -> int:
    """ns run between two snapshots by the threads alive at the second."""
    return sum(ns - before.get(key, 0) for key, ns in after.items())


def cpu_by_comm(before: dict[tuple[int, int], int], after: dict[tuple[int, int], int]) -> dict[str, float]:
    """The same CPU split by thread name (ms): which thread of a tracer pays."""
    out: dict[str, float] = {}
    for (pid, tid), ns in after.items():
        try:
            comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            comm = "?"
        out[comm] = out.get(comm, 0.0) + (ns - before.get((pid, tid), 0)) / 1e6
    return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.1}


def hwm_kib(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


def kthread(comm: str) -> int | None:
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{d}/comm").read_text().strip() == comm:
                    return int(d)
    return None


# ------------------------------------------------------------ the storm


@dataclass
class Storm:
    spawned: int
    failed: int
    seconds: float
    pids: list[int]

    @property
    def rate(self) -> float:
        return self.spawned / self.seconds


def storm(seconds: float, workers: int = 2) -> Storm:
    exe = str(BUILD / "spawner")
    procs = [subprocess.Popen([exe, str(seconds)], stdout=subprocess.PIPE)
             for _ in range(workers)]
    spawned = failed = 0
    for p in procs:
        out, _ = p.communicate()
        n, f = out.split()
        spawned += int(n)
        failed += int(f)
    return Storm(spawned, failed, seconds, [p.pid for p in procs])


def py_storm_rate(seconds: float) -> float:
    """The same storm from Python (os.posix_spawn), to compare with the C spawner."""
    code = ("import os,sys,time\nend=time.monotonic()+float(sys.argv[1]);n=0\n"
            "while time.monotonic()<end:\n"
            " p=os.posix_spawn('/bin/true',['/bin/true'],os.environ);os.waitpid(p,0);n+=1\n"
            "print(n)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(seconds)], stdout=subprocess.PIPE)
           for _ in range(2)]
    return sum(int(p.communicate()[0]) for p in procs) / seconds


# ------------------------------------------------------------- tracers


class Drain:
    """A child whose stdout is a pipe, copied as fast as it comes to a tmpfs file
    (a reader that never makes the tracer wait); with to_file, its stdout is that
    file itself, so the child pays the kernel for the file's pages as a file
    sink does (the C tools' like-for-like peer of the collector's file sink)."""

    def __init__(self, argv: list[str], out: Path, err: Path, to_file: bool = False,
                 **kw: Any) -> None:
        self.out_path = out
        self.err_path = err
        self._err = open(err, "wb")
        self._out = open(out, "wb") if to_file else None
        self.proc = subprocess.Popen(argv, stdout=self._out or subprocess.PIPE,
                                     stderr=self._err, stdin=subprocess.DEVNULL, **kw)
        self._thread: threading.Thread | None = None  # to_file: nothing to copy
        if self._out is None:
            self._thread = threading.Thread(target=self._copy, daemon=True)
            self._thread.start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with open(self.out_path, "wb") as f:
            while chunk := os.read(fd, 1 << 20):
                f.write(chunk)

    def wait_stderr(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.proc.args[0]} not ready: {self.stderr()[-2000:]}")
            time.sleep(0.02)

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 120) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._thread is not None:
            self._thread.join(30)
        self._err.close()
        if self._out is not None:
            self._out.close()


def count_ppid_json(data: Iterator[bytes], ppids: list[int]) -> int:
    """Events of the markers in JSON lines: `"ppid":N,` occurs once per event of
    a child of N (the parent object carries the spawner's own ppid)."""
    pats = [f'"ppid":{p},'.encode() for p in ppids]
    return sum(chunk.count(p) for chunk in data for p in pats)


def file_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from f


def file_sink_lines(path: Path) -> Iterator[bytes]:
    """The file sink's lines: the live file and the ones it rotated out (named
    <stem>.<time>-<seq><suffix>: a 60 s storm writes about 200 MB, two rotations)."""
    for rotated in sorted(path.parent.glob(f"{path.stem}.*{path.suffix}")):
        yield from file_lines(rotated)
    if path.exists():
        yield from file_lines(path)


class Tracer:
    """One traced configuration: start it, say which processes are its cost,
    stop it and count what it saw of the markers."""

    name = ""
    kind = ""

    def setup(self, work: Path) -> None:
        """Once per bench run (brokers, builds)."""

    def teardown(self) -> None:
        """Once per bench run."""

    def start(self, work: Path) -> None:
        raise NotImplementedError

    def pids(self) -> set[int]:
        raise NotImplementedError

    def stop(self, ppids: list[int]) -> dict[str, Any]:
        """-> {"seen": marker events, "kernel_drops": n | None, ...}"""
        raise NotImplementedError


class Floor(Tracer):
    kind = "floor"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.name = f"floor-{mode}"

    def start(self, work: Path) -> None:
        self.d = Drain([str(BUILD / "floor"), self.mode], work / "floor.out", work / "floor.err")
        self.d.wait_stderr("floor: attached")

    def pids(self) -> set[int]:
        return children_of({self.d.proc.pid})

    def stop(self, ppids: list[int]) -> dict[str, Any]:
        self.d.stop()
        text = self.d.out_path.read_text()
        seen = 0
        for p in ppids:
            m = re.search(rf"^ppid {p} exec=(\d+) exit=(\d+)$", text, re.M)
            if m:
                seen += int(m[1]) + int(m[2])
        drops = re.search(r"drops=(\d+)", text)
        return {"seen": seen, "kernel_drops": int(drops[1]) if drops else None}


@contextlib.contextmanager
def tracefs_mounted() -> Iterator[None]:
    """libbpf-tools find tracepoints in tracefs; mount it only if it is not."""
    mounted = (TRACEFS / "events").is_dir()
    if not mounted:
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], check=True)
    try:
        yield
    finally:
        if not mounted:
            subprocess.run(["umount", str(TRACEFS)], check=False)


class LibbpfTools(Tracer):
    """execsnoop + exitsnoop, run together: the C tools a user would run for the
    same two events (one perf-buffer wakeup per record)."""

    def __init__(self, to_file: bool = False) -> None:
        self.to_file = to_file  # stdout a tmpfs file instead of a pipe (see Drain)
        self.name = "execsnoop+exitsnoop" + (">file" if to_file else "")
        self.kind = "peer-file" if to_file else "peer"

    def start(self, work: Path) -> None:
        self._mount = tracefs_mounted()
        self._mount.__enter__()
        self.ex = Drain(["/usr/sbin/execsnoop"], work / "exec.out", work / "exec.err",
                        to_file=self.to_file)
        self.xt = Drain(["/usr/sbin/exitsnoop"], work / "exit.out", work / "exit.err",
                        to_file=self.to_file)
        # they print their header once attached (stdout is a pipe: wait for the file)
        deadline = time.monotonic() + 30
        for d in (self.ex, self.xt):
            while not (d.out_path.exists() and d.out_path.stat().st_size) and d.proc.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        time.sleep(0.5)
        for d in (self.ex, self.xt):
            if d.proc.poll() is not None:
                raise RuntimeError(f"{d.proc.args[0]} exited: {d.stderr()[-1000:]}")

    def pids(self) -> set[int]:
        return children_of({self.ex.proc.pid, self.xt.proc.pid})

    def stop(self, ppids: list[int]) -> dict[str, Any]:
        try:
            self.ex.stop()
            self.xt.stop()
        finally:
            self._mount.__exit__(None, None, None)
        want = {str(p).encode() for p in ppids}
        seen = 0
        for d in (self.ex, self.xt):  # PCOMM PID PPID ...: the third column
            for line in file_lines(d.out_path):
                f = line.split(None, 3)
                if len(f) > 2 and f[2] in want:
                    seen += 1
        lost = sum(int(n) for d in (self.ex, self.xt)
                   for n in re.findall(r"[Ll]ost (\d+) events", d.stderr()))
        return {"seen": seen, "kernel_drops": lost}


class Auditd(Tracer):
    """auditd (our own instance, its log on tmpfs) with execve/execveat/exit_group
    rules. The kernel's state is put back afterwards, plus a `-a never,task`
    rule: once auditing was on, the kernel keeps a syscall-audit hook on every
    new task until reboot unless a task rule says never."""

    name = "auditd"
    kind = "auditd"
    RULES = (["-a", "always,exit", "-F", "arch=b64", "-S", "execve,execveat", "-k", "storm"],
             ["-a", "always,exit", "-F", "arch=b64", "-S", "exit_group", "-k", "storm"])

    def setup(self, work: Path) -> None:
        if subprocess.run(["pidof", "auditd"], capture_output=True).returncode == 0:
            raise RuntimeError("an auditd is already running: the bench needs its own")
        self.before = self._status()
        self.kauditd = kthread("kauditd")

    @staticmethod
    def _status() -> dict[str, int]:
        out = subprocess.run(["auditctl", "-s"], capture_output=True, text=True, check=True).stdout
        return {k: int(v) for k, v in re.findall(r"^(\w+) (\d+)", out, re.M)}

    def start(self, work: Path) -> None:
        conf = work / "auditconf"
        conf.mkdir(mode=0o750, exist_ok=True)
        self.log_path = work / "audit.log"
        text = Path("/etc/audit/auditd.conf").read_text()
        settings = {"log_file": str(self.log_path), "log_format": "RAW", "max_log_file": "100000",
                    "max_log_file_action": "IGNORE", "space_left": "2", "admin_space_left": "1",
                    "space_left_action": "IGNORE", "admin_space_left_action": "IGNORE",
                    "disk_full_action": "IGNORE", "disk_error_action": "IGNORE"}
        for k, v in settings.items():
            text = re.sub(rf"^{k}\s*=.*$", f"{k} = {v}", text, flags=re.M)
        (conf / "auditd.conf").write_text(text)
        (conf / "auditd.conf").chmod(0o640)
        self.lost0 = self._status().get("lost", 0)
        self.d = Drain(["auditd", "-n", "-c", str(conf)], work / "auditd.out",
                       work / "auditd.err")
        deadline = time.monotonic() + 20
        while self._status().get("pid", 0) != self.d.proc.pid:
            if self.d.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"auditd did not start: {self.d.stderr()[-1500:]}")
            time.sleep(0.1)
        # a `never,task` rule (ours, from an earlier run) keeps new tasks unaudited
        rules = subprocess.run(["auditctl", "-l"], capture_output=True, text=True).stdout
        if "never,task" in rules:
            subprocess.run(["auditctl", "-d", "never,task"], check=True, capture_output=True)
        # Debian's audit.rules: an 8192-record backlog (the kernel's default is 64)
        subprocess.run(["auditctl", "-b", "8192"], check=True, capture_output=True)
        for rule in self.RULES:
            subprocess.run(["auditctl", *rule], check=True, capture_output=True)

    def pids(self) -> set[int]:
        pids = children_of({self.d.proc.pid})
        if self.kauditd:
            pids.add(self.kauditd)
        return pids

    def stop(self, ppids: list[int]) -> dict[str, Any]:
        try:
            for rule in self.RULES:
                subprocess.run(["auditctl", "-d", *rule[1:]], check=False, capture_output=True)
            lost = self._status().get("lost", 0) - self.lost0
            self.d.stop(signal.SIGTERM)
        finally:
            self.restore()
        want = {f" ppid={p} ".encode() for p in ppids}
        seen = 0
        for line in file_lines(self.log_path):
            if line.startswith(b"type=SYSCALL") and b" key=\"storm\"" in line:
                if any(w in line for w in want):
                    seen += 1
        return {"seen": seen, "kernel_drops": lost}

    def restore(self) -> None:
        rules = subprocess.run(["auditctl", "-l"], capture_output=True, text=True).stdout
        if "never,task" not in rules:
            subprocess.run(["auditctl", "-a", "never,task"], check=False, capture_output=True)
        for flag, key in (("-b", "backlog_limit"), ("-e", "enabled")):
            if key in self.before:
                subprocess.run(["auditctl", flag, str(self.before[key])], check=False,
                               capture_output=True)


class Collector(Tracer):
    """`collector run` of one checkout with one sink."""

    kind = "collector"

    def __init__(self, exe: str, label: str, sink: str) -> None:
        self.exe, self.label, self.sink = exe, label, sink
        self.name = f"collector{'[' + label + ']' if label else ''} {sink}"
        self.broker: Any = None
        self.registry: Any = None
        self.runs = 0

    def args(self, work: Path) -> list[str]:
        if self.sink == "stdout":
            return []
        if self.sink == "file":
            return ["--sink", "file", "--file-path", str(work / "events.jsonl")]
        fmt = self.sink.split("-", 1)[1]  # kafka-json / kafka-avro
        self.topic = f"storm-{os.getpid()}-{self.label or 'c'}-{fmt}-{self.runs}"
        args = ["--sink", "kafka", "--kafka-bootstrap", self.broker.bootstrap,
                "--kafka-topic", self.topic, "--kafka-format", fmt]
        if fmt == "avro":
            args += ["--schema-registry", self.registry.auth_url]
        return args

    def start(self, work: Path) -> None:
        self.runs += 1
        self.work = work
        self.d = Drain([self.exe, "run", *self.args(work)], work / "stdout.jsonl",
                       work / "collector.err")
        self.d.wait_stderr("attached in")
        time.sleep(0.5)  # the start-up scan

    def pids(self) -> set[int]:
        return children_of({self.d.proc.pid})

    def stop(self, ppids: list[int]) -> dict[str, Any]:
        self.d.stop()
        err = self.d.stderr()
        stats = [ln for ln in err.splitlines() if ln.startswith("stats:")]
        drops = re.search(r"drops=(\d+)", stats[-1]) if stats else None
        out: dict[str, Any] = {"kernel_drops": int(drops[1]) if drops else None,
                               "stats": stats[-1] if stats else err[-500:]}
        if self.sink == "stdout":
            out["seen"] = count_ppid_json(file_lines(self.d.out_path), ppids)
        elif self.sink == "file":
            out["seen"] = count_ppid_json(file_sink_lines(self.work / "events.jsonl"), ppids)
            for written in self.work.glob("events*.jsonl"):
                written.unlink()  # the next run starts with none
        else:
            out["seen"] = self.consume(ppids)
        return out

    def consume(self, ppids: list[int]) -> int:
        """Read the run's topic to its end and count the markers' events."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": self.topic,
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            _, high = c.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=30)
            c.assign([TopicPartition(self.topic, 0, 0)])
            decode = self._avro_ppid() if self.sink == "kafka-avro" else None
            want = set(ppids)
            pats = [f'"ppid":{p},'.encode() for p in ppids]
            seen = n = 0
            while n < high:
                for m in c.consume(10000, timeout=5):
                    if m.error():
                        continue
                    n += 1
                    v = m.value() or b""
                    if decode is None:
                        seen += sum(v.count(p) for p in pats)
                    elif decode(v) in want:
                        seen += 1
            return seen
        finally:
            c.close()

    def _avro_ppid(self) -> Callable[[bytes], int]:
        import io

        import fastavro

        schema = fastavro.parse_schema(json.loads(subprocess.run(
            [self.exe, "schemas"], capture_output=True, text=True, check=True).stdout))

        def ppid(v: bytes) -> int:
            rec = fastavro.schemaless_reader(io.BytesIO(v[5:]), schema, None)
            assert isinstance(rec, dict)
            return int(rec["process"]["ppid"])
        return ppid


@dataclass
class KafkaServers:
    """One broker (and a registry for Avro) for the whole bench run."""

    broker: Any = None
    registry: Any = None
    work: Path | None = None

    def start(self, work: Path, avro: bool) -> None:
        from tests.support.kafka_broker import KafkaBroker

        self.work = work
        self.broker = KafkaBroker(work / "broker", heap="768m")
        self.broker.start(timeout=120)
        if avro:
            from tests.support.apicurio import ApicurioRegistry

            self.registry = ApicurioRegistry(work / "registry").start(timeout=180)

    def stop(self) -> None:
        if self.registry is not None:
            self.registry.stop()
        if self.broker is not None:
            self.broker.stop()

    def server_pids(self) -> set[int]:
        pids = set()
        if self.broker is not None and self.broker.pid:
            pids.add(self.broker.pid)
        if self.registry is not None and self.registry.proc is not None:
            pids.add(self.registry.proc.pid)
        return children_of(pids)


# --------------------------------------------------------------- one run


def traced(tracer: Tracer, seconds: float, work: Path, servers: KafkaServers) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    try:
        try:
            tracer.start(run_dir)
            pids = tracer.pids()
            srv = servers.server_pids() if isinstance(tracer, Collector) and "kafka" in tracer.sink else set()
            c0, s0 = runtime_ns(pids), runtime_ns(srv)
            s = storm(seconds)
            time.sleep(0.5)  # what is queued reaches the tracer
            pids = tracer.pids() | pids
            c1, s1 = runtime_ns(pids), runtime_ns(srv)
            split = cpu_by_comm(c0, c1)
            hwm = hwm_kib(pids - ({tracer.kauditd} if isinstance(tracer, Auditd) else set()))
        except BaseException:
            with contextlib.suppress(Exception):
                tracer.stop([])
            raise
        res = tracer.stop(s.pids)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    events = 2 * s.spawned
    cpu = cpu_between(c0, c1)
    row = {"tracer": tracer.name, "kind": tracer.kind, "rate": round(s.rate, 1),
           "spawned": s.spawned, "spawn_failed": s.failed, "events_expected": events,
           "events_seen": res["seen"], "lost": events - res["seen"],
           "kernel_drops": res["kernel_drops"], "cpu_ms": round(cpu / 1e6, 1),
           "cpu_us_per_event": round(cpu / 1e3 / max(events, 1), 2),
           "peak_rss_mib": round(hwm / 1024, 1)}
    row["cpu_ms_by_thread"] = split
    if srv:
        # the broker's JVM (and the registry's, in the Avro runs: idle once the schema is in)
        row["broker_cpu_us_per_event"] = round(cpu_between(s0, s1) / 1e3 / max(events, 1), 2)
    if "stats" in res:
        row["stats"] = res["stats"]
    return row


def untraced(seconds: float) -> dict[str, Any]:
    s = storm(seconds)
    return {"tracer": None, "rate": round(s.rate, 1), "spawned": s.spawned}


def make_tracers(names: list[str], collectors: list[tuple[str, str]]) -> list[Tracer]:
    out: list[Tracer] = []
    for n in names:
        if n in ("floor-batched", "floor-per-record"):
            out.append(Floor(n.split("-", 1)[1]))
        elif n in ("libbpf-tools", "libbpf-tools-file"):
            out.append(LibbpfTools(to_file=n.endswith("-file")))
        elif n == "auditd":
            out.append(Auditd())
        elif n in ("stdout", "file", "kafka-json", "kafka-avro"):
            out.extend(Collector(exe, label, n) for label, exe in collectors)
        else:
            usage_error(f"unknown tracer {n!r} (known: {DEFAULT_TRACERS})")
    return out


def neighbours_ratio(rows: list[dict[str, Any]]) -> None:
    """ratio = rate ÷ mean of the untraced storms just before and after."""
    for i, r in enumerate(rows):
        prev = next((rows[j]["rate"] for j in range(i - 1, -1, -1) if rows[j]["tracer"] is None), None)
        nxt = next((rows[j]["rate"] for j in range(i + 1, len(rows)) if rows[j]["tracer"] is None), None)
        base = [x for x in (prev, nxt) if x]
        r["ratio"] = round(r["rate"] / statistics.mean(base), 3) if base else None


def spread(xs: list[float]) -> dict[str, Any]:
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"median": None}
    return {"median": round(statistics.median(xs), 3), "min": round(min(xs), 3),
            "max": round(max(xs), 3), "n": len(xs)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    traced_rows = [r for r in rows if r["tracer"]]
    by: dict[str, list[dict[str, Any]]] = {}
    for r in traced_rows:
        by.setdefault(r["tracer"], []).append(r)
    per_tracer = {name: {"ratio": spread([r["ratio"] for r in rs]),
                         "cpu_us_per_event": spread([r["cpu_us_per_event"] for r in rs]),
                         "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
                         "lost": sum(r["lost"] for r in rs),
                         "kernel_drops": sum(r["kernel_drops"] or 0 for r in rs)}
                  for name, rs in by.items()}
    # noise: each untraced storm against the mean of its untraced neighbours
    u = [r["rate"] for r in rows if r["tracer"] is None]
    noise = [u[i] / statistics.mean([u[i - 1], u[i + 1]]) for i in range(1, len(u) - 1)]
    # goals: collector CPU/event ÷ the C peer's, round by round
    peer = [r for r in traced_rows if r["kind"] == "peer"]
    peer_file = [r for r in traced_rows if r["kind"] == "peer-file"]
    goals: dict[str, Any] = {}
    for name, rs in by.items():
        if not rs or rs[0]["kind"] != "collector" or not peer:
            continue
        ratios = [r["cpu_us_per_event"] / p["cpu_us_per_event"]
                  for r, p in zip(rs, peer, strict=False) if p["cpu_us_per_event"]]
        sink = name.split()[-1]
        goal = 0.35 if sink in ("stdout", "file") else 0.65
        goals[name] = {"cpu_per_event_vs_c_tools": spread(ratios), "goal": goal}
        if sink == "file" and peer_file:  # like for like: the C tools writing a file too
            goals[name]["cpu_per_event_vs_c_tools_to_file"] = spread(
                [r["cpu_us_per_event"] / p["cpu_us_per_event"]
                 for r, p in zip(rs, peer_file, strict=False) if p["cpu_us_per_event"]])
        if sink == "stdout":
            goals[name]["peak_rss_mib"] = per_tracer[name]["peak_rss_mib"]
            goals[name]["rss_goal_mib"] = 50
    # A/B: every other collector's CPU/event ÷ the first one's, per sink, round by round
    ab: dict[str, Any] = {}
    labels = sorted({r["tracer"].split()[0] for r in traced_rows if r["kind"] == "collector"})
    if len(labels) > 1:
        base = labels[0] if "collector[c0]" in labels else None
        first = next(r["tracer"].split()[0] for r in traced_rows if r["kind"] == "collector")
        base = base or first
        for name, rs in by.items():
            label, _, sink = name.partition(" ")
            if rs[0]["kind"] != "collector" or label == base or f"{base} {sink}" not in by:
                continue
            ref = by[f"{base} {sink}"]
            ab[f"{name} ÷ {base} {sink}"] = {
                "cpu_per_event": spread([r["cpu_us_per_event"] / b["cpu_us_per_event"]
                                         for r, b in zip(rs, ref, strict=False)]),
                "storm_ratio": spread([r["ratio"] / b["ratio"] for r, b in zip(rs, ref, strict=False)
                                       if r["ratio"] and b["ratio"]])}
    return {"per_tracer": per_tracer, "untraced_vs_neighbours": spread(noise), "goals": goals,
            "ab": ab}


def print_table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    print(f"{'#':>3} {'tracer':<28} {'rate/s':>8} {'ratio':>6} {'µs/ev':>7} {'RSS MiB':>7} "
          f"{'seen/expected':>15} {'drops':>5}")
    for i, r in enumerate(rows):
        if r["tracer"] is None:
            print(f"{i:>3} {'(untraced)':<28} {r['rate']:>8.0f}")
            continue
        extra = f" broker {r['broker_cpu_us_per_event']} µs/ev" if "broker_cpu_us_per_event" in r else ""
        print(f"{i:>3} {r['tracer']:<28} {r['rate']:>8.0f} {r['ratio'] or 0:>6.3f} "
              f"{r['cpu_us_per_event']:>7.2f} {r['peak_rss_mib']:>7.1f} "
              f"{str(r['events_seen']) + '/' + str(r['events_expected']):>15} "
              f"{r['kernel_drops'] if r['kernel_drops'] is not None else '-':>5}{extra}")
    print("\nper tracer (median [min-max] over the rounds):")
    for name, s in summary["per_tracer"].items():
        rt, cp = s["ratio"], s["cpu_us_per_event"]
        print(f"  {name:<28} ratio {rt['median']} [{rt.get('min')}-{rt.get('max')}]  "
              f"CPU {cp['median']} µs/event [{cp.get('min')}-{cp.get('max')}]  "
              f"RSS {s['peak_rss_mib']} MiB  lost {s['lost']}  drops {s['kernel_drops']}")
    n = summary["untraced_vs_neighbours"]
    print(f"  untraced vs its neighbours (noise): {n['median']} [{n.get('min')}-{n.get('max')}]")
    print("\ncollector CPU/event ÷ execsnoop+exitsnoop CPU/event (goal):")
    for name, g in summary["goals"].items():
        s = g["cpu_per_event_vs_c_tools"]
        rss = f"  peak RSS {g['peak_rss_mib']} MiB (goal <= 50)" if "peak_rss_mib" in g else ""
        print(f"  {name:<28} {s['median']} [{s.get('min')}-{s.get('max')}] (goal <= {g['goal']}){rss}")
        if "cpu_per_event_vs_c_tools_to_file" in g:
            f = g["cpu_per_event_vs_c_tools_to_file"]
            print(f"  {'':<28} ÷ the C tools writing a file: {f['median']} "
                  f"[{f.get('min')}-{f.get('max')}]")
    if summary["ab"]:
        print("\nA/B (CPU/event and storm ratio, median [min-max]):")
        for name, v in summary["ab"].items():
            c, r = v["cpu_per_event"], v["storm_ratio"]
            print(f"  {name}: CPU {c['median']} [{c.get('min')}-{c.get('max')}]  "
                  f"storm ratio {r['median']} [{r.get('min')}-{r.get('max')}]")


# --------------------------------------------------------------- profile


GENERATED = "<!-- generated by bench/storm.py --profile below this line -->"
IDLE_LEAVES = ("epoll_wait", "select", "poll (", "nanosleep", "clock_nanosleep")


def classify(frames: list[str]) -> str:
    text = ";".join(frames[-4:])
    if any(x in frames[-1] for x in IDLE_LEAVES) or "time.sleep" in text:
        return "idle (waiting in epoll/sleep)"
    if "pthread_cond_timedwait" in text:
        return "waiting for the GIL"
    leaf = frames[-1].split(" (")[0]
    if ("PyThread_acquire_lock_timed" in text or "sem_clockwait" in text
            or leaf in ("Condition.wait", "Event.wait", "Lock.acquire")):
        return "idle (waiting on a lock/queue)"
    return "running"


def thread_of(frames: list[str]) -> str:
    for f in frames:
        for t in ("Reader._run", "SinkWorker._run", "Collector._run", "_poll_loop"):
            if f.startswith(t):
                return t
    py = [f for f in frames if ".py:" in f]
    return py[0].split(" (")[0] if py else "(native)"


def profile_summary(raw: Path, top: int = 25) -> str:
    """Tables from py-spy's raw (collapsed) output: where each thread's samples
    are, then the running samples by Python function (self and inclusive)."""
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text().splitlines():
        s, _, n = line.rpartition(" ")
        if s and n.isdigit():
            stacks.append((s.split(";"), int(n)))
    total = sum(n for _, n in stacks) or 1
    states: dict[tuple[str, str], int] = {}
    self_py: dict[str, int] = {}
    incl_py: dict[str, int] = {}
    native: dict[str, int] = {}
    running = 0
    for frames, n in stacks:
        st = classify(frames)
        key = (thread_of(frames), st)
        states[key] = states.get(key, 0) + n
        if st != "running":
            continue
        running += n
        py = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")"
              for f in frames if ".py:" in f]
        if py:
            self_py[py[-1]] = self_py.get(py[-1], 0) + n
            for f in set(py):
                incl_py[f] = incl_py.get(f, 0) + n
        leaf_native = [f for f in frames if ".py:" not in f]
        if leaf_native and frames.index(leaf_native[-1]) > len(frames) - 1 - 1 and py:
            sym = leaf_native[-1].split(" (")[0]
            native[sym] = native.get(sym, 0) + n

    def pct(n: int, of: int = total) -> str:
        return f"{100 * n / of:5.1f}%"

    out = [f"samples: {total} (running: {running}, {pct(running)})", "",
           "| thread | state | share of all samples |", "|---|---|---|"]
    for (t, st), n in sorted(states.items(), key=lambda kv: -kv[1]):
        out.append(f"| {t} | {st} | {pct(n)} |")
    out += ["", f"Running samples by innermost Python function (self, % of running), top {top}:",
            "", "| function | self | inclusive |", "|---|---|---|"]
    for f, n in sorted(self_py.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"| `{f}` | {pct(n, running)} | {pct(incl_py[f], running)} |")
    out += ["", f"Inclusive (% of running), top {top}:", "", "| function | inclusive |", "|---|---|"]
    for f, n in sorted(incl_py.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"| `{f}` | {pct(n, running)} |")
    out += ["", "Running samples whose innermost frame is native (C) code, top 15:", "",
            "| native leaf | % of running |", "|---|---|"]
    for f, n in sorted(native.items(), key=lambda kv: -kv[1])[:15]:
        out.append(f"| `{f}` | {pct(n, running)} |")
    return "\n".join(out)


def profile(args: argparse.Namespace, collectors: list[tuple[str, str]], work: Path,
            servers: KafkaServers) -> None:
    py_spy = ensure_py_spy()
    sections = []
    sinks = [s for s in args.profile_sinks.split(",") if s]
    for sink in sinks:
        label, exe = collectors[0]
        c = Collector(exe, label, sink)
        c.broker, c.registry = servers.broker, servers.registry
        run_dir = Path(tempfile.mkdtemp(prefix="prof-", dir=work))
        c.start(run_dir)
        raw = run_dir / f"{sink}.raw"
        try:
            mode = "--native" if args.profile_mode == "native" else "--nonblocking"
            rec = subprocess.Popen([py_spy, "record", "--pid", str(c.d.proc.pid), mode,
                                    "--rate", str(args.profile_rate), "--duration",
                                    str(int(args.seconds)), "--format", "raw", "-o", str(raw)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.5)
            c0 = runtime_ns(c.pids())
            s = storm(args.seconds + 1)
            c1 = runtime_ns(c.pids())
            _, err = rec.communicate(timeout=120)
            res = c.stop(s.pids)
            cpu = cpu_between(c0, c1) / 1e3 / max(2 * s.spawned, 1)
            head = (f"## collector {sink}\n\n{2 * s.spawned} storm events at {s.rate:.0f} "
                    f"processes/s, {res['seen']} seen; collector CPU {cpu:.1f} µs/event "
                    f"while sampled (py-spy {mode} --rate {args.profile_rate}"
                    + (": it pauses the process per sample, so this is higher than unprofiled"
                       if mode == "--native" else "") + f").\n`{res['stats']}`\n")
            sections.append(head + "\n" + profile_summary(raw))
            if args.keep_raw:
                BUILD.mkdir(parents=True, exist_ok=True)
                shutil.copy(raw, BUILD / f"storm_profile_{sink}.raw")
            log(err.decode(errors="replace")[-300:])
        finally:
            c.d.stop()
            shutil.rmtree(run_dir, ignore_errors=True)
    text = (f"Generated by `bench/storm.py --profile` at "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, collector `{collectors[0][1]}`.\n"
            f"Samples of every thread (py-spy {args.profile_mode}); 'running' excludes "
            f"samples waiting in epoll, on a queue/lock or for the GIL (pthread_cond_timedwait "
            f"under take_gil).\n\n" + "\n\n".join(sections) + "\n")
    out = Path(args.profile_out)
    # a hand-written reading of the tables above the marker survives a new run
    keep = out.read_text().split(GENERATED)[0] if out.exists() and GENERATED in out.read_text() else ""
    out.write_text(keep + GENERATED + "\n\n" + text)
    print(text)


# ------------------------------------------------------------------ main


def parse_collectors(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for v in values or [str(DEFAULT_COLLECTOR)]:
        label, _, path = v.rpartition("=") if "=" in v else ("", "", v)
        p = Path(path)
        if p.is_dir():  # a checkout
            p = p / ".venv" / "bin" / "collector"
        if not p.exists():
            usage_error(f"no collector at {p}")
        out.append((label, str(p)))
    if len(out) > 1:
        out = [(label or f"c{i}", p) for i, (label, p) in enumerate(out)]
    return out


def checkout_of(exe: str) -> dict[str, Any]:
    """The git commit of the checkout a collector runs from, and whether it had
    uncommitted changes (an editable install runs the working tree)."""
    root = Path(exe).resolve().parent.parent.parent  # <checkout>/.venv/bin/collector
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return {}
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.splitlines()
    return {"commit": head.stdout.strip(), "uncommitted_files": len(dirty)}


DEFAULT_TRACERS = ("floor-batched,floor-per-record,libbpf-tools,libbpf-tools-file,auditd,"
                   "stdout,file,kafka-json,kafka-avro")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="length of every storm")
    ap.add_argument("--rounds", type=int, default=2, help="rounds (odd ones reversed)")
    ap.add_argument("--quick", action="store_true", help="smoke run (< 2 min): 2 s storms, 1 round")
    ap.add_argument("--tracers", default=DEFAULT_TRACERS, help="comma-separated, in order")
    ap.add_argument("--collector", action="append", default=[], metavar="[LABEL=]PATH",
                    help="collector executable or checkout (repeat to compare A/B)")
    ap.add_argument("--out", default=str(RESULTS / "storm.json"))
    ap.add_argument("--warm-mib", type=int, default=4096,
                    help="guest memory written and freed before the storms (0: none)")
    ap.add_argument("--rewarm-mib", type=int, default=512,
                    help="guest memory written and freed again before every storm, traced or "
                         "not: the kernel hands the pages just freed out first, so each storm "
                         "writes into pages the guest already has (0: none)")
    ap.add_argument("--spawner-check", action="store_true",
                    help="also compare the C spawner's rate with os.posix_spawn's")
    ap.add_argument("--profile", action="store_true", help="py-spy the collector instead")
    ap.add_argument("--profile-sinks", default="stdout,kafka-json")
    ap.add_argument("--profile-rate", type=int, default=100)
    ap.add_argument("--profile-mode", choices=("native", "nonblocking"), default="native",
                    help="native: C frames too, the process is paused per sample; "
                         "nonblocking: Python frames only, idle threads left out, no pauses")
    ap.add_argument("--profile-out", default=str(RESULTS / "storm_profile.md"))
    ap.add_argument("--keep-raw", action="store_true", help="keep py-spy's raw output in build/storm/")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.rounds = 2.0, 1
    if os.geteuid() != 0:
        raise SystemExit("storm.py: run as root (BPF, auditd, tracefs)")
    collectors = parse_collectors(args.collector)
    ensure_apt()
    build()
    names = [n for n in args.tracers.split(",") if n]
    tracers = make_tracers(names, collectors)
    kafka = [t for t in tracers if isinstance(t, Collector) and "kafka" in t.sink]
    if args.profile:
        kafka_needed = any("kafka" in s for s in args.profile_sinks.split(","))
        avro_needed = "kafka-avro" in args.profile_sinks
    else:
        kafka_needed = bool(kafka)
        avro_needed = any(t.sink == "kafka-avro" for t in kafka)
    work = Path(tempfile.mkdtemp(prefix="storm-", dir=SHM))
    servers = KafkaServers()
    kafka_dir = Path(tempfile.mkdtemp(prefix="storm-kafka-"))
    started = time.monotonic()
    try:
        if kafka_needed:
            log("starting the Kafka broker" + (" and the registry" if avro_needed else ""))
            servers.start(kafka_dir, avro_needed)
            for t in kafka:
                t.broker, t.registry = servers.broker, servers.registry
        if args.profile:
            profile(args, collectors, work, servers)
            return
        for t in tracers:
            t.setup(work)
        if kafka:  # a cold broker (JIT, first segment) would tax the first Kafka run only
            log("warming up the broker")
            traced(kafka[0], min(3.0, args.seconds), work, servers)
            kafka[0].runs = 0
        # pages the hypervisor has not given the guest yet cost 10x on first write
        # (bench/guest_memory.py): paid here, not by whichever tracer writes most
        warmed_s = guest_memory.warm(args.warm_mib)
        log(f"warmed {args.warm_mib} MiB of guest memory in {warmed_s:.0f} s")
        storm(min(2.0, args.seconds))  # warm-up: page cache, frequency
        spawner = None
        if args.spawner_check:
            c_rates, py_rates = [], []
            for _ in range(3):  # alternated: C, Python, C, ...
                c_rates.append(storm(args.seconds).rate)
                py_rates.append(py_storm_rate(args.seconds))
            spawner = {"c_posix_spawn_per_s": [round(x) for x in c_rates],
                       "python_os_posix_spawn_per_s": [round(x) for x in py_rates],
                       "c_over_python_median": round(statistics.median(
                           c / p for c, p in zip(c_rates, py_rates, strict=True)), 3)}
            log(f"spawners: {spawner}")
        def rewarm() -> None:
            guest_memory.warm(args.rewarm_mib)

        rewarm()
        rows: list[dict[str, Any]] = [untraced(args.seconds)]
        log(f"untraced {rows[-1]['rate']:.0f}/s")
        for rnd in range(args.rounds):
            order = tracers if rnd % 2 == 0 else tracers[::-1]
            for t in order:
                rewarm()
                row = traced(t, args.seconds, work, servers)
                row["round"] = rnd
                rows.append(row)
                log(f"round {rnd} {t.name}: {row['rate']:.0f}/s {row['cpu_us_per_event']} µs/event "
                    f"seen {row['events_seen']}/{row['events_expected']} drops {row['kernel_drops']}")
                rewarm()
                rows.append(untraced(args.seconds))
                log(f"untraced {rows[-1]['rate']:.0f}/s")
        neighbours_ratio(rows)
        summary = summarise(rows)
        result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "storm_seconds": args.seconds, "rounds": args.rounds, "workers": 2,
                  "collectors": [{"label": lb, "path": p, **checkout_of(p)} for lb, p in collectors],
                  "wall_s": round(time.monotonic() - started), "spawner_check": spawner,
                  "warmed_guest_mib": args.warm_mib, "rewarmed_mib_per_storm": args.rewarm_mib,
                  "what": __doc__.split("\n\n")[1:4], "summary": summary, "runs": rows}
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print_table(rows, summary)
        log(f"wrote {args.out} in {result['wall_s']} s")
    finally:
        for t in tracers:
            with contextlib.suppress(Exception):
                t.teardown()
        servers.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(kafka_dir, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        raise SystemExit(f"storm.py: {exc}") from None
    except KeyboardInterrupt:
        raise SystemExit("storm.py: interrupted") from None
