"""Do we have the privileges to load tracing BPF programs?"""

from __future__ import annotations

import os

CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


def effective_caps() -> int:
    """The CapEff bit mask of this process, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def missing_privileges() -> str | None:
    """None when BPF tracing is allowed, else one line saying what is missing."""
    caps = effective_caps()
    if caps & (1 << CAP_SYS_ADMIN):
        return None
    need = {"CAP_BPF": CAP_BPF, "CAP_PERFMON": CAP_PERFMON}
    lacking = [name for name, bit in need.items() if not caps & (1 << bit)]
    if not lacking:
        return None
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    return (
        f"running as {who} without {' and '.join(lacking)}: run as root "
        "(sudo collector run) or grant CAP_BPF,CAP_PERFMON (see deploy/README.md)"
    )


def missing_scan_privileges() -> str | None:
    """None when /proc shows every process's exe and cwd links; else one line.

    Reading another user's links needs ptrace read access, which CAP_SYS_PTRACE
    grants (CAP_SYS_ADMIN does not). Without it the collector still runs and the
    kernel's events are complete, but processes found in /proc (the start-up
    scan, parents never seen exec) lose their binary and cwd: say so at start."""
    if effective_caps() & (1 << CAP_SYS_PTRACE):
        return None
    return ("without CAP_SYS_PTRACE the /proc scan cannot read the binary and cwd of other "
            "users' processes (flag procfs); grant CAP_SYS_PTRACE (see deploy/README.md)")
