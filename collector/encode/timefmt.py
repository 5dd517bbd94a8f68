"""RFC 3339 UTC timestamps with nanoseconds, e.g. 2026-11-25T18:21:49.123456789Z."""

from __future__ import annotations

import time

_last_sec = -1
_last_prefix = ""


def rfc3339_ns(epoch_ns: int) -> str:
    global _last_sec, _last_prefix
    sec, frac = divmod(epoch_ns, 1_000_000_000)
    if sec != _last_sec:  # events come in bursts within one second: format it once
        _last_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _last_sec = sec
    return f"{_last_prefix}.{frac:09d}Z"
