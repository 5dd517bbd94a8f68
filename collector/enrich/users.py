"""uid → user name, cached (a passwd lookup per event would cost more than the event)."""

from __future__ import annotations

import functools
import pwd


@functools.lru_cache(maxsize=4096)
def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None
