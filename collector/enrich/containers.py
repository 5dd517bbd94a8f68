"""container_id: from the cgroup path, found from the kernel's cgroup id.

Every kernel record carries the task's cgroup v2 id, which is the inode
number of its directory in the cgroup2 mount. Turning it into a path costs
a /proc read (while the process lives) or a walk of the cgroup tree, so
each id is resolved once and remembered: cgroup ids are never reused, so an
answer never goes stale. The hot path is one dict lookup.

Ids only grow, and an event proves its cgroup existed before we looked: so
an id missing from a walk, and every older id missing from it, belongs to a
removed cgroup, and only an id newer than every walk so far triggers one.
Such misses are not remembered (a live process in a cgroup created during
a walk can still resolve it through /proc later) but they cost no walk.

Container runtimes name the container's cgroup after its 64-hex id:
    docker (systemd driver)      .../docker-<id>.scope
    docker (cgroupfs driver)     /docker/<id>
    containerd (CRI, systemd)    .../cri-containerd-<id>.scope
    containerd / k8s cgroupfs    /kubepods/burstable/pod<uid>/<id>
    CRI-O                        .../crio-<id>.scope
    podman                       .../libpod-<id>.scope
The deepest matching component wins (docker-in-docker, systemd inside a
container). Monitors such as crio-conmon-<id>.scope are not containers.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

_CONTAINER = re.compile(
    r"(?:docker-|cri-containerd-|crio-|libpod-|containerd-)?([0-9a-f]{64})(?:\.scope)?"
)
MAX_REMEMBERED = 65536


def container_id_from_path(path: str) -> str | None:
    """The container id named by a cgroup path, or None for a host cgroup."""
    for part in reversed(path.split("/")):
        m = _CONTAINER.fullmatch(part)
        if m:
            return m.group(1)
    return None


def cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or
    /sys/fs/cgroup/unified on hybrid hosts); None on a v1-only host."""
    try:
        with open(mountinfo) as f:
            lines = f.readlines()
    except OSError:
        return None
    for line in lines:
        pre, sep, post = line.partition(" - ")
        fields = pre.split()
        if sep and post.split()[:1] == ["cgroup2"] and len(fields) >= 5 and fields[3] == "/":
            return fields[4]
    return None


def proc_cgroups(pid: int) -> list[tuple[str, str]] | None:
    """(controllers, path) for each line of /proc/PID/cgroup; "" is cgroup v2."""
    try:
        with open(f"/proc/{pid}/cgroup", "rb") as f:
            raw = f.read().decode("utf-8", "backslashreplace")
    except OSError:
        return None
    out = []
    for line in raw.splitlines():
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        out.append((controllers, path))
    return out


@dataclass
class ResolverStats:
    lookups: int = 0  # ids not remembered yet
    from_proc: int = 0  # resolved through /proc/PID/cgroup
    scans: int = 0  # walks of the cgroup tree
    scan_ns: int = 0  # time spent walking
    unresolved: int = 0  # ids found nowhere (cgroup already removed)


class CgroupResolver:
    """cgroup v2 id → container id (or None), remembered per id."""

    def __init__(self, mount: str | None) -> None:
        self.mount = mount
        self._answers: dict[int, str | None] = {1: None}  # 1 is the root cgroup
        self._paths: dict[int, str] = {}  # ids seen by the last walk, not asked for yet
        self._walked_to = 1  # every id up to this one was looked for by a walk
        self.stats = ResolverStats()

    def container_id(self, cgroup_id: int, pid: int) -> str | None:
        """pid is a hint: while it lives, its /proc entry names the cgroup cheaply."""
        try:
            return self._answers[cgroup_id]
        except KeyError:
            return self._resolve(cgroup_id, pid)

    def cgroup_id_of(self, path: str) -> int | None:
        """The id of a v2 cgroup path (as written in /proc/PID/cgroup)."""
        if self.mount is None:
            return None
        try:
            return os.stat(self.mount + path).st_ino
        except OSError:
            return None

    def learn(self, path: str) -> tuple[int | None, str | None]:
        """(cgroup id, container id) of a v2 path read from /proc, remembered."""
        cgroup_id = self.cgroup_id_of(path)
        answer = container_id_from_path(path)
        if cgroup_id is not None:
            self._remember(cgroup_id, answer)
        return cgroup_id, answer

    def _remember(self, cgroup_id: int, answer: str | None) -> None:
        if len(self._answers) >= MAX_REMEMBERED:
            self._answers.clear()
            self._answers[1] = None
        self._answers[cgroup_id] = answer

    def _resolve(self, cgroup_id: int, pid: int) -> str | None:
        st = self.stats
        st.lookups += 1
        if self.mount is None or cgroup_id <= 0:
            return None
        path = self._path_from_proc(cgroup_id, pid)
        if path is not None:
            st.from_proc += 1
        else:
            path = self._paths.pop(cgroup_id, None)
            if path is None and cgroup_id > self._walked_to:
                path = self._walk_for(cgroup_id)
        if path is None:
            st.unresolved += 1
            return None
        answer = container_id_from_path(path)
        self._remember(cgroup_id, answer)
        return answer

    def _path_from_proc(self, cgroup_id: int, pid: int) -> str | None:
        for controllers, path in proc_cgroups(pid) or ():
            if controllers == "":
                return path if self.cgroup_id_of(path) == cgroup_id else None
        return None

    def _walk_for(self, cgroup_id: int) -> str | None:
        """Walk the whole tree once (one getdents per cgroup; d_ino is the id,
        no stat needed) and keep every id found for the next misses."""
        assert self.mount is not None
        started = time.perf_counter_ns()
        found: dict[int, str] = {}
        stack = [""]
        while stack:
            rel = stack.pop()
            try:
                it = os.scandir(self.mount + rel if rel else self.mount)
            except OSError:
                continue
            with it:
                for d in it:
                    if d.is_dir(follow_symlinks=False):
                        sub = f"{rel}/{d.name}"
                        found[d.inode()] = sub
                        stack.append(sub)
        self.stats.scans += 1
        self.stats.scan_ns += time.perf_counter_ns() - started
        self._walked_to = max(self._walked_to, cgroup_id, *found)
        path = found.pop(cgroup_id, None)
        self._paths = {k: v for k, v in found.items() if k not in self._answers}
        return path
