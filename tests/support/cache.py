"""Where test and bench downloads (jars, kernels, servers) are cached.

One owner for the folder: ``$PROCESS_COLLECTOR_CACHE``, else
``${XDG_CACHE_HOME:-~/.cache}/process-collector``. It is outside the checkout so
that a fresh clone (as CI makes) reuses what an earlier run downloaded; the
shell twin is ``tests/support/cache_dir.sh``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The per-user download cache (created on first use by the fetchers)."""
    env = os.environ.get("PROCESS_COLLECTOR_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "process-collector"


def cache_dir(name: str) -> Path:
    """A named sub-folder of the cache (e.g. ``kafka``, ``kernels``)."""
    return cache_root() / name
