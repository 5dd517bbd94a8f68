"""From libbpf's messages of a failed load, the one line a user needs.

The verifier explains a refusal in a log of thousands of lines (every
instruction it walked, register states); the reason is near the end, just
before the summary ("processed N insns ..."). libbpf wraps that log in
`prog 'NAME': -- BEGIN PROG LOAD LOG --` ... `-- END PROG LOAD LOG --`.
When the kernel never saw the program (a CO-RE relocation or an attach
failed), libbpf's own `prog 'NAME': ...` line is the reason.
"""

from __future__ import annotations

import re

_LOG = re.compile(r"prog '(\w+)': -- BEGIN PROG LOAD LOG --\n(.*?)-- END PROG LOAD LOG --",
                  re.S)
_PROG_LINE = re.compile(r"prog '(\w+)': (.*)")
# verifier lines that are not the reason: the summary, instructions, states, source
_NOISE = re.compile(
    r"^(processed \d+ insns|verification time|stack depth|max_states_per_insn"
    r"|\d+: \(|\d+: R\d|\d+:|; |from \d+ to \d+|R\d+(_\w+)?=|Func#\d|Validating|"
    r"func#\d|last_idx|regs=|parent |mark_precise|propagating|Live regs|\(\w+\) )"
)
# libbpf's own lines that only repeat that something failed
_GENERIC = re.compile(r"^(failed to load: -?\d+|BPF program load failed: .*|"
                      r"-- (BEGIN|END) PROG LOAD LOG --.*)$")


def decisive(log: list[str]) -> tuple[str | None, str | None]:
    """(program, reason) from libbpf's messages; either may be None when unknown."""
    text = "".join(m if m.endswith("\n") else m + "\n" for m in log)
    found = _LOG.findall(text)
    if found:
        prog, body = found[-1]
        reason = _reason(body.splitlines())
        if reason:
            return prog, reason
    for line in reversed(text.splitlines()):
        m = _PROG_LINE.search(line)
        if m and not _GENERIC.match(m.group(2).strip()):
            return m.group(1), m.group(2).strip()
    for line in reversed(text.splitlines()):
        m = _PROG_LINE.search(line)
        if m:
            return m.group(1), m.group(2).strip()
    return None, None


def _reason(lines: list[str]) -> str | None:
    """The verifier's last message lines before its summary, joined.

    Usually one line ("R1 unbounded memory access, ..."); some refusals take
    two ("func 'x' doesn't have 2-th argument" then "invalid bpf_context
    access off=8 size=8"), and the first one is the one that explains.
    """
    messages: list[str] = []
    for raw in reversed(lines):
        line = raw.strip()
        if not line:
            continue
        if _NOISE.match(line):
            if messages:
                break
            continue
        messages.append(line)
        if len(messages) == 2:
            break
    return ": ".join(reversed(messages)) or None
