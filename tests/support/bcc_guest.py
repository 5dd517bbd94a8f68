"""The bcc backend on the kernel its headers are for: Debian's 6.1 under qemu.

This host runs 6.18 while Debian's headers are 6.1, so here bcc can only run
with BTF offsets. The case bcc exists for — headers that match the running
kernel — needs that kernel: this boots Debian's linux-image of the same
release as the installed linux-headers-*-amd64 (downloaded once into the
cache, unpacked, never installed) under qemu (TCG), with this host's root
shared read-only over virtio-9p, so the guest runs the very same Python, venv,
bcc and header tree on the guest's kernel. tests/support/bcc_guest/init.c is
its PID 1; the script below is what runs inside.

Inside: the bcc capture tests with offsets from the headers (cross-checked
against the guest's BTF), the header-offset and claim-map exit tests,
`collector check --backend bcc`, `collector run --backend auto` (which
backend it picks).

The matrix's bcc row (tests/kernels/bcc_row.py, `make kernels-bcc`) boots the
same guest to run the matrix's checks with the installed wheel; this script
goes deeper (the pytest cases themselves) and takes far longer (~10-20 min).

Usage: .venv/bin/python -m tests.support.bcc_guest [--timeout 2400]
Results: printed, and the guest's logs in <cache>/bcc-guest/out-*/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.bcc_headers import header_trees
from tests.support.cache import cache_dir, cache_root

REPO = Path(__file__).resolve().parent.parent.parent
MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
           "9pnet", "9pnet_virtio", "netfs", "fscache", "9p")

GUEST_SCRIPT = """\
export HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export BCC_KERNEL_SOURCE={tree} PROCESS_COLLECTOR_CACHE={cache}
cd {repo}
echo "guest kernel $(uname -r)"
BCC_OFFSETS_UNDER_TEST=headers timeout 2400 .venv/bin/pytest -p no:cacheprovider -q -rA \\
    -k "bcc and not burst and not drops" tests/test_capture.py > {out}/capture.txt 2>&1
echo "capture rc=$?"
timeout 1200 .venv/bin/pytest -p no:cacheprovider -q -rA \\
    tests/test_probe_bcc.py::test_header_offsets_are_what_bcc_compiles > {out}/offsets.txt 2>&1
echo "offsets rc=$?"
BCC_OFFSETS_UNDER_TEST=headers timeout 2400 .venv/bin/pytest -p no:cacheprovider -q -rA \\
    -k "bcc and (burst or drops)" tests/test_capture.py > {out}/burst.txt 2>&1; echo "burst rc=$?"
timeout 1200 .venv/bin/pytest -p no:cacheprovider -q \\
    tests/test_probe_bcc.py::test_claim_path_reports_one_exit_per_thread_group \\
    tests/test_probe_bcc.py::test_claims_live_until_the_group_is_reaped \\
    > {out}/probe_bcc.txt 2>&1; echo "probe_bcc rc=$?"
.venv/bin/collector check --backend bcc > {out}/check.txt 2>&1; echo "check rc=$?"
.venv/bin/collector run --backend auto --duration 2 --no-procfs-events > /dev/null 2> {out}/auto.txt
echo "auto rc=$?"
"""


def run(*cmd: str, **kw: object) -> str:
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, **kw).stdout  # type: ignore[call-overload, no-any-return]


def kernel_and_modules(release: str) -> tuple[Path, Path]:
    """vmlinuz and the modules folder of linux-image-<release>, the version of its headers."""
    version = run("dpkg-query", "-W", "-f", "${Version}", f"linux-headers-{release}")
    root = cache_dir("bcc-guest") / f"{release}_{version}"
    unpacked = root / "x"
    if not (unpacked / "boot" / f"vmlinuz-{release}").exists():
        root.mkdir(parents=True, exist_ok=True)
        run("apt-get", "download", f"linux-image-{release}={version}", cwd=root)
        (deb,) = root.glob("linux-image-*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    return unpacked / "boot" / f"vmlinuz-{release}", unpacked / "lib" / "modules" / release


def initramfs(modules_dir: Path, work: Path) -> Path:
    staging = work / "initramfs"
    (staging / "modules").mkdir(parents=True)
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", str(staging / "init"),
                    str(REPO / "tests" / "support" / "bcc_guest" / "init.c")], check=True)
    by_name = {p.stem: p for p in modules_dir.rglob("*.ko")}
    for name in MODULES:
        (staging / "modules" / f"{name}.ko").write_bytes(by_name[name].read_bytes())
    files = "\n".join(["init", "modules", *(f"modules/{n}.ko" for n in MODULES)]) + "\n"
    image = work / "initramfs.cpio"
    with open(image, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], input=files.encode(), stdout=f,
                       cwd=staging, check=True)
    return image


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=2400.0)
    args = ap.parse_args()
    trees = [t for t in header_trees() if t.name.endswith("-amd64")]
    if not trees:
        print("bcc_guest: no header tree; run `make setup`", file=sys.stderr)
        return 2
    tree = trees[-1]
    vmlinuz, modules = kernel_and_modules(tree.name)
    out = Path(tempfile.mkdtemp(prefix="out-", dir=cache_dir("bcc-guest")))
    with tempfile.TemporaryDirectory() as work:
        image = initramfs(modules, Path(work))
        script = out / "guest.sh"
        script.write_text(GUEST_SCRIPT.format(tree=tree, repo=REPO, out=out, cache=cache_root()))
        serial = out / "serial.log"
        t0 = time.monotonic()
        cmd = [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-smp", "2", "-m", "4096", "-nographic", "-no-reboot",
            "-kernel", str(vmlinuz), "-initrd", str(image),
            "-append", f"console=ttyS0 panic=-1 quiet BCC_GUEST_SCRIPT={script} BCC_GUEST_OUT={out}",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={out},mount_tag=out,security_model=none",
        ]
        with open(serial, "wb") as log:
            try:
                subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               timeout=args.timeout, check=False)
            except subprocess.TimeoutExpired:
                print(f"bcc_guest: timed out after {args.timeout:.0f} s", file=sys.stderr)
    print(f"bcc_guest: {time.monotonic() - t0:.0f} s; logs in {out}")
    text = serial.read_text(errors="replace")
    lines = [line for line in text.splitlines()
             if line.startswith(("guest kernel", "check rc", "auto rc", "capture rc", "probe_bcc rc",
                                 "offsets rc", "burst rc", "BCC_GUEST"))]
    print("\n".join(lines))
    for name in ("check.txt", "auto.txt"):
        if (out / name).exists():
            print(f"--- {name}\n{(out / name).read_text()}")
    for name in ("capture.txt", "offsets.txt", "burst.txt", "probe_bcc.txt"):
        if (out / name).exists():
            print(f"--- {name} (tail)\n" + "\n".join((out / name).read_text().splitlines()[-15:]))
    ok = all(f"{what} rc=0" in text for what in ("check", "capture", "offsets", "burst", "probe_bcc"))
    return 0 if ok else 1


if __name__ == "__main__":
    os.umask(0o022)
    raise SystemExit(main())
