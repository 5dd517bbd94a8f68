"""Kernel struct member offsets for the bcc backend, from BTF or from headers.

bcc compiles against kernel headers, and headers for another kernel give
wrong offsets without any error: on this machine Debian's 6.1 headers put
task_struct.tgid at 2420 while the running 6.18 kernel has it at 1268, and
the reads come back as silent zeros. So the bcc program reads no kernel
struct through header types: every member it needs is listed in MEMBERS,
its offset is found here and passed to the compiler as -DOFF_<NAME>=<n>.

Where the kernel has BTF (/sys/kernel/btf/vmlinux) the offsets come from
it; elsewhere they come from the headers, which must then match the
running kernel. `compare` reports members whose header offset disagrees
with BTF, so header offsets are never used silently when they are wrong.

The parser reads only what it needs from the BTF format (type and string
sections; struct, union, typedef and modifier kinds); it needs no library,
so it also works where libbpf is too old for the CO-RE backend.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from collector.errors import ProbeError

BTF_MAGIC = 0xEB9F

# BTF kinds (include/uapi/linux/btf.h) and the bytes that follow each type.
_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
_VOLATILE, _CONST, _RESTRICT, _FUNC, _FUNC_PROTO, _VAR, _DATASEC = 9, 10, 11, 12, 13, 14, 15
_FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = 16, 17, 18, 19
_FIXED_EXTRA = {_INT: 4, _ARRAY: 12, _VAR: 4, _DECL_TAG: 4}
_PER_VLEN = {_STRUCT: 12, _UNION: 12, _ENUM: 8, _FUNC_PROTO: 8, _DATASEC: 12, _ENUM64: 12}
_SKIP = (_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG)


@dataclass(frozen=True)
class Member:
    """One kernel struct member the bcc program reads.

    `path` may go through nested (also anonymous) members, e.g.
    "f_path.dentry"; `size` is the byte size the program reads (0: not read
    directly, only its address is used); `optional` members may be missing
    from a kernel's config (the program then uses a fallback).
    """

    name: str
    struct: str
    path: str
    size: int
    optional: bool = False

    @property
    def macro(self) -> str:
        return f"OFF_{self.name}"


MEMBERS: tuple[Member, ...] = (
    Member("TASK_TGID", "task_struct", "tgid", 4),
    Member("TASK_PID", "task_struct", "pid", 4),
    Member("TASK_REAL_PARENT", "task_struct", "real_parent", 8),
    Member("TASK_GROUP_LEADER", "task_struct", "group_leader", 8),
    Member("TASK_START_BOOTTIME", "task_struct", "start_boottime", 8),
    Member("TASK_CGROUPS", "task_struct", "cgroups", 8),
    Member("TASK_COMM", "task_struct", "comm", 16),
    Member("TASK_REAL_CRED", "task_struct", "real_cred", 8),
    Member("TASK_LOGINUID", "task_struct", "loginuid", 4, optional=True),  # CONFIG_AUDIT
    Member("TASK_FS", "task_struct", "fs", 8),
    Member("TASK_MM", "task_struct", "mm", 8),
    Member("TASK_EXIT_CODE", "task_struct", "exit_code", 4),
    Member("TASK_SIGNAL", "task_struct", "signal", 8),
    Member("SIGNAL_FLAGS", "signal_struct", "flags", 4),
    Member("SIGNAL_GROUP_EXIT_CODE", "signal_struct", "group_exit_code", 4),
    Member("SIGNAL_LIVE", "signal_struct", "live", 4),
    Member("CSS_SET_DFL_CGRP", "css_set", "dfl_cgrp", 8),
    Member("CGROUP_KN", "cgroup", "kn", 8),
    Member("KERNFS_NODE_ID", "kernfs_node", "id", 8),
    Member("CRED_UID", "cred", "uid", 4),
    Member("CRED_EUID", "cred", "euid", 4),
    Member("CRED_GID", "cred", "gid", 4),
    Member("CRED_EGID", "cred", "egid", 4),
    Member("BINPRM_FILE", "linux_binprm", "file", 8),
    Member("FILE_PATH_MNT", "file", "f_path.mnt", 8),
    Member("FILE_PATH_DENTRY", "file", "f_path.dentry", 8),
    Member("FS_PWD_MNT", "fs_struct", "pwd.mnt", 8),
    Member("FS_PWD_DENTRY", "fs_struct", "pwd.dentry", 8),
    Member("MM_ARG_START", "mm_struct", "arg_start", 8),
    Member("MM_ARG_END", "mm_struct", "arg_end", 8),
    Member("DENTRY_PARENT", "dentry", "d_parent", 8),
    Member("DENTRY_NAME", "dentry", "d_name.name", 8),
    Member("MOUNT_PARENT", "mount", "mnt_parent", 8),
    Member("MOUNT_MOUNTPOINT", "mount", "mnt_mountpoint", 8),
    Member("MOUNT_MNT", "mount", "mnt", 0),
    Member("VFSMOUNT_ROOT", "vfsmount", "mnt_root", 8),
)

MISSING = -1  # the offset passed for an optional member this kernel lacks


class Btf:
    """The types of one BTF blob, indexed by id; struct/union ids by name."""

    def __init__(self, blob: bytes, source: str) -> None:
        self.source = source
        if len(blob) < 24:
            raise ProbeError(f"{source}: not BTF (too short)")
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
        if magic != BTF_MAGIC:
            raise ProbeError(f"{source}: not BTF (magic {magic:#x})")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
        self._blob = blob
        self._str0 = hdr_len + str_off
        self._str_end = self._str0 + str_len
        self._starts: list[int] = [0]  # type id 0 is void
        self._by_name: dict[str, int] = {}
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        unpack = struct.Struct("<III").unpack_from
        while pos < end:
            name_off, info, _ = unpack(blob, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            if kind in (_STRUCT, _UNION) and name_off:
                self._by_name.setdefault(self._name(name_off), len(self._starts))
            self._starts.append(pos)
            pos += 12 + _FIXED_EXTRA.get(kind, 0) + _PER_VLEN.get(kind, 0) * vlen

    @classmethod
    def load(cls, path: Path) -> Btf:
        try:
            return cls(path.read_bytes(), str(path))
        except OSError as exc:
            raise ProbeError(f"reading BTF {path} failed: {exc.strerror}") from None

    def _name(self, off: int) -> str:
        start = self._str0 + off
        end = self._blob.index(b"\0", start, self._str_end)
        return self._blob[start:end].decode("ascii", "replace")

    def _type(self, tid: int) -> tuple[int, int, int, int]:
        """(kind, vlen, kind_flag, size_or_type) of a type id."""
        _name_off, info, size_or_type = struct.unpack_from("<III", self._blob, self._starts[tid])
        return (info >> 24) & 0x1F, info & 0xFFFF, info >> 31, size_or_type

    def _resolve(self, tid: int) -> int:
        """Skip typedefs and qualifiers."""
        for _ in range(64):
            kind, _, _, ref = self._type(tid)
            if kind not in _SKIP:
                return tid
            tid = ref
        raise ProbeError(f"{self.source}: type chain too deep at id {tid}")

    def size(self, tid: int) -> int:
        tid = self._resolve(tid)
        kind, _, _, size = self._type(tid)
        if kind == _PTR:
            return 8
        if kind == _ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", self._blob, self._starts[tid] + 12)
            return self.size(int(elem)) * int(nelems)
        return size

    def _members(self, tid: int) -> list[tuple[str, int, int]]:
        """(name, type id, bit offset) of a struct or union's members."""
        kind, vlen, kind_flag, _ = self._type(tid)
        if kind not in (_STRUCT, _UNION):
            return []
        out = []
        base = self._starts[tid] + 12
        for i in range(vlen):
            name_off, mtype, offset = struct.unpack_from("<III", self._blob, base + 12 * i)
            bits = offset & 0xFFFFFF if kind_flag else offset
            out.append((self._name(name_off) if name_off else "", mtype, bits))
        return out

    def _find(self, tid: int, name: str) -> tuple[int, int] | None:
        """(bit offset, type id) of a member, looking inside anonymous members too."""
        for mname, mtype, bits in self._members(self._resolve(tid)):
            if mname == name:
                return bits, mtype
            if not mname:
                inner = self._find(mtype, name)
                if inner is not None:
                    return bits + inner[0], inner[1]
        return None

    def member(self, struct_name: str, path: str) -> tuple[int, int] | None:
        """(byte offset, byte size) of struct.path, or None when it is missing."""
        tid = self._by_name.get(struct_name)
        if tid is None:
            return None
        bits = 0
        for part in path.split("."):
            found = self._find(tid, part)
            if found is None:
                return None
            bits += found[0]
            tid = found[1]
        if bits % 8:
            return None  # a bitfield: never one of ours
        return bits // 8, self.size(tid)

    def func_proto_params(self, typedef_name: str) -> int | None:
        """Parameter count of the function a typedef'd pointer points to (e.g. the
        btf_trace_<tracepoint> typedefs, whose first parameter is the context)."""
        for tid in range(1, len(self._starts)):
            name_off, info, ref = struct.unpack_from("<III", self._blob, self._starts[tid])
            if (info >> 24) & 0x1F != _TYPEDEF or not name_off:
                continue
            if self._name(name_off) != typedef_name:
                continue
            target = self._resolve(ref)
            kind, _, _, pointee = self._type(target)
            if kind == _PTR:
                kind, vlen, _, _ = self._type(self._resolve(pointee))
                if kind == _FUNC_PROTO:
                    return vlen
            return None
        return None


