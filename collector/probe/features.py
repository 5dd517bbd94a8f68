"""What the running kernel offers, and which of the object's programs fit it.

One object serves every kernel from 5.10 on. Where kernels differ it
carries a pair of programs, and this module picks one of each pair before
load, from the kernel's own BTF and from feature probes:

    exit   group_dead  handle_exit: the tracepoint passes `bool group_dead`
                       (only recent kernels; a tp_btf program's arguments
                       cannot be relocated, so it does not load elsewhere)
           claim       handle_exit_claim + release_exit_claim: one exit per
                       thread group by an atomic claim (bpf/process.bpf.c)
    paths  bpf_loop    handle_exec: paths walked with bpf_loop (5.17+)
           bounded     handle_exec_bounded: a bounded loop that 5.10 accepts
    runs   single      one program per tracepoint
           copies      COPIES copies of each (`<name>_c<i>`) and a checker
                       (check_exec, check_exit[_claim], check_fork), deduped
                       per task in task-local storage: where tracepoints run
                       preemptible (7.x, full/lazy preemption) the kernel skips
                       a program already running on the CPU, and a skipped copy
                       leaves the event to the next (bpf/process.bpf.c)

`copies` is chosen wherever the kernel has task-local storage (a
BPF_MAP_TYPE_TASK_STORAGE map and tracing programs' access to it came in the
same release, 5.11): that is cheaper and surer than guessing the preemption
model, which Debian kernels pick at boot (PREEMPT_DYNAMIC). The extra cost is
one task-storage lookup per extra copy and event.

PROCESS_COLLECTOR_BPF_VARIANTS (e.g. `exit=claim,paths=bounded`) forces a
choice, for tests and for working around a wrong guess; PROCESS_COLLECTOR_BTF
reads the kernel's BTF from another file (tests).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from collector.errors import ProbeError
from collector.probe import libbpf
from collector.probe.btf import Btf, Kind

DEFAULT_BTF_PATH = Path("/sys/kernel/btf/vmlinux")
VARIANTS_ENV = "PROCESS_COLLECTOR_BPF_VARIANTS"
BTF_ENV = "PROCESS_COLLECTOR_BTF"

TRACEPOINTS = ("sched_process_exec", "sched_process_exit", "sched_process_fork")
CHOICES = {"exit": ("group_dead", "claim"), "paths": ("bpf_loop", "bounded"),
           "runs": ("single", "copies")}
COPIES = 3  # bpf/process.bpf.c's COPIES
CHECKERS = {"handle_exec": "check_exec", "handle_exec_bounded": "check_exec",
            "handle_exit": "check_exit", "handle_exit_claim": "check_exit_claim",
            "handle_fork": "check_fork"}
PROGRAMS = {
    ("exit", "group_dead"): ("handle_exit",),
    ("exit", "claim"): ("handle_exit_claim", "release_exit_claim"),
    ("paths", "bpf_loop"): ("handle_exec",),
    ("paths", "bounded"): ("handle_exec_bounded",),
}
ALWAYS = ("handle_fork",)

# uapi/linux/bpf.h numbers
_BPF_MAP_TYPE_RINGBUF = 27
_BPF_MAP_TYPE_TASK_STORAGE = 29
_BPF_PROG_TYPE_RAW_TRACEPOINT = 17
_BPF_FUNC_LOOP = 181


def btf_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(BTF_ENV) or DEFAULT_BTF_PATH)


@dataclass(frozen=True)
class Variants:
    """The chosen program of each pair."""

    exit: str
    paths: str
    runs: str = "single"

    def programs(self) -> tuple[str, ...]:
        """In attach order, which is the order a tracepoint runs them: copies, then checker."""
        single = (*PROGRAMS["exit", self.exit], *PROGRAMS["paths", self.paths], *ALWAYS)
        if self.runs == "single":
            return single
        out: list[str] = []
        for name in single:
            if name in CHECKERS:
                out += [f"{name}_c{i}" for i in range(COPIES)] + [CHECKERS[name]]
            else:
                out.append(name)
        return tuple(out)

    def __str__(self) -> str:
        return f"exit={self.exit} paths={self.paths} runs={self.runs}"


@dataclass(frozen=True)
class KernelFeatures:
    """Facts about the running kernel; `problems()` names what the collector cannot do without."""

    release: str
    btf_path: Path
    btf_error: str | None = None
    ringbuf: bool = False
    tracepoints: dict[str, bool] = field(default_factory=dict)
    exit_group_dead: bool = False
    bpf_loop: bool = False
    task_storage: bool = False

    def problems(self) -> list[str]:
        if self.btf_error is not None:
            return [f"BTF: {self.btf_error}; the kernel needs CONFIG_DEBUG_INFO_BTF=y (Linux "
                    "5.10+ with BTF, as Debian, Ubuntu and RHEL ship it) for the CO-RE backend"]
        out = []
        if not self.ringbuf:
            out.append(f"BPF ring buffer: not supported by Linux {self.release} (it needs 5.8+; "
                       "the collector supports 5.10 and later)")
        for name, ok in self.tracepoints.items():
            if not ok:
                out.append(f"tracepoint {name}: missing from the kernel's BTF "
                           f"(btf_trace_{name}); a BTF-enabled tracepoint is needed")
        return out

    def choose(self, forced: Mapping[str, str] | None = None) -> Variants:
        """The programs that fit this kernel, unless `forced` (or the env knob) says otherwise."""
        chosen = {"exit": "group_dead" if self.exit_group_dead else "claim",
                  "paths": "bpf_loop" if self.bpf_loop else "bounded",
                  "runs": "copies" if self.task_storage else "single"}
        chosen.update(forced if forced is not None else forced_variants())
        return Variants(**chosen)


def forced_variants(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Parse PROCESS_COLLECTOR_BPF_VARIANTS; a bad value is a ProbeError naming it."""
    env = os.environ if environ is None else environ
    text = env.get(VARIANTS_ENV, "").strip()
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        if value not in CHOICES.get(key, ()):
            allowed = "; ".join(f"{k}={'|'.join(v)}" for k, v in CHOICES.items())
            raise ProbeError(f"{VARIANTS_ENV}: {part!r} is not one of {allowed}")
        out[key] = value
    return out


