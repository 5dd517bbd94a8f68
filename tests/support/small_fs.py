"""A tiny file system of a test's own, and filling it to the last byte.

The full-disk tests (file sink, pipeline, metrics) mount a tmpfs of a few MiB
under the test's tmp_path, so ENOSPC there fills nothing else on the host.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_tmpfs(tmp_path: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of `size_mib` MiB mounted at tmp_path/small for the block's duration."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs",
                    str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(d: Path) -> Path:
    """Fill d's file system to the last byte; delete the returned filler to make room."""
    filler = d / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    chunk = 1 << 16
    while chunk:
        try:
            os.write(fd, b"\0" * chunk)
        except OSError:
            chunk //= 2
    os.close(fd)
    return filler
