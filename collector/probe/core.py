"""The CO-RE backend: the compiled object, loaded through libbpf.

Settings reach the BPF programs as read-only globals written before load
(never by editing C text); map sizes are set the same way.
"""

from __future__ import annotations

import ctypes
import os
from importlib import resources
from pathlib import Path

from collector.errors import PrivilegeError, ProbeError
from collector.probe import libbpf
from collector.probe.layout import ARGS_MAX_LIMIT, CONFIG, DropReason
from collector.probe.privileges import missing_privileges

BTF_PATH = Path("/sys/kernel/btf/vmlinux")
PROGRAMS = ("handle_exec", "handle_exit", "handle_fork")


def object_path() -> Path:
    """The compiled BPF object shipped as package data."""
    return Path(str(resources.files("collector.probe").joinpath("process.bpf.o")))


class CoreProbe:
    """Load bpf/process.bpf.c's object, attach its tracepoints, read the ring buffer."""

    def __init__(
        self,
        *,
        args_max: int = 16384,
        ring_buffer_bytes: int = 16 << 20,
        wakeup_bytes: int = 1 << 20,
        ignore_self: bool = True,
        obj_path: Path | None = None,
    ) -> None:
        if not 0 < args_max <= ARGS_MAX_LIMIT:
            raise ValueError(f"args_max must be 1..{ARGS_MAX_LIMIT}")
        self.args_max = args_max
        self.ring_buffer_bytes = ring_buffer_bytes
        self.wakeup_bytes = wakeup_bytes
        self.ignore_self = ignore_self
        self.obj_path = obj_path or object_path()
        self._obj = 0
        self._links: list[int] = []
        self._rb: libbpf.RingBuffer | None = None
        self._drops_fd = -1
        self._ncpu = 1

    def start(self) -> None:
        problem = missing_privileges()
        if problem:
            raise PrivilegeError(problem)
        if not BTF_PATH.exists():
            raise ProbeError(
                f"{BTF_PATH} not found: this kernel was built without BTF "
                "(CONFIG_DEBUG_INFO_BTF=y is needed for the CO-RE backend)"
            )
        if not self.obj_path.exists():
            raise ProbeError(f"BPF object {self.obj_path} not found: build it with `make setup`")
        lib = libbpf.lib()
        try:
            self._load(lib)
        except BaseException:
            self.close()
            raise

    def _load(self, lib: ctypes.CDLL) -> None:
        libbpf.take_log()
        self._obj = libbpf.check_ptr(
            lib.bpf_object__open_file(str(self.obj_path).encode(), None), f"opening {self.obj_path}"
        )
        self._ncpu = libbpf.possible_cpus()
        scratch = self._map("exec_scratch")
        libbpf.check_rc(lib.bpf_map__set_max_entries(scratch, self._ncpu), "sizing exec_scratch")
        events = self._map("events")
        libbpf.check_rc(
            lib.bpf_map__set_max_entries(events, self.ring_buffer_bytes),
            f"sizing the ring buffer to {self.ring_buffer_bytes} bytes (a power of two pages)",
        )
        cfg = CONFIG.pack(self.args_max, self.wakeup_bytes, os.getpid(), int(self.ignore_self))
        buf = ctypes.create_string_buffer(cfg, len(cfg))
        libbpf.check_rc(
            lib.bpf_map__set_initial_value(self._map(".rodata"), buf, len(cfg)), "writing settings"
        )
        rc = lib.bpf_object__load(self._obj)
        if rc < 0:
            log = libbpf.take_log()
            tail = next((line.strip() for line in reversed(log) if line.strip()), "")
            raise ProbeError(
                f"loading the BPF programs failed: {os.strerror(-rc)}; libbpf said: {tail}", log=log
            )
        for name in PROGRAMS:
            prog = libbpf.check_ptr(
                lib.bpf_object__find_program_by_name(self._obj, name.encode()), f"finding {name}"
            )
            self._links.append(libbpf.check_ptr(lib.bpf_program__attach(prog), f"attaching {name}"))
        self._drops_fd = lib.bpf_map__fd(self._map("drops"))
        self._rb = libbpf.RingBuffer(lib.bpf_map__fd(events))

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
            return {r.name.lower(): 0 for r in DropReason}
        values = (ctypes.c_uint64 * self._ncpu)()
        for reason in DropReason:
            key = ctypes.c_uint32(reason)
            rc = libbpf.lib().bpf_map_lookup_elem(self._drops_fd, ctypes.byref(key), values)
            out[reason.name.lower()] = sum(values) if rc == 0 else 0
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
