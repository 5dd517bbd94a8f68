"""The bcc backend: bpf/process_bcc.c compiled on the host by bcc, for kernels
where the CO-RE object cannot load (no BTF, an old libbpf).

It emits the records of bpf/process.h, so everything after the ring buffer
is shared with the CO-RE backend. Struct offsets come from BTF when the
kernel has it, else from kernel headers that must match the running kernel
(collector/probe/offsets.py says why); settings are -D flags, never edits
of the C text.

bcc is Debian's python3-bpfcc (`make setup` links it into the venv); the
kernel headers are found at $BCC_KERNEL_SOURCE (bcc's own variable) when it is
set, else /lib/modules/$(uname -r)/build when that is a whole tree, else the
merged trees `make setup` builds under the download cache (header_trees_dir):
the running kernel's, or the newest one — whose offsets are then only used
when BTF agrees, and refused without BTF (offsets.py says why).
"""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from collector.errors import PrivilegeError, ProbeError
from collector.probe import offsets
from collector.probe.layout import ARGS_MAX_LIMIT, EXIT_CLAIMS_MAX, DropReason
from collector.probe.privileges import missing_privileges

BTF_PATH = Path("/sys/kernel/btf/vmlinux")
KERNEL_SOURCE_ENV = "BCC_KERNEL_SOURCE"
OFFSET_SOURCES = ("auto", "btf", "headers")
PAGE = 4096
BCC_SOURCE = "process_bcc.c"
TRACEPOINTS = ("sched_process_exec", "sched_process_exit", "sched_process_fork")
CLAIM_TRACEPOINT = "sched_process_free"  # releases exit claims (kernels without group_dead)

# The struct mount prefix for headers-only kernels: fs/mount.h is private to
# the kernel tree (no headers package ships it). These four members have
# been first, in this order, since Linux 3.x; BTF checks them where it exists.
_MOUNT_PREFIX = (
    "struct mount { struct hlist_node mnt_hash; struct mount *mnt_parent; "
    "struct dentry *mnt_mountpoint; struct vfsmount mnt; };"
)
_HEADER_INCLUDES = (
    "linux/sched.h", "linux/sched/signal.h", "linux/cred.h", "linux/fs.h", "linux/fs_struct.h",
    "linux/mm_types.h", "linux/binfmts.h", "linux/cgroup-defs.h", "linux/kernfs.h",
    "linux/dcache.h", "linux/mount.h",
)


def bpf_source_dir() -> Path:
    """bpf/ (process_bcc.c, process.h): the copy installed as package data, or the checkout's."""
    installed = Path(str(resources.files("collector").joinpath("bpf")))
    if (installed / BCC_SOURCE).exists():
        return installed
    return Path(__file__).resolve().parent.parent.parent / "bpf"


def import_bcc() -> Any:
    """The bcc module, or ProbeError with the fix.

    Importing bcc loads libbcc.so.0 with ctypes, and Debian's libbcc links
    libbpf.so.1: a missing or broken libbpf (or libbcc) is an OSError here,
    not an ImportError, and must be a clear line too.
    """
    try:
        import bcc
    except ImportError as exc:
        raise ProbeError(
            f"bcc is not importable ({exc}): apt-get install python3-bpfcc, then `make setup` "
            "links it into the venv"
        ) from None
    except OSError as exc:
        raise ProbeError(
            f"bcc is installed but its library cannot load ({exc}): apt-get install --reinstall "
            "libbpfcc libbpf1"
        ) from None
    return bcc


@dataclass(frozen=True)
class KernelSource:
    """A kernel header tree and the release it was built for."""

    path: Path
    release: str  # UTS_RELEASE from include/generated/utsrelease.h ("" if unknown)


def header_trees_dir() -> Path:
    """Where tests/support/bcc_headers.sh (run by `make setup`) merges Debian's split
    headers: <download cache>/kernel-headers. The cache root rule is
    tests/support/cache.py's (the installed collector cannot import tests/);
    tests/test_probe_bcc.py checks that the two agree."""
    env = os.environ.get("PROCESS_COLLECTOR_CACHE")
    if env:
        return Path(env) / "kernel-headers"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "process-collector" / "kernel-headers"


def _is_tree(path: Path) -> bool:
    """A whole header tree: Debian's /lib/modules/<r>/build alone lacks the -common half.
    One this user cannot read (another user's cache) is none."""
    try:
        return (path / "include" / "linux" / "sched.h").exists()
    except OSError:
        return False


def _merged_trees(root: Path) -> list[Path]:
    """The complete trees bcc_headers.sh made, newest release name first."""
    try:
        found = [p for p in root.iterdir() if (p / ".complete").exists()]
    except OSError:  # none yet, or not this user's to read
        return []
    return sorted(found, key=lambda p: p.name, reverse=True)


