"""How long the reader's next poll of the ring buffer may wait.

Every poll has a cost of its own, above its records': the interpreter's and
the encoders' code and data are cold again after the wait (about 40 µs for
an empty poll, a few hundred µs for a storm's poll on this machine). So while
events come fast, fewer and larger batches cost less CPU per event
(bench/results/poll_ab.json), for a wait bounded by
capture.busy_poll_interval_ms; when events slow down, the first poll that
brings fewer records restores capture.poll_interval_ms and its latency.
(No import of the pipeline here: collector.config reads BUSY_RECORDS.)
"""

from __future__ import annotations

#: a poll that brings this many records or more means events come fast (at the
#: quiet 25 ms interval: over ~1,300 processes a second, an exec and an exit each)
BUSY_RECORDS = 64


def next_poll_ms(records: int, quiet_ms: int, busy_ms: int) -> int:
    """The next poll's longest wait (ms), after one that brought `records`."""
    return busy_ms if records >= BUSY_RECORDS else quiet_ms
