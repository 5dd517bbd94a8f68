"""collector.pipeline._reader (C) against its reference, Reader.handle_py: on
the same polls (execs, exits, forks, and records decode refuses among them)
the same events in the same order, the same counts, the same warnings; an
error of the process cache is not swallowed."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import pytest

from collector.clock import BootClock
from collector.decode import ExecRecord
from collector.enrich.containers import CgroupResolver
from collector.enrich.process_cache import ProcessCache
from collector.pipeline import reader as reader_mod
from collector.pipeline.reader import Reader
from collector.probe.layout import EXEC_FIXED, EXIT_EVENT, FORK_EVENT, EventKind

PID0 = 5_000_000  # above any pid_max: /proc knows none of them


def test_the_package_was_built_with_it() -> None:
    assert reader_mod.NATIVE


def _comm(name: bytes) -> bytes:
    return name.ljust(16, b"\0")


def _exec(ktime: int, pid: int, ppid: int, start: int, argv: bytes) -> bytes:
    binary, cwd = b"true\0bin\0", b"tmp\0"
    return EXEC_FIXED.pack(EventKind.EXEC, 0, ktime, pid, pid, ppid, 0, start, 1,
                           _comm(b"true"), 0, 0, 0, 0, 1000, 0, len(binary), len(cwd),
                           len(argv), len(argv)) + binary + cwd + argv


def polls(seed: int) -> list[list[bytes]]:
    rng = random.Random(seed)
    t = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - 10**9
    raws: list[bytes] = []
    for i in range(400):
        pid, start = PID0 + i, t + 10 * i
        ppid = rng.choice([0, PID0 + i - 1, PID0 - 1])
        if rng.random() < 0.3:
            raws.append(FORK_EVENT.pack(EventKind.FORK, FORK_EVENT.size, start, pid, pid, ppid,
                                        0, start, 1, _comm(b"sh")))
        if rng.random() < 0.9:
            raws.append(_exec(start + 1, pid, ppid, start, b"true\0-x\0"))
        if rng.random() < 0.05:  # refused by decode: short, of no known kind, cut
            raws.append(rng.choice([b"\x01\x00", b"\x09\x00\x00\x00" + b"\0" * 12,
                                    _exec(start, pid, ppid, start, b"a\0")[:-1]]))
        if rng.random() < 0.8:
            raws.append(EXIT_EVENT.pack(EventKind.EXIT, EXIT_EVENT.size, start + 5, pid, pid,
                                        ppid, 0, start, 1, _comm(b"true"),
                                        rng.choice([0, 1 << 8, 9]), 0))
    cuts = sorted(rng.sample(range(1, len(raws)), 20))
    return [raws[a:b] for a, b in zip([0, *cuts], [*cuts, len(raws)], strict=True)]


def _run(handle: str, batches: list[list[bytes]], clock: BootClock,
         caplog: pytest.LogCaptureFixture) -> tuple[Any, ...]:
    emitted: list[list[dict[str, Any]]] = []
    cache = ProcessCache("n", clock, cgroups=CgroupResolver(None))
    reader = Reader(None, cache, emitted.append, procfs_scan=False)  # type: ignore[arg-type]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="collector.reader"):
        for poll in batches:
            getattr(reader, handle)(poll)
    return emitted, vars(reader.stats), [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_events_counts_and_warnings_as_the_reference(
        seed: int, caplog: pytest.LogCaptureFixture) -> None:
    batches = polls(seed)
    clock = BootClock()
    got = _run("handle", batches, clock, caplog)
    want = _run("handle_py", batches, clock, caplog)
    assert got[0] == want[0]
    assert [len(p) for p in got[0]] == [len(p) for p in want[0]]  # one emit per poll, as many
    assert got[1] == want[1]
    assert want[1]["decode_errors"] > 0 and want[1]["forks"] > 0
    assert got[2] == want[2] and len(got[2]) == want[1]["decode_errors"]


def test_an_error_of_the_process_cache_is_raised() -> None:
    cache = ProcessCache("n", BootClock(), cgroups=CgroupResolver(None))

    def broken(rec: ExecRecord) -> dict[str, Any]:
        raise RuntimeError("cache bug")

    cache.on_exec = broken
    reader = Reader(None, cache, lambda events: None, procfs_scan=False)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="cache bug"):
        reader.handle([_exec(1, PID0, 0, 1, b"true\0")])