def kernel_source() -> KernelSource | None:
    """The header tree bcc will compile against, or None when there is none.

    $BCC_KERNEL_SOURCE when set (and then only it); else /lib/modules/<running>/build;
    else the cache's merged tree for the running kernel; else the newest merged tree
    (another kernel's: start() uses it only with offsets from BTF).
    """
    env = os.environ.get(KERNEL_SOURCE_ENV)
    running = os.uname().release
    if env:
        candidates = [Path(env)]
    else:
        # stable sort: the running kernel's tree first, then the newest
        merged = sorted(_merged_trees(header_trees_dir()), key=lambda p: p.name != running)
        candidates = [Path("/lib/modules") / running / "build", *merged]
    for path in candidates:
        if _is_tree(path):
            return KernelSource(path, headers_release(path))
    return None


def headers_release(path: Path) -> str:
    try:
        text = (path / "include" / "generated" / "utsrelease.h").read_text()
    except OSError:
        return ""
    m = re.search(r'UTS_RELEASE\s+"([^"]*)"', text)
    return m.group(1) if m else ""


def group_dead_arg(btf: offsets.Btf | None) -> bool:
    """Does sched_process_exit pass group_dead (a 2nd argument)? Only BTF can say;
    without it the claim map is used, which is correct on every kernel."""
    if btf is None:
        return False
    params = btf.func_proto_params("btf_trace_sched_process_exit")
    return params is not None and params >= 3  # (void *ctx, task, group_dead)


