"""Read the BPF ring buffer straight from its memory mapping.

libbpf's ring_buffer__poll calls back into Python once per record (a ctypes
callback and a string_at: about 1.5 µs each, paid for three records per
process in an exec storm). The ring's layout is kernel ABI (since 5.8, see
kernel/bpf/ringbuf.c and libbpf's ringbuf.c): a page holding the consumer
position (written by user space), a page holding the producer position, then
the data pages, which the kernel maps twice in a row so that a record that
wraps is contiguous. Only the first `record_max` bytes of the second copy are
mapped here (a wrapping record ends within them): a 16 MiB ring costs 16 MiB
of resident pages, not 32 (the kernel maps every page at mmap time).
Each record starts with an 8-byte header: u32 length with a busy bit (still
being written) and a discard bit, and u32 page offset; records are 8-byte
aligned. This module walks it with struct and slicing (walk_py), or in C
(collector/probe/_ring.c, the same walk): no call per record.

Ordering: the kernel publishes the producer position after the record's
header (smp_store_release) and reads the consumer position with acquire.
x86's total store order keeps plain loads and stores in program order, so
plain reads are enough there; elsewhere `available()` says no and the
libbpf callback reader is used (collector/probe/libbpf.py RingBuffer).

The consumer position is stored as one 8-byte store, through a memoryview
of the page cast to u64 (a memcpy of 8 bytes, one aligned store on x86-64).
Not with struct.pack_into: it clears the field before it writes the value
(s_pack_internal's memset), and a BPF program that reserves in between
reads a consumer position of 0, finds the ring "full" and drops the record.
That was this collector's rare kernel drop in exec storms (a handful a
minute, with the ring all but empty): measured with the refusals recorded
in the kernel, position 0 seen for up to a millisecond when the reader was
descheduled between the two stores.
"""

from __future__ import annotations

import mmap
import platform
import select
import struct
from collections.abc import Callable

from collector.errors import ProbeError

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER_SIZE = 8  # struct bpf_ringbuf_hdr: u32 len, u32 pg_off

_U64 = struct.Struct("=Q")
_U32 = struct.Struct("=I")
_TSO_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686"})


def walk_py(data: mmap.mmap, page: int, mask: int, cons: int, record_max: int,
            out: list[bytes]) -> tuple[int, bool, int]:
    """Append the committed records from cons up to the producer position to out;
    (the position after them, stopped at a busy record, the length of a record
    longer than record_max or 0). The reference of collector.probe._ring.walk
    (C, a fraction of the CPU per record), and the walk without it."""
    u32 = _U32.unpack_from
    base = page + HEADER_SIZE
    append = out.append
    prod = _U64.unpack_from(data, 0)[0]
    while cons < prod:
        hdr = u32(data, page + (cons & mask))[0]
        if hdr & BUSY_BIT:  # reserved, not yet submitted: the next poll takes it
            return cons, True, 0
        length = hdr & ~(BUSY_BIT | DISCARD_BIT)
        if length > record_max:
            return cons, False, length
        if not hdr & DISCARD_BIT:
            first = base + (cons & mask)
            append(data[first:first + length])
        cons += (length + HEADER_SIZE + 7) & ~7
    return cons, False, 0


try:
    from collector.probe._ring import walk as _walk_native
except ImportError:  # installed without a C compiler
    _walk_native = None
NATIVE = _walk_native is not None  # for tests and the benches
_walk: Callable[[mmap.mmap, int, int, int, int, list[bytes]], tuple[int, bool, int]] = (
    _walk_native if _walk_native is not None else walk_py)


class ConsumerPosition:
    """The u64 consumer position at the start of a mapped page, read and stored
    whole (see the module docstring: never with struct.pack_into)."""

    def __init__(self, page: mmap.mmap) -> None:
        self._u64 = memoryview(page).cast("Q")

    def load(self) -> int:
        return self._u64[0]

    def store(self, pos: int) -> None:
        self._u64[0] = pos

    def release(self) -> None:
        """Let the page be closed (a view holds it open); idempotent."""
        self._u64.release()


def available() -> bool:
    """Plain loads order like the kernel's acquire/release only on x86 (TSO)."""
    return platform.machine().lower() in _TSO_MACHINES


class MappedRing:
    """A BPF_MAP_TYPE_RINGBUF's records, read from its mapping in batches."""

    def __init__(self, map_fd: int, size: int, record_max: int) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring buffer size {size} is not a power of two")
        page = mmap.PAGESIZE
        self._page = page
        self._mask = size - 1
        self._record_max = record_max
        tail = min(size, -(-(record_max + HEADER_SIZE) // page) * page)
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            # the producer page, the data, the start of its second copy
            self._data = mmap.mmap(map_fd, page + size + tail, mmap.MAP_SHARED, mmap.PROT_READ,
                                   offset=page)
        except BaseException:
            self._consumer.close()
            raise
        self._consumer_pos = ConsumerPosition(self._consumer)
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)

    def poll(self, timeout_ms: int) -> list[bytes]:
        """Wait up to timeout_ms for a wakeup, then take everything queued.

        Most records are submitted without a wakeup (cheaper for the traced
        workload), so the queue is drained after the wait whatever woke it —
        as the libbpf reader does with ring_buffer__poll + __consume."""
        if timeout_ms > 0:
            self._epoll.poll(timeout_ms / 1000.0)
        return self.drain()

    def drain(self) -> list[bytes]:
        """Every committed record, in order; the consumer position advanced past them."""
        data, page, mask, record_max = self._data, self._page, self._mask, self._record_max
        out: list[bytes] = []
        consumer_pos = self._consumer_pos
        cons = consumer_pos.load()
        while True:
            moved, busy, bad = _walk(data, page, mask, cons, record_max, out)
            if bad:  # not a record the BPF side can submit
                raise ProbeError(f"ring buffer record of {bad} bytes at position {moved} (at "
                                 f"most {record_max}): the BPF object and the collector do not "
                                 "match; rebuild both")
            if moved == cons:
                return out
            # free the space (the producer may be out of room), then look again
            consumer_pos.store(moved)
            cons = moved
            if busy:
                return out

    def close(self) -> None:
        self._epoll.close()
        self._consumer_pos.release()  # the mapping cannot close while a view holds it
        self._data.close()
        self._consumer.close()
