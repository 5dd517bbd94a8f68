"""The record builder follows schemas/, and exit statuses decode as wait(2) says."""

from __future__ import annotations

import signal

import pytest

from collector.decode import exit_fields, signal_name
from collector.enrich.namespaces import KINDS
from collector.enrich.records import EVENT_TYPES, event_record, process_record
from collector.schema import field_names


def test_builders_have_the_schemas_fields_in_its_order() -> None:
    proc = process_record(**dict.fromkeys(field_names("Process")))  # type: ignore[arg-type]
    assert tuple(proc) == field_names("Process")
    event = event_record("process_exec", 1, "n", proc, None, None)
    assert tuple(event) == field_names("ProcessEvent")
    assert EVENT_TYPES == ("process_exec", "process_exit")
    assert KINDS == field_names("Namespaces")


@pytest.mark.parametrize(("status", "fields"), [
    (0, (0, None, False)),
    (3 << 8, (3, None, False)),
    (255 << 8, (255, None, False)),
    (signal.SIGKILL, (None, "SIGKILL", False)),
    (signal.SIGSEGV | 0x80, (None, "SIGSEGV", True)),
    (signal.SIGRTMIN + 3, (None, "SIGRTMIN+3", False)),
])
def test_exit_status_word(status: int, fields: tuple[object, ...]) -> None:
    assert exit_fields(status) == fields


def test_every_signal_number_has_a_name() -> None:
    assert all(signal_name(n) for n in range(1, 128))


def test_an_exec_puts_each_kernel_fact_under_its_own_key() -> None:
    """on_exec passes the Process fields by position: every value must land in its
    field (distinct values, so a swap of two neighbours fails)."""
    import time

    from collector.clock import BootClock
    from collector.decode import ExecRecord, TaskIds
    from collector.enrich import users
    from collector.enrich.containers import CgroupResolver
    from collector.enrich.exec_id import make_exec_id
    from collector.enrich.process_cache import ProcessCache

    class Containers(CgroupResolver):
        def container_id(self, cgroup_id: int, pid: int) -> str | None:
            return f"container-of-{cgroup_id}"

    clock = BootClock()
    cache = ProcessCache("node-a", clock, cgroups=Containers(None))
    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    task = TaskIds(pid=4242, tid=4243, ppid=999_999_999, start_ns=now - 50, cgroup_id=77,
                   comm="cmd")
    rec = ExecRecord(now, task, uid=1001, euid=1002, gid=1003, egid=1004, auid=1005,
                     binary="/usr/bin/cmd", cwd="/srv", args=["cmd", "-x"], args_truncated=True,
                     flags=["execve", "truncated"])
    p = cache.on_exec(rec)["process"]
    assert p == {
        "exec_id": make_exec_id("node-a", now, 4242), "parent_exec_id": None,
        "pid": 4242, "tid": 4243, "ppid": 999_999_999,
        "uid": 1001, "euid": 1002, "gid": 1003, "egid": 1004, "auid": 1005,
        "user": users.user_name(1001), "comm": "cmd", "binary": "/usr/bin/cmd",
        "args": ["cmd", "-x"], "args_truncated": True, "cwd": "/srv",
        "start_time": clock.to_wall_ns(now - 50), "cgroup_id": 77,
        "container_id": "container-of-77", "namespaces": None, "flags": ["execve", "truncated"],
    }
    assert tuple(p) == field_names("Process")