def detect(path: Path | None = None) -> KernelFeatures:
    """Read the kernel's BTF and probe the kernel; never raises for a missing feature."""
    path = path or btf_path()
    release = platform.release()
    if not path.exists():
        return KernelFeatures(release, path, btf_error=f"{path} not found")
    try:
        btf = Btf.parse(path)
    except ProbeError as exc:
        return KernelFeatures(release, path, btf_error=str(exc))
    with btf:
        return KernelFeatures(
            release=release,
            btf_path=path,
            ringbuf=_probe(libbpf.lib().libbpf_probe_bpf_map_type(_BPF_MAP_TYPE_RINGBUF, None),
                           lambda: _enum_has(btf, "bpf_map_type", "BPF_MAP_TYPE_RINGBUF")),
            tracepoints={name: _tracepoint_args(btf, name) is not None for name in TRACEPOINTS},
            exit_group_dead=_exit_has_group_dead(btf),
            # bpf_loop is a base helper: a raw tracepoint program sees the same
            # set as tp_btf ones (libbpf cannot probe BPF_PROG_TYPE_TRACING).
            bpf_loop=_probe(
                libbpf.lib().libbpf_probe_bpf_helper(_BPF_PROG_TYPE_RAW_TRACEPOINT,
                                                     _BPF_FUNC_LOOP, None),
                lambda: _enum_has(btf, "bpf_func_id", "BPF_FUNC_loop")),
            task_storage=_probe(
                libbpf.lib().libbpf_probe_bpf_map_type(_BPF_MAP_TYPE_TASK_STORAGE, None),
                lambda: _enum_has(btf, "bpf_map_type", "BPF_MAP_TYPE_TASK_STORAGE")),
        )


def _probe(rc: int, from_btf: Callable[[], bool]) -> bool:
    """A probe's answer; when it cannot tell (rc < 0: no privileges), what BTF says."""
    if rc >= 0:
        return rc > 0
    return from_btf()


def _enum_has(btf: Btf, enum: str, name: str) -> bool:
    t = btf.find(enum, Kind.ENUM)
    return t is not None and name in btf.enum_values(t)


def _tracepoint_args(btf: Btf, name: str) -> list[tuple[str, int]] | None:
    """The tracepoint's arguments (after the hidden `void *__data`), or None when absent.

    `btf_trace_<name>` is the typedef the kernel defines for every BTF-enabled
    tracepoint: a pointer to the probe's function prototype.
    """
    t = btf.find(f"btf_trace_{name}", Kind.TYPEDEF)
    if t is None:
        return None
    ptr = btf.type(t.ref)
    if ptr.kind != Kind.PTR:
        return None
    proto = btf.type(ptr.ref)
    if proto.kind != Kind.FUNC_PROTO:
        return None
    return btf.params(proto)[1:]


def _exit_has_group_dead(btf: Btf) -> bool:
    """sched_process_exit(struct task_struct *p, bool group_dead) on recent kernels."""
    args = _tracepoint_args(btf, "sched_process_exit")
    if not args or len(args) < 2:
        return False
    second = btf.resolve(args[1][1])
    return second.kind == Kind.INT and second.ref == 1  # a one-byte int: bool
