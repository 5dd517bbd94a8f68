"""Write read-only settings into an opened object's `.rodata`, by name.

Each setting is found where the object's BTF puts it (`cfg.args_max` is
field `args_max` of the variable `cfg`), and only its bytes are written over
the object's own initial image. So a `const volatile` added to the C later
keeps its compiled default instead of being overwritten by a blob packed for
an older layout, and a setting the object lacks fails by name.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Mapping

from collector.errors import ProbeError
from collector.probe import libbpf
from collector.probe.btf import Btf, Kind

_FORMATS = {1: "=B", 2: "=H", 4: "=I", 8: "=Q"}


def settings_layout(btf: Btf, section: str = ".rodata") -> dict[str, tuple[int, int]]:
    """Every variable and struct field of `section`: name -> (byte offset, size)."""
    sec = btf.find(section, Kind.DATASEC)
    if sec is None:
        return {}
    out: dict[str, tuple[int, int]] = {}
    for var in btf.datasec_vars(sec):
        out[var.name] = (var.offset, var.size)
        t = btf.resolve(var.type)
        if t.kind == Kind.STRUCT:
            for m in btf.members(t):
                out[f"{var.name}.{m.name}"] = (var.offset + m.offset, _size(btf, m.type))
    return out


def write_settings(obj: int, values: Mapping[str, int], section: str = ".rodata") -> None:
    """Patch `values` (e.g. {"cfg.args_max": 16384}) into the opened object's section."""
    lib = libbpf.lib()
    btf_ptr = lib.bpf_object__btf(obj)
    if not btf_ptr:
        raise ProbeError("the BPF object has no BTF: rebuild it with `make setup` (clang -g)")
    where = settings_layout(Btf(btf_ptr, owned=False), section)
    rodata = libbpf.check_ptr(lib.bpf_object__find_map_by_name(obj, section.encode()),
                              f"finding map {section}")
    size = ctypes.c_size_t()
    initial = libbpf.check_ptr(lib.bpf_map__initial_value(rodata, ctypes.byref(size)),
                               f"reading {section}")
    image = bytearray(ctypes.string_at(initial, size.value))
    for name, value in values.items():
        if name not in where:
            raise ProbeError(f"the BPF object has no setting {name}: it is older than this "
                             "collector; rebuild it with `make setup`")
        off, width = where[name]
        struct.pack_into(_FORMATS[width], image, off, value)
    buf = ctypes.create_string_buffer(bytes(image), len(image))
    libbpf.check_rc(lib.bpf_map__set_initial_value(rodata, buf, len(image)),
                    f"writing {section}")


def _size(btf: Btf, tid: int) -> int:
    t = btf.resolve(tid)
    if t.kind in (Kind.INT, Kind.ENUM, Kind.STRUCT, Kind.UNION):
        return t.ref
    if t.kind == Kind.PTR:
        return 8
    return 0
