"""`collector check`: everything the collector needs, one line each.

Each check returns (ok, line); the line names what is missing and the fix.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from typing import Any

from collector.probe.core import BTF_PATH, object_path
from collector.probe.libbpf import LIBBPF_NAME
from collector.probe.privileges import missing_privileges


def run_checks(cfg: dict[str, Any] | None = None,
               backend: str = "core") -> Iterator[tuple[bool | None, str]]:
    """Both backends are reported; only the lines of the one that would run
    count as failures (None: informational, for the other backend)."""
    from collector.probe.bcc_check import bcc_checks

    problem = missing_privileges()
    yield (problem is None, problem or "privileges: can load tracing BPF programs")
    core = list(_core_checks(problem))
    bcc = bcc_checks(problem is None)
    core_ok, bcc_ok = all(ok for ok, _ in core), all(ok for ok, _ in bcc)
    counts = {"core": (True, False), "bcc": (False, True),
              "auto": (True, True) if not (core_ok or bcc_ok) else (core_ok, not core_ok)}
    count_core, count_bcc = counts[backend]
    yield from ((ok if count_core or ok else None, line) for ok, line in core)
    yield from ((ok if count_bcc or ok else None, line) for ok, line in bcc)
    if cfg is not None:
        yield from _sink_checks(cfg)


def _core_checks(problem: str | None) -> Iterator[tuple[bool, str]]:
    if BTF_PATH.exists():
        yield True, f"BTF: {BTF_PATH}"
    else:
        yield False, (f"BTF: {BTF_PATH} missing; the kernel needs CONFIG_DEBUG_INFO_BTF=y for "
                      "the CO-RE backend")
    try:
        ctypes.CDLL(LIBBPF_NAME)
        yield True, f"libbpf: {LIBBPF_NAME} loads"
    except OSError as exc:
        yield False, f"libbpf: {LIBBPF_NAME} not loadable ({exc}); apt-get install libbpf1"
    obj = object_path()
    if obj.exists():
        yield True, f"BPF object: {obj}"
    else:
        yield False, f"BPF object: {obj} missing; build it with `make setup`"
    if problem is None and BTF_PATH.exists() and obj.exists():
        yield _try_load()


def _try_load() -> tuple[bool, str]:
    from collector.errors import CollectorError
    from collector.probe.core import CoreProbe

    probe = CoreProbe()
    try:
        probe.start()
        return True, "probes: loaded and attached (exec, exit, fork)"
    except CollectorError as exc:
        return False, f"probes: {exc}"
    finally:
        probe.close()


def _sink_checks(cfg: dict[str, Any]) -> Iterator[tuple[bool, str]]:
    for name in cfg["sinks"]:
        if name == "file":
            path = cfg["file.path"]
            d = os.path.dirname(os.path.abspath(path))
            ok = os.path.isdir(d) and os.access(d, os.W_OK)
            yield ok, f"file sink: {d} {'is writable' if ok else 'is missing or not writable'}"
        elif name == "kafka":
            from sinks.kafka import check_reachable

            yield check_reachable(cfg)
