"""Namespace inode numbers of a process (optional: enrich.namespaces).

The probes do not read the nsproxy, so this reads /proc/PID/ns/* at exec.
That is eight readlinks per exec, paid only when the option is on; a
process gone before the reader gets to it has no namespaces (counted by
the cache). Two processes share a namespace exactly when the inode numbers
are equal, which is what an analyst compares ("is this in the host netns?").
"""

from __future__ import annotations

import os

from collector.schema import field_names

KINDS = field_names("Namespaces")  # the schema's Namespaces record: cgroup, ipc, mnt, ...


def read_namespaces(pid: int) -> dict[str, int | None] | None:
    """{"mnt": 4026531841, ...}; a kind this kernel lacks is None; None if pid is gone."""
    out: dict[str, int | None] = {}
    for kind in KINDS:
        try:
            link = os.readlink(f"/proc/{pid}/ns/{kind}")  # e.g. "mnt:[4026531841]"
        except FileNotFoundError:
            if kind == "mnt":
                return None  # every process has one: the process itself is gone
            out[kind] = None
            continue
        except OSError:
            return None
        out[kind] = int(link[link.index("[") + 1 : -1])
    return out
