"""Stopping a server the tests started: SIGTERM, then SIGKILL after a grace period.

One owner for what the registry, Camel, nginx and OpenSearch helpers each did
the same way (the Kafka broker has its own: it may be paused and must be
resumed first).
"""

from __future__ import annotations

import os
import signal
import subprocess


def stop_gracefully(proc: subprocess.Popen[bytes], grace: float, *, group: bool = False) -> None:
    """Ask proc to stop; kill it if it is still there after `grace` seconds. With
    `group`, signal its whole process group (a wrapper such as runuser and its JVM)."""
    if proc.poll() is not None:
        return

    def send(sig: int) -> None:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(10)