def btf_offsets(btf: Btf) -> dict[str, int]:
    """OFF_<NAME> -> byte offset for every member, from the kernel's BTF.

    Refuses (ProbeError naming the member) when a required member is missing
    or its size is not what the program reads: the program would read garbage.
    """
    out: dict[str, int] = {}
    for m in MEMBERS:
        found = btf.member(m.struct, m.path)
        if found is None:
            if m.optional:
                out[m.macro] = MISSING
                continue
            raise ProbeError(
                f"bcc backend: {btf.source} has no member {m.struct}.{m.path}: "
                "this kernel's layout is not supported; use --backend core"
            )
        offset, size = found
        if m.size and size != m.size:
            raise ProbeError(
                f"bcc backend: {m.struct}.{m.path} is {size} bytes in {btf.source}, "
                f"the program reads {m.size}; use --backend core"
            )
        out[m.macro] = offset
    return out


def compare(header: dict[str, int], btf: dict[str, int]) -> list[str]:
    """Members whose header offset disagrees with BTF, one phrase each."""
    by_macro = {m.macro: m for m in MEMBERS}
    out = []
    for macro, off in btf.items():
        if header.get(macro) != off:
            m = by_macro[macro]
            out.append(f"{m.struct}.{m.path} at {header.get(macro)} in the headers, "
                       f"{off} in BTF")
    return out
