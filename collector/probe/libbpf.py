"""A thin ctypes binding over the system's libbpf.so.1.

Only the calls the CO-RE backend needs: open, size maps, choose programs,
read BTF, set read-only settings, probe kernel features, load, attach, ring
buffer, map lookups. libbpf does the hard work
(CO-RE relocation against the running kernel's BTF); this module only turns
its return conventions (NULL + errno, negative errno) into typed errors.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import threading

from collector.errors import ProbeError

LIBBPF_NAME = "libbpf.so.1"

_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

_lib: ctypes.CDLL | None = None
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.vasprintf.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_void_p]
_libc.free.argtypes = [ctypes.c_void_p]

# libbpf's messages for the current load, so a failure can say why.
_log_lock = threading.Lock()
_log: list[str] = []


def _on_print(level: int, fmt: bytes, args: int) -> int:
    # vasprintf, not a fixed buffer: libbpf prints the whole verifier log as
    # one message, and its decisive line is at the end.
    out = ctypes.c_void_p()
    if _libc.vasprintf(ctypes.byref(out), fmt, args) < 0 or not out.value:
        return 0
    try:
        text = ctypes.string_at(out.value).decode("utf-8", "backslashreplace")
    finally:
        _libc.free(out.value)
    with _log_lock:
        _log.append(text)
        del _log[:-400]
    return 0


_print_cb = _PRINT_FN(_on_print)


def take_log() -> list[str]:
    """Return and clear libbpf's recent messages (verifier output included)."""
    with _log_lock:
        out = list(_log)
        _log.clear()
    return out


def _sig(fn: str, res: object, *args: object) -> None:
    f = getattr(lib(), fn)
    f.restype = res
    f.argtypes = list(args)


def lib() -> ctypes.CDLL:
    """Load libbpf once; ProbeError with the fix when it is not installed."""
    global _lib
    if _lib is not None:
        return _lib
    try:
        _lib = ctypes.CDLL(LIBBPF_NAME, use_errno=True)
    except OSError as exc:
        raise ProbeError(
            f"libbpf not found ({exc}); install it: apt-get install libbpf1"
        ) from None
    vp, i, u32, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_char_p
    _sig("libbpf_set_print", vp, _PRINT_FN)
    _sig("bpf_object__open_file", vp, cp, ctypes.POINTER(OpenOpts))
    _sig("bpf_object__load", i, vp)
    _sig("bpf_object__close", None, vp)
    _sig("bpf_object__find_map_by_name", vp, vp, cp)
    _sig("bpf_object__find_program_by_name", vp, vp, cp)
    _sig("bpf_object__next_program", vp, vp, vp)
    _sig("bpf_object__btf", vp, vp)
    _sig("bpf_program__name", cp, vp)
    _sig("bpf_program__set_autoload", i, vp, ctypes.c_bool)
    _sig("bpf_map__set_autocreate", i, vp, ctypes.c_bool)
    _sig("bpf_program__autoload", ctypes.c_bool, vp)
    _sig("bpf_program__fd", i, vp)
    _sig("bpf_program__attach", vp, vp)
    _sig("bpf_link__destroy", i, vp)
    _sig("bpf_map__fd", i, vp)
    _sig("bpf_map__set_max_entries", i, vp, u32)
    _sig("bpf_map__set_initial_value", i, vp, vp, ctypes.c_size_t)
    _sig("bpf_map__initial_value", vp, vp, ctypes.POINTER(ctypes.c_size_t))
    _sig("bpf_map_get_next_key", i, i, vp, vp)
    _sig("btf__parse", vp, cp, vp)
    _sig("btf__free", None, vp)
    _sig("btf__find_by_name_kind", ctypes.c_int32, vp, cp, u32)
    _sig("btf__type_by_id", vp, vp, u32)
    _sig("btf__name_by_offset", cp, vp, u32)
    _sig("libbpf_probe_bpf_helper", i, i, i, vp)
    _sig("libbpf_probe_bpf_map_type", i, i, vp)
    _sig("bpf_map_lookup_elem", i, i, vp, vp)
    _sig("bpf_map_update_elem", i, i, vp, vp, ctypes.c_uint64)
    _sig("ring_buffer__new", vp, i, SAMPLE_FN, vp, vp)
    _sig("ring_buffer__poll", i, vp, i)
    _sig("ring_buffer__consume", i, vp)
    _sig("ring_buffer__free", None, vp)
    _sig("libbpf_num_possible_cpus", i)
    _lib.libbpf_set_print(_print_cb)
    return _lib


def check_ptr(ptr: int | None, what: str) -> int:
    """libbpf 1.x returns NULL and sets errno on failure."""
    if not ptr:
        err = ctypes.get_errno() or errno.EINVAL
        raise ProbeError(f"{what} failed: {os.strerror(err)}", log=take_log())
    return ptr


def check_rc(rc: int, what: str) -> int:
    """libbpf 1.x returns a negative errno on failure."""
    if rc < 0:
        raise ProbeError(f"{what} failed: {os.strerror(-rc)}", log=take_log())
    return rc


def possible_cpus() -> int:
    return check_rc(lib().libbpf_num_possible_cpus(), "counting possible CPUs")


class OpenOpts(ctypes.Structure):
    """struct bpf_object_open_opts up to btf_custom_path (libbpf takes `sz`
    as the size the caller knows; later fields read as zero)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("object_name", ctypes.c_char_p),
        ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", ctypes.c_char_p),
        ("_removed_attach_prog_fd", ctypes.c_uint32),
        ("kconfig", ctypes.c_char_p),
        ("btf_custom_path", ctypes.c_char_p),
    ]


class RingBuffer:
    """A libbpf ring buffer whose records are copied out in batches.

    The C callback only copies the record's bytes into a list; decoding
    happens after the poll returns, so the per-record cost in the callback
    stays a single small Python call.
    """

    def __init__(self, map_fd: int) -> None:
        self._batch: list[bytes] = []
        append = self._batch.append
        string_at = ctypes.string_at

        def on_sample(_ctx: int, data: int, size: int) -> int:
            append(string_at(data, size))
            return 0

        self._cb = SAMPLE_FN(on_sample)  # keep a reference: C holds a pointer
        self._rb = check_ptr(lib().ring_buffer__new(map_fd, self._cb, None, None), "ring_buffer__new")

    def poll(self, timeout_ms: int) -> list[bytes]:
        """Wait up to timeout_ms for a wakeup, then take everything queued.

        The BPF side submits most records without a wakeup (cheaper for the
        traced workload), so the queue is always drained after the wait.
        """
        rc = lib().ring_buffer__poll(self._rb, timeout_ms)
        if rc < 0 and rc != -errno.EINTR:
            check_rc(rc, "ring_buffer__poll")
        rc = lib().ring_buffer__consume(self._rb)
        if rc < 0 and rc != -errno.EINTR:
            check_rc(rc, "ring_buffer__consume")
        out = self._batch[:]
        self._batch.clear()
        return out

    def close(self) -> None:
        if self._rb:
            lib().ring_buffer__free(self._rb)
            self._rb = 0

