"""The first touch of a guest page on this VM, and a warm-up that takes it out of the storms.

This machine is a nested VM: the first time the guest writes a physical page,
the hypervisor faults it in, and that costs about ten times the write itself
(measured below: appending 1.1 KB lines to a fresh tmpfs file). A freed page
is handed out again first, so the cost is paid once per page per boot, by
whichever process touches it first. In a storm bench that is unfair and not
what a fleet host sees: the file sink writes 6-7 MB/s of 1.1 KB lines into
the page cache, the C tools a tenth of that, so on a freshly booted VM the
file sink's run pays the hypervisor for most of its pages and the C tools'
does not. warm() writes and frees that much memory before the storms, so
every tracer pays the steady-state cost of its page-cache pages.

Run alone (root not needed), it measures the effect: ns per line appended
to a tmpfs file that grows into pages never written before, then the same
again into pages just freed, alternated; figures to
bench/results/guest_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHM = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
LINE = b"x" * 1100 + b"\n"  # about one exec event's JSON line
CHUNK = LINE * 136  # about one poll's lines in a storm (150 KB)


def _append(path: Path, nbytes: int) -> float:
    """Append nbytes of CHUNKs to a new file at path; CPU ns per line (the file is kept)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    try:
        n = max(1, nbytes // len(CHUNK))
        t0 = time.process_time_ns()
        for _ in range(n):
            os.write(fd, CHUNK)
        return (time.process_time_ns() - t0) / (n * CHUNK.count(b"\n"))
    finally:
        os.close(fd)


def warm(mib: int, where: Path = SHM) -> float:
    """Write and free mib MiB of tmpfs pages (so later page-cache writes reuse
    pages the hypervisor has already given the guest); seconds taken."""
    if mib <= 0:
        return 0.0
    free = os.statvfs(where)
    mib = min(mib, free.f_bavail * free.f_frsize // (2 << 20))  # at most half of what is free
    t0 = time.monotonic()
    fd, name = tempfile.mkstemp(prefix="warm-", dir=where)
    os.close(fd)
    try:
        _append(Path(name), mib << 20)
    finally:
        os.unlink(name)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=256, help="size of every run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS / "guest_memory.json"))
    args = ap.parse_args()
    fresh, reused = [], []
    with tempfile.TemporaryDirectory(prefix="guest-memory-", dir=SHM) as d:
        for r in range(args.rounds):
            # a file that grows while the earlier ones are kept: pages beyond all that
            # this run wrote (new to the guest unless something else had them before)
            fresh.append(_append(Path(d) / f"grow-{r}", args.mib << 20))
            os.unlink(Path(d) / f"grow-{r}")
            # the pages just freed, written again (and kept: the next round grows past them)
            reused.append(_append(Path(d) / f"again-{r}", args.mib << 20))
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "line_bytes": len(LINE), "write_bytes": len(CHUNK), "mib_per_run": args.mib,
              "ns_per_line_first_writes": [round(x) for x in fresh],
              "ns_per_line_pages_just_freed": [round(x) for x in reused],
              "note": "first writes are new to the guest only where nothing touched those "
                      "pages since boot (run it on a fresh VM to see the full effect)"}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
