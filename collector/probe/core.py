"""The CO-RE backend: the compiled object, loaded through libbpf.

Settings reach the BPF programs as read-only globals written before load,
field by field at their BTF offsets (never by editing C text); map sizes are
set the same way. Which of the object's alternative programs load is chosen
from the running kernel (collector/probe/features.py). A load the kernel
refuses is reported in one line: the program and the verifier's reason.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from importlib import resources
from pathlib import Path

from collector.config import BY_KEY
from collector.errors import PrivilegeError, ProbeError
from collector.probe import features, libbpf, ringbuf, rodata
from collector.probe.features import Variants
from collector.probe.layout import ARGS_MAX_LIMIT, EXIT_CLAIMS_MAX, RECORD_MAX, DropReason
from collector.probe.privileges import missing_privileges
from collector.probe.verifier_log import decisive

log = logging.getLogger(__name__)

# Runs the kernel skipped (fdinfo `recursion_misses`, 5.12+): a program preempted
# on a CPU where its tracepoint fires again is not run a second time (seen on 7.3
# with full preemption). Those events never reach the ring buffer, so they are
# counted here as kernel drops, by the kind of event the program would have sent.
MISSED_KIND = {"handle_exec": "exec_missed", "handle_exec_bounded": "exec_missed",
               "handle_exit": "exit_missed", "handle_exit_claim": "exit_missed",
               "release_exit_claim": "claim_release_missed", "handle_fork": "fork_missed"}
# runs=copies: a skipped copy is normal (the next copy handles the event) and the
# checker counts real losses (no copy ran) in the drops map as exec_missed etc. A
# skipped run of the checker itself is an event not verified, not a lost one (the
# copies before it ran), so it is not a drop; it would hide a loss only if all the
# copies and the checker of one event were skipped together.


def object_path() -> Path:
    """The compiled BPF object shipped as package data."""
    return Path(str(resources.files("collector.probe").joinpath("process.bpf.o")))


def _default(key: str) -> int:
    """Defaults have one owner: the option table of collector/config.py."""
    value: int = BY_KEY[key].default
    return value


class CoreProbe:
    """Load bpf/process.bpf.c's object, attach its tracepoints, read the ring buffer."""

    def __init__(
        self,
        *,
        args_max: int | None = None,
        ring_buffer_bytes: int | None = None,
        wakeup_bytes: int | None = None,
        ignore_self: bool = True,
        obj_path: Path | None = None,
        variants: dict[str, str] | None = None,
        btf_path: Path | None = None,
        exit_claims_max: int = EXIT_CLAIMS_MAX,
        ring_reader: str = "auto",
    ) -> None:
        self.args_max = args_max if args_max is not None else _default("capture.args_max_bytes")
        if not 0 < self.args_max <= ARGS_MAX_LIMIT:
            raise ValueError(f"args_max must be 1..{ARGS_MAX_LIMIT}")
        self.ring_buffer_bytes = (ring_buffer_bytes if ring_buffer_bytes is not None
                                  else _default("capture.ring_buffer_bytes"))
        self.wakeup_bytes = (wakeup_bytes if wakeup_bytes is not None
                             else _default("capture.wakeup_bytes"))
        self.ignore_self = ignore_self
        self.obj_path = obj_path or object_path()
        self.btf_path = btf_path or features.btf_path()
        self._forced = variants
        self.exit_claims_max = exit_claims_max
        if ring_reader not in ("auto", "mapped", "libbpf"):
            raise ValueError("ring_reader must be auto, mapped or libbpf")
        # mapped: records read from the ring's mapping, no Python call per record
        # (collector/probe/ringbuf.py); libbpf: its callback per record (the reference)
        self.ring_reader = ("mapped" if ringbuf.available() else "libbpf") \
            if ring_reader == "auto" else ring_reader
        self.variants: Variants | None = None  # known after start()
        self._obj = 0
        self._links: list[int] = []
        self._rb: libbpf.RingBuffer | ringbuf.MappedRing | None = None
        self._drops_fd = -1
        self._prog_fds: dict[str, int] = {}
        self._ncpu = 1

    def start(self) -> None:
        problem = missing_privileges()
        if problem:
            raise PrivilegeError(problem)
        if not self.btf_path.exists():
            raise ProbeError(
                f"{self.btf_path} not found: this kernel was built without BTF "
                "(CONFIG_DEBUG_INFO_BTF=y is needed for the CO-RE backend)"
            )
        if not self.obj_path.exists():
            raise ProbeError(f"BPF object {self.obj_path} not found: build it with `make setup`")
        lib = libbpf.lib()
        kernel = features.detect(self.btf_path)
        missing = kernel.problems()
        if missing:
            raise ProbeError(f"{missing[0]} (`collector check` lists every missing feature)")
        self.variants = kernel.choose(self._forced)
        log.debug("Linux %s: loading %s (%s)", kernel.release, ", ".join(self.variants.programs()),
                  self.variants)
        try:
            self._load(lib, self.variants)
        except BaseException:
            self.close()
            raise

    def _load(self, lib: ctypes.CDLL, variants: Variants) -> None:
        libbpf.take_log()
        opts = libbpf.OpenOpts(sz=ctypes.sizeof(libbpf.OpenOpts))
        if self.btf_path != features.DEFAULT_BTF_PATH:
            opts.btf_custom_path = str(self.btf_path).encode()
        self._obj = libbpf.check_ptr(
            lib.bpf_object__open_file(str(self.obj_path).encode(), ctypes.byref(opts)),
            f"opening {self.obj_path}",
        )
        wanted = set(variants.programs())
        found = self._choose_programs(lib, wanted)
        if wanted - found:
            raise ProbeError(f"the BPF object {self.obj_path} has no program "
                             f"{', '.join(sorted(wanted - found))}: rebuild it with `make setup`")
        self._ncpu = libbpf.possible_cpus()
        self._size("exec_scratch", self._ncpu * features.COPIES)
        # task-local storage only exists from 5.11: not created unless the copies use it
        libbpf.check_rc(lib.bpf_map__set_autocreate(self._map("task_seen"),
                                                    variants.runs == "copies"),
                        "choosing map task_seen")
        self._size("events", self.ring_buffer_bytes,
                   f"sizing the ring buffer to {self.ring_buffer_bytes} bytes (a power of two pages)")
        self._size("exit_claims", self.exit_claims_max if variants.exit == "claim" else 1)
        rodata.write_settings(self._obj, {
            "cfg.args_max": self.args_max,
            "cfg.wakeup_bytes": self.wakeup_bytes,
            "cfg.self_tgid": os.getpid(),
            "cfg.ignore_self": int(self.ignore_self),
        })
        rc = lib.bpf_object__load(self._obj)
        if rc < 0:
            raise self._load_error(rc, variants)
        for name in variants.programs():
            prog = libbpf.check_ptr(
                lib.bpf_object__find_program_by_name(self._obj, name.encode()), f"finding {name}"
            )
            self._links.append(libbpf.check_ptr(lib.bpf_program__attach(prog), f"attaching {name}"))
            self._prog_fds[name] = lib.bpf_program__fd(prog)
        self._drops_fd = lib.bpf_map__fd(self._map("drops"))
        events_fd = lib.bpf_map__fd(self._map("events"))
        self._rb = (ringbuf.MappedRing(events_fd, self.ring_buffer_bytes, RECORD_MAX)
                    if self.ring_reader == "mapped" else libbpf.RingBuffer(events_fd))

    def _choose_programs(self, lib: ctypes.CDLL, wanted: set[str]) -> set[str]:
        """Autoload exactly the wanted programs: the others are never verified."""
        found: set[str] = set()
        prog = lib.bpf_object__next_program(self._obj, None)
        while prog:
            name = lib.bpf_program__name(prog).decode()
            libbpf.check_rc(lib.bpf_program__set_autoload(prog, name in wanted),
                            f"choosing program {name}")
            if name in wanted:
                found.add(name)
            prog = lib.bpf_object__next_program(self._obj, prog)
        return found

    def _size(self, name: str, entries: int, what: str | None = None) -> None:
        libbpf.check_rc(libbpf.lib().bpf_map__set_max_entries(self._map(name), entries),
                        what or f"sizing {name}")

    def _load_error(self, rc: int, variants: Variants) -> ProbeError:
        """One line: the refused program and the verifier's reason, plus where to look."""
        messages = libbpf.take_log()
        for message in messages:
            log.debug("libbpf: %s", message.rstrip("\n"))
        prog, reason = decisive(messages)
        if reason is None:
            tail = next((m.strip() for m in reversed(messages) if m.strip()), os.strerror(-rc))
            reason = tail
        where = f"{prog}: " if prog else ""
        return ProbeError(
            f"loading the BPF programs ({variants}) failed on Linux {platform.release()}: "
            f"{where}{reason} (COLLECTOR_DEBUG=1 shows the verifier's full log; "
            "`collector check` lists missing kernel features)",
            log=messages,
        )

    def _map(self, name: str) -> int:
        return libbpf.check_ptr(
            libbpf.lib().bpf_object__find_map_by_name(self._obj, name.encode()), f"finding map {name}"
        )

    def read(self, timeout_ms: int) -> list[bytes]:
        if self._rb is None:
            raise ProbeError("the probe is not started")
        return self._rb.poll(timeout_ms)

    def kernel_drops(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self._drops_fd < 0:
            return {r.name.lower(): 0 for r in DropReason} | dict.fromkeys(MISSED_KIND.values(), 0)
        values = (ctypes.c_uint64 * self._ncpu)()
        for reason in DropReason:
            key = ctypes.c_uint32(reason)
            rc = libbpf.lib().bpf_map_lookup_elem(self._drops_fd, ctypes.byref(key), values)
            out[reason.name.lower()] = sum(values) if rc == 0 else 0
        for kind in sorted(set(MISSED_KIND.values())):
            out.setdefault(kind, 0)
        for name, fd in self._prog_fds.items():
            if name in MISSED_KIND:  # not the copies: a skipped copy is no loss
                out[MISSED_KIND[name]] += _recursion_misses(fd)
        return out

    def close(self) -> None:
        if self._rb is not None:
            self._rb.close()
            self._rb = None
        lib = libbpf.lib() if (self._links or self._obj) else None
        for link in self._links:
            lib.bpf_link__destroy(link)  # type: ignore[union-attr]
        self._links.clear()
        if self._obj:
            lib.bpf_object__close(self._obj)  # type: ignore[union-attr]
            self._obj = 0
        self._drops_fd = -1
        self._prog_fds.clear()


def _recursion_misses(prog_fd: int) -> int:
    """The kernel's count of skipped runs of a program (0 where the kernel has none)."""
    try:
        with open(f"/proc/self/fdinfo/{prog_fd}", encoding="ascii") as f:
            for line in f:
                if line.startswith("recursion_misses:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
