"""The kernel header tree the bcc tests compile against.

`make setup` merges Debian's split headers into one tree per release under
the download cache (tests/support/bcc_headers.sh); the tests point
BCC_KERNEL_SOURCE at it. A tree for the running kernel wins; else the
newest one (the bcc backend then takes its offsets from BTF).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.cache import cache_dir


def header_trees() -> list[Path]:
    root = cache_dir("kernel-headers")
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / ".complete").exists())


def kernel_source() -> Path:
    """The tree to use; AssertionError with the fix when `make setup` has not built one."""
    trees = header_trees()
    if not trees:
        raise AssertionError(f"no kernel header tree in {cache_dir('kernel-headers')}: "
                             "run `make setup` (tests/support/bcc_headers.sh)")
    running = [t for t in trees if t.name == os.uname().release]
    return (running or trees)[-1]
