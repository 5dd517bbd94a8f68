"""Probe backends: where raw process records come from.

A backend loads and attaches the kernel side, then hands out raw records in
batches. The default is CO-RE (libbpf + the compiled object shipped with the
package); others (bcc) can be added behind the same small interface.
"""

from __future__ import annotations

from typing import Protocol


class Probe(Protocol):
    """What the reader needs from a backend."""

    def start(self) -> None:
        """Load and attach; raise PrivilegeError or ProbeError with the fix."""

    def read(self, timeout_ms: int) -> list[bytes]:
        """Wait up to timeout_ms, then return every queued raw record."""

    def kernel_drops(self) -> dict[str, int]:
        """Records the kernel could not queue (ring buffer full), by event kind."""

    def close(self) -> None:
        """Detach and free everything; safe to call twice."""
