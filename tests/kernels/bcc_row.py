"""The matrix's bcc row: Debian 12's 6.1 kernel running the bcc backend with its own 6.1 headers.

That is the case bcc exists for: offsets from headers that match the running
kernel (cross-checked against the guest's BTF, so a mismatch fails instead of
reading zeros). The other rows boot a minimal root in an initramfs; bcc needs
clang/LLVM (python3-bpfcc, libbpfcc) and a merged header tree, several hundred
MB, so this row boots the kernel of the host's installed linux-headers-*-amd64
(tests/support/bcc_guest.py downloads and unpacks that exact version) with the
host's root shared read-only over virtio-9p: the guest runs the host's bcc,
the header tree `make setup` merged under the cache, and a venv installed from
the same wheel as every other row, with bcc linked in as `make bcc` does.

The collector is not told where the headers are (no BCC_KERNEL_SOURCE): it must
find the cache's merged tree itself, as after `make setup` on a fresh machine.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.kernels import fetch
from tests.support import bcc_guest
from tests.support.bcc_headers import header_trees
from tests.support.cache import cache_root

REPO = Path(__file__).resolve().parents[2]

NAME = "bookworm-bcc"
LABEL = "6.1-bcc"
BCC_SYSTEM = Path("/usr/lib/python3/dist-packages/bcc")
# clang compiles the program twice (the offsets probe, the program) per collector start, and
# the checks start it twice (check, run): about 4 x 50 s under TCG on a loaded 2-core host
TIMEOUT = 900.0
QEMU = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max",
        "-smp", "2", "-m", "3072", "-nographic", "-monitor", "none", "-no-reboot"]

SCRIPT = """\
export HOME=/root LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin PYTHONDONTWRITEBYTECODE=1
export PROCESS_COLLECTOR_CACHE={cache}
unset BCC_KERNEL_SOURCE
mkdir -p /tmp/kcheck && cd /tmp/kcheck
echo "KCHECK boot uptime=$(cut -d' ' -f1 /proc/uptime)s"
{venv}/bin/python {checks} --collector {venv}/bin/collector --work /tmp/kcheck \\
    --backend bcc --bcc-offsets headers
echo "KCHECK exit $? uptime=$(cut -d' ' -f1 /proc/uptime)s"
"""


def link_bcc(venv: Path) -> None:
    """Debian's bcc importable in the venv by one symlink (what `make bcc` does for .venv)."""
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, text=True, stdout=subprocess.PIPE).stdout.strip()
    link = Path(purelib) / "bcc"
    if not link.is_symlink():
        link.symlink_to(BCC_SYSTEM)


def run(venv: Path, checks: Path, build: Path) -> tuple[str, float, str]:
    """(serial output, seconds, kernel release) of one boot running the checks with bcc."""
    if not BCC_SYSTEM.is_dir():
        raise SystemExit(f"kernels: {BCC_SYSTEM} missing: run `make setup` (it installs python3-bpfcc)")
    link_bcc(venv)
    trees = [t for t in header_trees() if t.name.endswith("-amd64")]
    if not trees:
        raise SystemExit("kernels: no merged kernel header tree in the cache: run `make setup`")
    release = trees[-1].name
    vmlinuz, modules = bcc_guest.kernel_and_modules(release)
    build.mkdir(parents=True, exist_ok=True)
    log = build / f"serial-{NAME}.log"
    log.unlink(missing_ok=True)
    out = Path(tempfile.mkdtemp(prefix="bcc-row-", dir=build))  # the guest's only writable share
    # the guest mounts a tmpfs of its own on /tmp: the checkout (venv, checks) and the
    # cache (headers) are shared again read-only, in case they live under /tmp (a CI clone)
    shares = [REPO.resolve(), cache_root().resolve()]
    try:
        with tempfile.TemporaryDirectory(dir=build) as work:
            image = bcc_guest.initramfs(modules, Path(work))
            script = out / "guest.sh"
            script.write_text(SCRIPT.format(cache=cache_root(), venv=venv, checks=checks))
            cmd = [*QEMU, "-kernel", str(vmlinuz), "-initrd", str(image),
                   "-append", f"console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check "
                              f"BCC_GUEST_SCRIPT={script} BCC_GUEST_OUT={out} "
                              + " ".join(f"BCC_GUEST_RO{i}={d}" for i, d in enumerate(shares)),
                   "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                              "multidevs=remap",
                   "-virtfs", f"local,path={out},mount_tag=out,security_model=none"]
            for i, d in enumerate(shares):  # init.c mounts them over the guest's own /tmp
                cmd += ["-virtfs", f"local,path={d},mount_tag=ro{i},security_model=none,"
                                   "readonly=on,multidevs=remap"]
            t0 = time.monotonic()
            with open(log, "wb") as f:
                try:
                    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                   timeout=TIMEOUT, check=False)
                except subprocess.TimeoutExpired:
                    fetch.log(f"{NAME}: timed out after {TIMEOUT:.0f} s")
            seconds = time.monotonic() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return log.read_text(errors="replace"), seconds, release