class BccProbe:
    """Compile bpf/process_bcc.c with bcc, attach its raw tracepoints, read the ring buffer."""

    backend = "bcc"

    def __init__(
        self,
        *,
        args_max: int = 16384,
        ring_buffer_bytes: int = 16 << 20,
        wakeup_bytes: int = 1 << 20,
        ignore_self: bool = True,
        offset_source: str = "auto",
        btf_path: Path = BTF_PATH,
        group_dead: bool | None = None,
        exit_claims_max: int = EXIT_CLAIMS_MAX,
    ) -> None:
        """group_dead: None detects whether the exit tracepoint passes it; False forces
        the claim map (the old-kernel path, which is correct everywhere)."""
        if not 0 < args_max <= ARGS_MAX_LIMIT:
            raise ValueError(f"args_max must be 1..{ARGS_MAX_LIMIT}")
        if offset_source not in OFFSET_SOURCES:
            raise ValueError(f"offset_source must be one of {OFFSET_SOURCES}")
        self.args_max = args_max
        self.ring_buffer_bytes = ring_buffer_bytes
        self.wakeup_bytes = wakeup_bytes
        self.ignore_self = ignore_self
        self.offset_source = offset_source
        self.btf_path = btf_path
        self.group_dead = group_dead
        self.exit_claims_max = exit_claims_max
        self.has_group_dead: bool | None = None  # what the program was built with
        self.offsets: dict[str, int] = {}
        self.offsets_from = ""
        self._bpf: Any = None
        self._rb = 0
        self._cb: Any = None
        self._batch: list[bytes] = []

    # --- start ---------------------------------------------------------------

    def start(self) -> None:
        problem = missing_privileges()
        if problem:
            raise PrivilegeError(problem)
        bcc = import_bcc()
        src = kernel_source()
        if src is None:
            raise ProbeError(
                f"bcc backend: no kernel headers for {os.uname().release}: install "
                f"linux-headers-{os.uname().release} and run `make setup` (it merges them into "
                f"{header_trees_dir()}), or set {KERNEL_SOURCE_ENV} to a header tree"
            )
        os.environ[KERNEL_SOURCE_ENV] = str(src.path)  # bcc reads it at compile time
        btf = offsets.Btf.load(self.btf_path) if self.btf_path.exists() else None
        self.offsets, self.offsets_from = self._choose_offsets(bcc, src, btf)
        try:
            dead = group_dead_arg(btf) if self.group_dead is None else self.group_dead
            self._load(bcc, dead)
        except BaseException:
            self.close()
            raise

    def _choose_offsets(self, bcc: Any, src: KernelSource,
                        btf: offsets.Btf | None) -> tuple[dict[str, int], str]:
        source = self.offset_source
        if source == "auto":
            source = "btf" if btf is not None else "headers"
        if source == "btf":
            if btf is None:
                raise ProbeError(f"bcc backend: {self.btf_path} not found; the offsets must come "
                                 "from headers on this kernel (offset source auto or headers)")
            return offsets.btf_offsets(btf), str(self.btf_path)
        running = os.uname().release
        header = header_offsets(bcc, src)
        if btf is not None:
            wrong = offsets.compare(header, offsets.btf_offsets(btf))
            if wrong:
                raise ProbeError(
                    f"bcc backend: the kernel headers in {src.path} ({src.release or 'unknown'}) "
                    f"do not match the running kernel {running}: {'; '.join(wrong[:3])}"
                    f"{f' (+{len(wrong) - 3} more)' if len(wrong) > 3 else ''}; install "
                    f"linux-headers-{running} or take the offsets from BTF"
                )
        if src.release != running:
            raise ProbeError(
                f"bcc backend: the kernel headers in {src.path} are for "
                f"{src.release or 'an unknown release'}, the running kernel is {running}; "
                f"without BTF their struct offsets cannot be trusted: install "
                f"linux-headers-{running} or set {KERNEL_SOURCE_ENV} to its tree"
            )
        return header, f"headers {src.path}"

    def cflags(self, group_dead: bool) -> list[str]:
        """Every setting and offset the program is compiled with."""
        from bcc.utils import get_possible_cpus

        pages = max(1, self.ring_buffer_bytes // PAGE)
        flags = [
            f"-I{bpf_source_dir()}",
            f"-DARGS_MAX={self.args_max}",
            f"-DWAKEUP_BYTES={self.wakeup_bytes}",
            f"-DSELF_TGID={os.getpid()}",
            f"-DIGNORE_SELF={int(self.ignore_self)}",
            f"-DRINGBUF_PAGES={pages}",
            f"-DNCPU={len(get_possible_cpus())}",
            f"-DHAVE_GROUP_DEAD={int(group_dead)}",
            f"-DEXIT_CLAIMS_MAX={self.exit_claims_max}",
        ]
        flags += [f"-D{macro}={value}" for macro, value in sorted(self.offsets.items())]
        return flags

    def _load(self, bcc: Any, group_dead: bool) -> None:
        src = bpf_source_dir() / BCC_SOURCE
        try:
            self._bpf = bcc.BPF(src_file=str(src).encode(), cflags=self.cflags(group_dead))
        except Exception as exc:  # bcc raises a bare Exception; the compiler spoke on stderr
            raise ProbeError(f"bcc backend: compiling or loading {src} failed: {exc}") from None
        # bcc attaches every RAW_TRACEPOINT_PROBE while constructing BPF()
        self.has_group_dead = group_dead
        wanted = TRACEPOINTS if group_dead else (*TRACEPOINTS, CLAIM_TRACEPOINT)
        missing = [tp for tp in wanted if tp.encode() not in self._bpf.raw_tracepoint_fds]
        if missing:
            raise ProbeError(f"bcc backend: raw tracepoints not attached: {', '.join(missing)}")
        self._open_ring(bcc)

    def _open_ring(self, bcc: Any) -> None:
        """Read the ring buffer through libbcc with a callback that only copies bytes
        (bcc's own open_ring_buffer adds a Python wrapper per record)."""
        append = self._batch.append
        string_at = ctypes.string_at

        def on_sample(_ctx: int, data: int, size: int) -> int:
            append(string_at(data, size))
            return 0

        self._cb = bcc.libbcc._RINGBUF_CB_TYPE(on_sample)  # keep a reference: C holds it
        lib = bcc.libbcc.lib
        fd = self._bpf[b"events"].map_fd
        self._rb = lib.bpf_new_ringbuf(fd, self._cb, None)
        if not self._rb:
            raise ProbeError("bcc backend: opening the ring buffer failed")

    # --- run -----------------------------------------------------------------

    def read(self, timeout_ms: int) -> list[bytes]:
        if not self._rb:
            raise ProbeError("the probe is not started")
        from bcc import libbcc

        libbcc.lib.bpf_poll_ringbuf(self._rb, timeout_ms)
        libbcc.lib.bpf_consume_ringbuf(self._rb)
        out = self._batch[:]
        self._batch.clear()
        return out

    def kernel_drops(self) -> dict[str, int]:
        if self._bpf is None:
            return {r.name.lower(): 0 for r in DropReason}
        table = self._bpf[b"drops"]
        return {r.name.lower(): int(sum(table.getvalue(table.Key(r))))
                for r in DropReason}

    def close(self) -> None:
        if self._rb:
            from bcc import libbcc

            libbcc.lib.bpf_free_ringbuf(self._rb)
            self._rb = 0
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None


def header_offsets(bcc: Any, src: KernelSource) -> dict[str, int]:
    """OFF_<NAME> -> offset as the headers in src lay the structs out.

    bcc compiles one tiny function per member returning offsetof(); its
    first instruction is `r0 = <offset>`, read from the bytecode without
    loading anything into the kernel. So these are the offsets bcc's own
    compiler sees in those headers.
    """
    os.environ[KERNEL_SOURCE_ENV] = str(src.path)
    present = [f"MEMBER({m.name},{m.struct},{m.path})" for m in offsets.MEMBERS if not m.optional]
    cflags = [
        *(f"-include{inc}" for inc in _HEADER_INCLUDES),
        f"-DMOUNT_PREFIX={_MOUNT_PREFIX}",
        f"-DMEMBERS={' '.join(present)}",
    ]
    text = (bpf_source_dir() / "bcc_offsets.c").read_bytes()
    try:
        b = bcc.BPF(text=text, cflags=cflags)
    except Exception as exc:
        raise ProbeError(f"bcc backend: reading struct offsets from the headers in {src.path} "
                         f"failed: {exc}") from None
    out: dict[str, int] = {}
    try:
        for m in offsets.MEMBERS:
            code = b.dump_func(f"off_{m.name}".encode())
            if len(code) < 16 or code[0] != 0xB7 or code[1] & 0x0F != 0:
                raise ProbeError(f"bcc backend: unexpected code for offsetof({m.struct}, "
                                 f"{m.path}) in the headers in {src.path}")
            out[m.macro] = int.from_bytes(code[4:8], "little", signed=True)
    finally:
        b.cleanup()
    return out
