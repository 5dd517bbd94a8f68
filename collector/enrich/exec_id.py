"""exec_id: one id per node and process image.

An image is identified by where it runs (node), when it began (the exec's
boot-time timestamp, or the thread group's start for an image inherited by
fork or found in /proc) and its pid. Encoded opaque (base64url) like
Tetragon's, so consumers treat it as a key, not as something to parse.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def make_exec_id_py(node: str, ktime_ns: int, pid: int) -> str:
    """The exec_id; the reference of collector.enrich._exec_id (C), and
    make_exec_id when the package was built without it."""
    # base64.urlsafe_b64encode, minus two Python-level calls: this runs for every exec
    raw = f"{node}:{ktime_ns}:{pid}".encode()
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _native() -> Callable[[str, int, int], str] | None:
    try:
        from collector.enrich._exec_id import ExecIds
    except ImportError:  # installed without a C compiler
        return None
    return ExecIds(make_exec_id_py)  # type: ignore[no-any-return]


_NATIVE = _native()
NATIVE = _NATIVE is not None  # for tests and the benches
make_exec_id: Callable[[str, int, int], str] = _NATIVE if _NATIVE is not None else make_exec_id_py
"""The exec_id of the image pid began at ktime_ns on node (C when built)."""


def parse_exec_id(exec_id: str) -> tuple[str, int, int]:
    """(node, ktime_ns, pid) back from an exec_id: for debugging and tests."""
    raw = base64.urlsafe_b64decode(exec_id + "=" * (-len(exec_id) % 4)).decode()
    node, ktime, pid = raw.rsplit(":", 2)
    return node, int(ktime), int(pid)
