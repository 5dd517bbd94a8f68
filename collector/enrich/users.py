"""uid → user name, cached.

A passwd lookup (NSS: a file parse, maybe LDAP) per event would cost more
than the event, so names are remembered. A uid that does not resolve is
asked again after a minute (a user may be created later); `forget()`,
called by the cache's maintenance, drops everything now and then so
renamed or deleted users are noticed.
"""

from __future__ import annotations

import pwd
import time

NEGATIVE_TTL_S = 60.0

_names: dict[int, str] = {}
_unknown_until: dict[int, float] = {}


def user_name(uid: int) -> str | None:
    name = _names.get(uid)
    if name is not None:
        return name
    return _lookup(uid)


def _lookup(uid: int) -> str | None:
    now = time.monotonic()
    if _unknown_until.get(uid, 0.0) > now:
        return None
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        _unknown_until[uid] = now + NEGATIVE_TTL_S
        return None
    if len(_names) >= 4096:
        _names.clear()
    _names[uid] = name
    return name


def forget() -> None:
    _names.clear()
    _unknown_until.clear()
