"""The redactor's keyword screen in the process cache's C exec path.

The redactor (collector.filter.redact, the reference) searches the lower-cased
argv for SCREEN_KEYWORDS before its patterns; collector.enrich._cache asks the
same question of ASCII argv without calling it, and calls it for anything else.
Held here to the regex on random argv (keywords in any case and place, split
across arguments, non-ASCII characters that lower-case to ASCII), and, through
the native cache, to the redactor's answers: it is called exactly for the argv
the screen cannot clear, and every event is the Python path's."""

from __future__ import annotations

import random
import time

import pytest

from collector.clock import BootClock
from collector.decode import decode
from collector.enrich import _cache
from collector.enrich.containers import CgroupResolver
from collector.enrich.process_cache import ProcessCache
from collector.filter.redact import _KEYWORDS, SCREEN_KEYWORDS, ArgvRedactor, compile_patterns
from collector.probe.layout import EXEC_FIXED, EventKind

PID0 = 7_000_000  # above any pid_max: /proc knows none of them

ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=/:.@ "
TRICKY = ["\u212a", "\u0130", "é", "ß", "\u017f", "ǅ"]  # Kelvin sign → k, İ → i̇, ſ → s...


def _word(rng: random.Random) -> str:
    return rng.choice(SCREEN_KEYWORDS)


def _argv(rng: random.Random) -> list[str]:
    out = []
    for _ in range(rng.randint(0, 5)):
        arg = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))
        roll = rng.random()
        if roll < 0.3:  # a keyword in random case somewhere in it
            w = "".join(c.upper() if rng.random() < 0.5 else c for c in _word(rng))
            at = rng.randint(0, len(arg))
            arg = arg[:at] + w + arg[at:]
        elif roll < 0.4:  # a keyword cut short (a near miss)
            w = _word(rng)
            arg += w[: max(1, len(w) - 1)]
        elif roll < 0.5:
            arg += rng.choice(TRICKY) + "ey"
        out.append(arg)
    if out and rng.random() < 0.1:  # a keyword split across two arguments: no match
        w = _word(rng)
        out[-1] += w[:1]
        out.append(w[1:])
    return out


def _reference(argv: list[str]) -> bool:
    return _KEYWORDS.search("\0".join(argv).lower()) is not None


def test_the_screen_is_the_regex_on_ascii_and_defers_on_the_rest() -> None:
    rng = random.Random(15)
    seen = {True: 0, False: 0}
    for _ in range(20_000):
        argv = _argv(rng)
        got = _cache.screen(argv, SCREEN_KEYWORDS)
        if all(a.isascii() for a in argv):
            assert got == _reference(argv), argv
            seen[got] += 1
        else:
            assert got is True, argv  # the redactor decides
    assert seen[True] > 1000 and seen[False] > 1000
    assert _cache.screen(["\u212aey"], SCREEN_KEYWORDS) and _reference(["\u212aey"])
    assert _cache.screen(("a",), SCREEN_KEYWORDS)  # not a list: deferred
    assert not _cache.screen([], SCREEN_KEYWORDS)


def test_bad_keywords_are_refused() -> None:
    for bad in (("Pass",), ("",), ("é",), tuple(f"k{i}" for i in range(33)), ["pass"]):
        with pytest.raises((TypeError, ValueError)):
            _cache.screen(["x"], bad)


def test_the_redactor_offers_the_screen_only_when_it_is_enough() -> None:
    assert ArgvRedactor([], defaults=True).screen == SCREEN_KEYWORDS
    assert ArgvRedactor(compile_patterns(["x(y)"]), defaults=True).screen is None
    assert ArgvRedactor(compile_patterns(["x(y)"]), defaults=False).screen is None


class CountingRedactor(ArgvRedactor):
    def __init__(self) -> None:
        super().__init__([], defaults=True)
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str]) -> list[str]:
        self.calls.append(args)
        return super().__call__(args)


def _exec(ktime: int, pid: int, argv: list[str]) -> bytes:
    binary, cwd = b"true\0bin\0", b"tmp\0"
    raw = b"".join(a.encode() + b"\0" for a in argv)
    return EXEC_FIXED.pack(EventKind.EXEC, 0, ktime, pid, pid, 0, 0, ktime - 5, 1,
                           b"true".ljust(16, b"\0"), 0, 0, 0, 0, 1000, 0, len(binary),
                           len(cwd), len(raw), len(raw)) + binary + cwd + raw


def test_the_native_cache_calls_the_redactor_only_when_the_screen_cannot_clear() -> None:
    rng = random.Random(7)
    t = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - 10**9
    argvs = [[a for a in _argv(rng) if a and "\0" not in a] or ["true"] for _ in range(400)]
    records = [decode(_exec(t + 10 * i, PID0 + i, argv)) for i, argv in enumerate(argvs)]
    clock = BootClock()
    runs = []
    for native in (True, False):
        redactor = CountingRedactor()
        cache = ProcessCache("n", clock, redact=redactor, cgroups=CgroupResolver(None),
                             native=native)
        assert cache.native == native
        events = [cache.on_exec(rec) for rec in records]
        runs.append((events, redactor))
    (fast, fast_redactor), (ref, ref_redactor) = runs
    assert fast == ref
    assert fast_redactor.redacted == ref_redactor.redacted > 0
    assert len(ref_redactor.calls) == len(records)  # the Python path asks every time
    deferred = [rec.args for rec in records if _cache.screen(rec.args, SCREEN_KEYWORDS)]
    assert fast_redactor.calls == deferred
    assert 0 < len(deferred) < len(records)
    for rec, ev in zip(records, fast, strict=True):  # a cleared argv is the record's own list
        if rec.args not in deferred:
            assert ev["process"]["args"] is rec.args
