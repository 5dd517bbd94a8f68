"""ProcessEvent → one line for people (the style of bcc's execsnoop and tetra):

    🚀 process 101708: root: /usr/sbin/iptables -L -n
    💥 exit    101708: root: /usr/sbin/iptables -L -n 0
    💥 exit    101709: alice: /usr/bin/sleep 100 SIGKILL

Arguments are shown with control characters escaped so one event is one line.
"""

from __future__ import annotations

from typing import Any

from collector.schema import PROCESS_EXEC

_ESCAPES = {i: f"\\x{i:02x}" for i in range(32)} | {0x7F: "\\x7f", ord("\n"): "\\n", ord("\t"): "\\t"}


def _printable(s: str) -> str:
    return s.translate(_ESCAPES)


def compact_line(event: dict[str, Any]) -> str:
    p = event["process"]
    who = p["user"] if p["user"] is not None else str(p["uid"])
    cmd = " ".join(_printable(a) for a in [p["binary"], *p["args"][1:]])
    if event["event_type"] == PROCESS_EXEC:
        return f"🚀 process {p['pid']}: {who}: {cmd}"
    if event["signal"] is not None:
        status = event["signal"] + (" (core dumped)" if event["core_dumped"] else "")
    else:
        status = str(event["exit_code"])
    return f"💥 exit    {p['pid']}: {who}: {cmd} {status}"


def encode_compact_line(event: dict[str, Any]) -> bytes:
    return (compact_line(event) + "\n").encode("utf-8")
