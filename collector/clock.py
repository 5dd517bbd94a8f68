"""Kernel boot-time clock to wall-clock time.

The BPF programs stamp events with CLOCK_BOOTTIME (monotonic, counts
suspend). Wall time = boot time + (realtime - boottime), an offset sampled
at start and refreshed now and then so NTP steps are followed.
"""

from __future__ import annotations

import os
import time

REFRESH_NS = 10_000_000_000  # re-sample the offset every 10 s of events


def _sample_offset() -> int:
    # Bracket one boottime read between two realtime reads; the midpoint
    # bounds the sampling error by half the bracket (usually < 1 µs).
    r1 = time.clock_gettime_ns(time.CLOCK_REALTIME)
    b = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    r2 = time.clock_gettime_ns(time.CLOCK_REALTIME)
    return (r1 + r2) // 2 - b


class BootClock:
    """Converts CLOCK_BOOTTIME nanoseconds to Unix-epoch nanoseconds."""

    def __init__(self) -> None:
        self._offset = _sample_offset()
        self._sampled_at = time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def to_wall_ns(self, boot_ns: int) -> int:
        if boot_ns - self._sampled_at > REFRESH_NS:
            self._offset = _sample_offset()
            self._sampled_at = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        return boot_ns + self._offset

    @staticmethod
    def boot_ns_from_ticks(ticks: int) -> int:
        """/proc/PID/stat start times are clock ticks since boot."""
        return ticks * 1_000_000_000 // _CLK_TCK


_CLK_TCK: int = os.sysconf("SC_CLK_TCK")
