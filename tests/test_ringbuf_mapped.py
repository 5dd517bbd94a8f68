"""The mapped ring reader (collector/probe/ringbuf.py), with libbpf's reader
as the reference.

Both read the real kernel ring: a storm of marked processes through a small
ring (512 KiB, so the positions wrap several times and records, 16 KiB ones
too, straddle the end of the data pages) must give every exec and exit of
ours, each record exactly as long as its header's size says (nothing torn,
no tail of the next one), with no kernel drop.
"""

from __future__ import annotations

import os
import subprocess
import threading
import uuid

import pytest

from collector.decode import ExecRecord, ExitRecord, decode
from collector.probe import ringbuf
from collector.probe.core import CoreProbe
from collector.probe.layout import HEADER

PROCESSES = 600
RING = 512 << 10  # wraps about every 200 processes; larger than the mapped start of the copy
LONG = "L" * 16000  # every 8th process: long records cross the end too


def storm_through(reader: str) -> tuple[list[bytes], dict[str, int], set[int]]:
    # not ignore_self: the spawner is this process's child, but the test process
    # itself must not be skipped either way
    """Raw records of our marked processes and the kernel drops, read with `reader`."""
    marker = f"ringbuf-{uuid.uuid4().hex[:10]}"
    probe = CoreProbe(ignore_self=False, ring_buffer_bytes=RING, ring_reader=reader)
    probe.start()
    raws: list[bytes] = []
    done = threading.Event()

    def spawn() -> None:
        try:
            for i in range(PROCESSES):
                subprocess.run(["/bin/true", marker] + ([LONG] if i % 8 == 0 else []),
                               check=True)
        finally:
            done.set()

    try:
        t = threading.Thread(target=spawn)
        t.start()
        while not done.is_set():
            raws.extend(probe.read(5))
        t.join()
        for _ in range(5):
            raws.extend(probe.read(20))
        drops = probe.kernel_drops()
    finally:
        probe.close()
    ours: list[bytes] = []
    our_pids: set[int] = set()
    for raw in raws:
        rec = decode(raw)
        if isinstance(rec, ExecRecord) and rec.args[:2] == ["/bin/true", marker]:
            ours.append(raw)
            our_pids.add(rec.task.pid)
    ours += [raw for raw in raws
             if isinstance(rec := decode(raw), ExitRecord) and rec.task.pid in our_pids]
    return ours, drops, our_pids


@pytest.mark.skipif(not ringbuf.available(), reason="the mapped reader is for x86 (TSO) only")
@pytest.mark.parametrize("reader", ["mapped", "libbpf"])
def test_every_record_through_a_wrapping_ring(reader: str) -> None:
    ours, drops, pids = storm_through(reader)
    assert sum(drops.values()) == 0, drops
    execs = [r for r in ours if isinstance(decode(r), ExecRecord)]
    exits = [r for r in ours if isinstance(decode(r), ExitRecord)]
    assert len(execs) == PROCESSES and len(pids) == PROCESSES
    assert len(exits) == PROCESSES  # one exit per process, none torn or repeated
    for raw in ours:  # length is what the record says: no tail of the next record
        assert len(raw) == HEADER.unpack_from(raw)[1]
    for raw in execs:
        rec = decode(raw)
        assert isinstance(rec, ExecRecord) and rec.binary == os.path.realpath("/bin/true")
        assert rec.args[2:] in ([], [LONG])
    assert sum(len(decode(r).args) == 3 for r in execs) == PROCESSES // 8  # type: ignore[union-attr]


def test_reader_choice() -> None:
    """auto is the mapped reader where plain loads order like the kernel's barriers."""
    assert CoreProbe(ring_reader="auto").ring_reader == (
        "mapped" if ringbuf.available() else "libbpf")
    assert CoreProbe(ring_reader="libbpf").ring_reader == "libbpf"
    with pytest.raises(ValueError, match="ring_reader"):
        CoreProbe(ring_reader="other")
