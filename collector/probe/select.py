"""Which probe backend runs: core (CO-RE, libbpf), bcc, or auto.

auto tries CO-RE first (it starts in about 0.1 s and needs no compiler or
headers); when that cannot load on this host (no BTF, a libbpf that cannot
load the object) it tries bcc; when neither can, it refuses with one line
that says what each one lacks.
"""

from __future__ import annotations

import logging
from typing import Any

from collector.errors import ProbeError
from collector.probe import Probe
from collector.probe.bcc import BccProbe
from collector.probe.core import CoreProbe

BACKENDS = ("core", "bcc", "auto")

log = logging.getLogger("collector")


class AutoProbe:
    """CO-RE when it loads, else bcc; `backend` says which one runs after start()."""

    def __init__(self, core: CoreProbe, bcc: BccProbe) -> None:
        self._core = core
        self._bcc = bcc
        self._probe: Probe | None = None
        self.backend = "auto"

    def start(self) -> None:
        try:
            self._core.start()
        except ProbeError as core_exc:  # a PrivilegeError stops here: bcc needs the same
            self._core.close()
            log.info("CO-RE backend cannot load (%s); trying bcc", core_exc)
            try:
                self._bcc.start()
            except ProbeError as bcc_exc:
                self._bcc.close()
                raise ProbeError(f"no probe backend can run on this host: CO-RE: {core_exc}; "
                                 f"bcc: {bcc_exc}") from None
            self._probe, self.backend = self._bcc, "bcc"
            return
        self._probe, self.backend = self._core, "core"

    def read(self, timeout_ms: int) -> list[bytes]:
        if self._probe is None:
            raise ProbeError("the probe is not started")
        return self._probe.read(timeout_ms)

    def kernel_drops(self) -> dict[str, int]:
        if self._probe is None:
            return self._core.kernel_drops()
        return self._probe.kernel_drops()

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()


def build(backend: str, capture: dict[str, Any]) -> Probe:
    """The probe for a backend name, from the capture.* settings."""
    common = dict(
        args_max=capture["args_max_bytes"],
        ring_buffer_bytes=capture["ring_buffer_bytes"],
        wakeup_bytes=capture["wakeup_bytes"],
        ignore_self=capture["ignore_self"],
    )
    if backend == "core":
        return CoreProbe(**common)
    bcc = BccProbe(**common, offset_source=capture["bcc_offsets"])
    if backend == "bcc":
        return bcc
    if backend == "auto":
        return AutoProbe(CoreProbe(**common), bcc)
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def backend_of(probe: Probe) -> str:
    """The backend a (started) probe runs, for the start line and metrics."""
    if isinstance(probe, CoreProbe):
        return "core"
    return str(getattr(probe, "backend", type(probe).__name__))
