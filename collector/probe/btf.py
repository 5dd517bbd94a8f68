"""Read BTF (the kernel's, or the object's) through libbpf.

Two readers need it: the feature detection, which asks the running kernel's
BTF what its tracepoints pass (collector/probe/features.py), and the
settings writer, which finds each read-only setting's offset in the object's
`.rodata` (collector/probe/rodata.py). libbpf parses; this module only walks
the `struct btf_type` records it hands back (uapi/linux/btf.h layout).
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from collector.errors import ProbeError
from collector.probe import libbpf


class Kind(IntEnum):
    """BTF_KIND_* numbers (uapi/linux/btf.h); only those this module reads."""

    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    TYPE_TAG = 18


_MODIFIERS = {Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG}
_HEAD = struct.Struct("=III")  # name_off, info, size | type
_ITEM = struct.Struct("=III")  # btf_member, btf_var_secinfo: three u32
_PAIR = struct.Struct("=Ii")  # btf_enum (name_off, val), btf_param (name_off, type)


@dataclass(frozen=True)
class Type:
    """One BTF type record: `ref` is its size (struct, int, ...) or the type it refers to."""

    id: int
    kind: int
    name: str
    vlen: int
    kflag: bool
    ref: int
    addr: int  # where the record's trailing items start


@dataclass(frozen=True)
class Member:
    name: str
    type: int
    offset: int  # bytes (bitfields are not used by the shared structs)


@dataclass(frozen=True)
class Var:
    name: str
    type: int
    offset: int
    size: int


class Btf:
    """A parsed BTF blob; `owned` ones are freed by close()."""

    def __init__(self, ptr: int, *, owned: bool) -> None:
        self._ptr = ptr
        self._owned = owned

    @classmethod
    def parse(cls, path: Path) -> Btf:
        """The kernel's BTF (raw, e.g. /sys/kernel/btf/vmlinux) or an ELF object's."""
        ptr = libbpf.lib().btf__parse(str(path).encode(), None)
        if not ptr:
            raise ProbeError(f"reading BTF from {path} failed: {_errno_text()}")
        return cls(ptr, owned=True)

    def close(self) -> None:
        if self._owned and self._ptr:
            libbpf.lib().btf__free(self._ptr)
        self._ptr = 0

    def __enter__(self) -> Btf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def find(self, name: str, kind: Kind) -> Type | None:
        tid = libbpf.lib().btf__find_by_name_kind(self._ptr, name.encode(), int(kind))
        return self.type(tid) if tid > 0 else None

    def type(self, tid: int) -> Type:
        addr = libbpf.lib().btf__type_by_id(self._ptr, tid)
        if not addr:
            raise ProbeError(f"BTF has no type id {tid}")
        name_off, info, ref = _HEAD.unpack(ctypes.string_at(addr, _HEAD.size))
        return Type(tid, (info >> 24) & 0x1F, self._name(name_off), info & 0xFFFF,
                    bool(info >> 31), ref, addr + _HEAD.size)

    def resolve(self, tid: int) -> Type:
        """Follow typedefs and const/volatile qualifiers to the real type."""
        t = self.type(tid)
        while t.kind in _MODIFIERS:
            t = self.type(t.ref)
        return t

    def members(self, t: Type) -> list[Member]:
        out = []
        for name_off, mtype, off in self._items(t, _ITEM):
            bits = off & 0xFFFFFF if t.kflag else off
            out.append(Member(self._name(name_off), mtype, bits // 8))
        return out

    def enum_values(self, t: Type) -> dict[str, int]:
        return {self._name(n): v for n, v in self._items(t, _PAIR)}

    def params(self, t: Type) -> list[tuple[str, int]]:
        """A FUNC_PROTO's parameters: (name, type id)."""
        return [(self._name(n), ptype) for n, ptype in self._items(t, _PAIR)]

    def datasec_vars(self, t: Type) -> list[Var]:
        out = []
        for vtype, off, size in self._items(t, _ITEM):
            var = self.type(vtype)
            out.append(Var(var.name, var.ref, off, size))
        return out

    def _items(self, t: Type, item: struct.Struct) -> list[tuple[int, ...]]:
        raw = ctypes.string_at(t.addr, item.size * t.vlen)
        return [item.unpack_from(raw, i * item.size) for i in range(t.vlen)]

    def _name(self, off: int) -> str:
        name = libbpf.lib().btf__name_by_offset(self._ptr, off)
        return name.decode() if name else ""


def _errno_text() -> str:
    import os

    return os.strerror(ctypes.get_errno() or 2)
