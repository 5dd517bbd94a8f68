"""Every error the collector reports, and the exit code each maps to.

    CollectorError              exit 1: something failed at run time
     ├── UsageError             exit 2: a bad flag, config key or value
     ├── PrivilegeError         exit 77: not root / missing capabilities
     ├── ProbeError             exit 3: the BPF object could not be loaded or attached
     └── SinkError              exit 4: a sink could not be opened or failed fatally,
          │                     at start or while running
          ├── OutputClosed      (collector.export) the reader of stdout went away:
          │                     a quiet stop, exit 0
          └── TransientSinkError  (collector.export) retried by the core; never an
               │                  exit code by itself (what was not delivered is exit 1)
               └── PartialWriteError

At a stop, events that reached the collector but were not delivered (and not
dropped by a counted policy) make the exit code 1.

Messages are one line and say how to fix the problem; the CLI prints them
without a traceback (collector.cli.main is the one place that maps them).
"""

from __future__ import annotations


class CollectorError(Exception):
    """Base class; `exit_code` is what the process exits with."""

    exit_code = 1


class UsageError(CollectorError):
    """A bad flag, config key or value: the user must change the input."""

    exit_code = 2


class PrivilegeError(CollectorError):
    """The collector lacks the privileges to load BPF programs."""

    exit_code = 77


class ProbeError(CollectorError):
    """Loading or attaching the BPF programs failed; `log` holds libbpf's words."""

    exit_code = 3

    def __init__(self, message: str, log: list[str] | None = None) -> None:
        super().__init__(message)
        self.log = log or []


class SinkError(CollectorError):
    """A sink could not be opened, or failed in a way retries cannot fix."""

    exit_code = 4
