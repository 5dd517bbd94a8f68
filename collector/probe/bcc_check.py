"""`collector check` lines for the bcc backend: bcc, headers, offsets, a real load.

Each line says what is missing and the fix, like collector/preflight.py's.
"""

from __future__ import annotations

import os
import time

from collector.errors import CollectorError
from collector.probe import bcc as bccmod
from collector.probe import offsets


def bcc_checks(privileged: bool) -> list[tuple[bool, str]]:
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
                           f"or set {bccmod.KERNEL_SOURCE_ENV} to a header tree"))
        return out
    has_btf = bccmod.BTF_PATH.exists()
    match = "matches the running kernel" if src.release == running else (
        f"not the running kernel {running}; usable with BTF offsets only")
    out.append((src.release == running or has_btf,
                f"bcc: kernel headers {src.path} ({src.release or 'unknown release'}): {match}"))
    if has_btf:
        try:
            offsets.btf_offsets(offsets.Btf.load(bccmod.BTF_PATH))
            out.append((True, f"bcc: struct offsets from BTF {bccmod.BTF_PATH}"))
        except CollectorError as exc:
            out.append((False, f"bcc: {exc}"))
    if privileged and all(ok for ok, _ in out):
        probe = bccmod.BccProbe()
        t0 = time.monotonic()
        try:
            probe.start()
            out.append((True, f"bcc: compiled, loaded and attached (exec, exit, fork) in "
                              f"{time.monotonic() - t0:.1f}s, offsets from {probe.offsets_from}"))
        except CollectorError as exc:
            out.append((False, f"bcc: {exc}"))
        finally:
            probe.close()
    return out
