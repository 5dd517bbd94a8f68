"""RFC 3339 UTC timestamps with nanoseconds, e.g. 2026-11-25T18:21:49.123456789Z."""

from __future__ import annotations

import time

# (second, its "YYYY-MM-DDTHH:MM:SS" prefix), replaced as one tuple so that two
# sink threads formatting at once never pair one second with another's prefix
_last: tuple[int, str] = (-1, "")


def rfc3339_ns(epoch_ns: int) -> str:
    global _last
    sec, frac = divmod(epoch_ns, 1_000_000_000)
    last = _last
    if sec != last[0]:  # events come in bursts within one second: format it once
        last = _last = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{last[1]}.{frac:09d}Z"
