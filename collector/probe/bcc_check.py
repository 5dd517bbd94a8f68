"""`collector check` lines for the bcc backend: bcc, headers, offsets, a real load.

Each line says what is missing and the fix, like collector/preflight.py's.
"""

from __future__ import annotations

import os
import time

from collector.errors import CollectorError
from collector.probe import bcc as bccmod
from collector.probe import offsets


def bcc_checks(privileged: bool, offset_source: str = "auto") -> list[tuple[bool, str]]:
    """offset_source is capture.bcc_offsets: the lines judge the offsets `run` would use."""
    out: list[tuple[bool, str]] = []
    try:
        bcc = bccmod.import_bcc()
    except CollectorError as exc:
        return [(False, f"bcc: {exc}")]
    out.append((True, f"bcc: {getattr(bcc, '__version__', '?')} importable ({bcc.__file__})"))
    src = bccmod.kernel_source()
    running = os.uname().release
    if src is None:
        out.append((False, f"bcc: no kernel headers for {running}: install linux-headers-{running} "
                           f"and run `make setup` (it merges them into {bccmod.header_trees_dir()}), "
                           f"or set {bccmod.KERNEL_SOURCE_ENV} to a header tree"))
        return out
    has_btf = bccmod.BTF_PATH.exists()
    from_btf = offset_source == "btf" or (offset_source == "auto" and has_btf)
    match = "matches the running kernel" if src.release == running else (
        f"not the running kernel {running}; " + (
            "usable with BTF offsets only" if from_btf else
            f"its struct offsets cannot be used (capture.bcc_offsets={offset_source})"))
    out.append((src.release == running or (from_btf and has_btf),
                f"bcc: kernel headers {src.path} ({src.release or 'unknown release'}): {match}"))
    if from_btf and not has_btf:
        out.append((False, f"bcc: capture.bcc_offsets=btf but {bccmod.BTF_PATH} is missing: use "
                           "auto or headers (headers that match the running kernel)"))
    elif from_btf:
        try:
            offsets.btf_offsets(offsets.Btf.load(bccmod.BTF_PATH))
            out.append((True, f"bcc: struct offsets from BTF {bccmod.BTF_PATH}"))
        except CollectorError as exc:
            out.append((False, f"bcc: {exc}"))
    if privileged and all(ok for ok, _ in out):
        probe = bccmod.BccProbe(offset_source=offset_source)
        t0 = time.monotonic()
        try:
            probe.start()
            out.append((True, f"bcc: compiled, loaded and attached (exec, exit, fork) in "
                              f"{time.monotonic() - t0:.1f}s, offsets from {probe.offsets_from}"
                              + (" (agree with BTF)" if has_btf and not from_btf else "")))
        except CollectorError as exc:
            out.append((False, f"bcc: {exc}"))
        finally:
            probe.close()
    return out
