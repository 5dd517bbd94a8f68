"""collector.probe._ring.walk (C) against its reference, ringbuf.walk_py, on
rings laid out as the kernel lays them out (tests/test_ringbuf_mapped.py reads
the real kernel ring, with libbpf's reader as the reference): committed,
discarded and busy records, wrapping positions, a length no record can have."""

from __future__ import annotations

import mmap
import random
import struct

import pytest

from collector.probe import ringbuf

PAGE = mmap.PAGESIZE
SIZE = 1 << 14  # data pages
RECORD_MAX = 3000
TAIL = PAGE  # the start of the data's second copy, as MappedRing maps it


class Ring:
    """A producer page, the data pages, the start of their second copy."""

    def __init__(self, start: int) -> None:
        self.map = mmap.mmap(-1, PAGE + SIZE + TAIL)
        self.prod = start
        self.data = bytearray(SIZE)

    def add(self, payload: bytes, *, busy: bool = False, discard: bool = False,
            length: int | None = None) -> None:
        n = len(payload) if length is None else length
        hdr = n | (ringbuf.BUSY_BIT if busy else 0) | (ringbuf.DISCARD_BIT if discard else 0)
        blob = struct.pack("=II", hdr, 0) + payload
        blob += b"\0" * (-len(blob) % 8)
        for i, b in enumerate(blob):
            self.data[(self.prod + i) % SIZE] = b
        self.prod += ringbuf.HEADER_SIZE + ((n + 7) & ~7) if length is None else len(blob)

    def publish(self) -> mmap.mmap:
        self.map[0:8] = struct.pack("=Q", self.prod)
        self.map[PAGE:PAGE + SIZE] = bytes(self.data)
        self.map[PAGE + SIZE:] = bytes(self.data[:TAIL])
        return self.map


def both(ring: Ring, cons: int) -> tuple[list[bytes], tuple[int, bool, int]]:
    assert ringbuf._walk_native is not None
    data = ring.publish()
    want: list[bytes] = []
    got: list[bytes] = []
    ref = ringbuf.walk_py(data, PAGE, SIZE - 1, cons, RECORD_MAX, want)
    res = ringbuf._walk_native(data, PAGE, SIZE - 1, cons, RECORD_MAX, got)
    assert (got, res) == (want, ref)
    assert all(type(r) is bytes for r in got)
    return got, res


def test_the_package_was_built_with_it() -> None:
    assert ringbuf.NATIVE and ringbuf._walk is ringbuf._walk_native


@pytest.mark.parametrize("start", [0, SIZE - 24, 5 * SIZE + 1000, 2**40 - 8])
def test_records_across_the_end_of_the_data_pages(start: int) -> None:
    rng = random.Random(start)
    ring = Ring(start)
    payloads = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 900)))
                for _ in range(12)]
    for p in payloads:
        ring.add(p)
    got, (cons, busy, bad) = both(ring, start)
    assert got == payloads and cons == ring.prod and not busy and not bad


def test_discarded_are_skipped_and_busy_stops_the_walk() -> None:
    ring = Ring(SIZE - 40)
    ring.add(b"a" * 10)
    ring.add(b"b" * 20, discard=True)
    ring.add(b"c" * 30)
    stop = ring.prod
    ring.add(b"d" * 40, busy=True)
    ring.add(b"e" * 50)
    got, (cons, busy, bad) = both(ring, SIZE - 40)
    assert got == [b"a" * 10, b"c" * 30] and cons == stop and busy and not bad
    got, (cons, busy, _) = both(ring, stop)  # still busy: nothing taken, no progress
    assert got == [] and cons == stop and busy


def test_a_length_no_record_has_stops_at_its_position() -> None:
    ring = Ring(0)
    ring.add(b"ok")
    at = ring.prod
    ring.add(b"x" * 8, length=RECORD_MAX + 1)
    got, (cons, busy, bad) = both(ring, 0)
    assert got == [b"ok"] and cons == at and bad == RECORD_MAX + 1 and not busy


def test_nothing_new() -> None:
    ring = Ring(777 * 8)
    got, (cons, busy, bad) = both(ring, 777 * 8)
    assert (got, cons, busy, bad) == ([], 777 * 8, False, 0)
