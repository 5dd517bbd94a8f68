"""The mapped reader's consumer position is never seen as 0 while it moves.

The kernel reads that u64 at every reservation; a transient 0 makes a ring
with room look full, and the record is dropped (collector/probe/ringbuf.py).
A native thread reads the page while Python stores positions: through
ConsumerPosition it must never see 0. struct.pack_into on the same page is
the control (it clears the field before writing it): the watcher must catch
that, or it never ran beside the writer and the test has shown nothing.
"""

from __future__ import annotations

import ctypes
import mmap
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from collector.probe.ringbuf import ConsumerPosition

SOURCE = Path(__file__).parent / "support" / "position_watch.c"
STORES = 1_000_000
CONTROL_BUDGET_S = 20.0


@pytest.fixture(scope="module")
def watcher(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    compiler = shutil.which("clang") or shutil.which("cc")
    assert compiler, "no C compiler: make apt installs clang"
    lib_path = tmp_path_factory.mktemp("watch") / "position_watch.so"
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(lib_path), str(SOURCE)],
                   check=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.watch_zeros.restype = ctypes.c_long
    lib.watch_zeros.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return lib


def zeros_seen(lib: ctypes.CDLL, page: mmap.mmap, write: Callable[[int], None],
               first: int, count: int) -> int:
    """Reads of 0 the watcher made while `write` stored first..first+count-1."""
    write(first)
    stop = ctypes.c_int(0)
    where = ctypes.addressof(ctypes.c_char.from_buffer(page))
    seen: list[int] = []
    thread = threading.Thread(
        target=lambda: seen.append(lib.watch_zeros(where, ctypes.addressof(stop))))
    thread.start()
    time.sleep(0.02)  # the watcher is reading before the first store
    for pos in range(first, first + count):
        write(pos)
    stop.value = 1
    thread.join()
    return seen[0]


def test_the_consumer_position_is_stored_whole(watcher: ctypes.CDLL) -> None:
    page = mmap.mmap(-1, mmap.PAGESIZE)
    position = ConsumerPosition(page)
    try:
        u64 = struct.Struct("=Q")
        deadline = time.monotonic() + CONTROL_BUDGET_S
        control = 0
        while control == 0:
            assert time.monotonic() < deadline, \
                "the watcher never saw struct.pack_into's 0: it did not run beside the writer"
            control = zeros_seen(watcher, page, lambda p: u64.pack_into(page, 0, p), 1,
                                 STORES // 10)
        assert zeros_seen(watcher, page, position.store, 1, STORES) == 0
        position.store(1 << 40)
        assert position.load() == 1 << 40 == u64.unpack_from(page, 0)[0]
    finally:
        position.release()
        page.close()
