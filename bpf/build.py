"""The one recipe that compiles bpf/process.bpf.c into process.bpf.o.

Both builds call it: the Makefile (`make bpf`, into the checkout) and the
wheel's build backend (setup.py, into the wheel), so the clang command line
exists once. vmlinux.h comes from the build machine's BTF; CO-RE relocates
the object to the running kernel at load time, so one object serves every
kernel with BTF.

    python3 bpf/build.py OUTPUT [--build-dir DIR]

Exit 1 with one line on stderr when clang or bpftool is missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

BPF_DIR = Path(__file__).resolve().parent
SOURCE = BPF_DIR / "process.bpf.c"
HEADERS = (BPF_DIR / "process.h",)
BTF = Path("/sys/kernel/btf/vmlinux")

# __TARGET_ARCH_* for bpf_tracing.h, by the machine the object is built for.
TARGET_ARCH = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "powerpc",
               "s390x": "s390", "riscv64": "riscv"}
TOOLS = {"clang": "clang llvm", "bpftool": "bpftool"}  # tool -> Debian packages


class BuildError(Exception):
    """The object cannot be built here; the message names the fix."""


def target_arch(machine: str | None = None) -> str:
    machine = machine or platform.machine()
    try:
        return TARGET_ARCH[machine]
    except KeyError:
        raise BuildError(f"BPF object: no __TARGET_ARCH_ known for machine {machine!r}") from None


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BuildError(f"BPF object: {name} not found on PATH; install it "
                         f"(Debian: apt-get install {TOOLS[name]})")
    return path


def vmlinux_h(build_dir: Path) -> Path:
    """build_dir/vmlinux.h, dumped from this machine's BTF once."""
    out = build_dir / "vmlinux.h"
    if out.exists():
        return out
    if not BTF.exists():
        raise BuildError(f"BPF object: {BTF} missing; build on a kernel with CONFIG_DEBUG_INFO_BTF=y")
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".h.tmp")
    with tmp.open("wb") as f:
        _run([_tool("bpftool"), "btf", "dump", "file", str(BTF), "format", "c"], stdout=f)
    tmp.replace(out)
    return out


def build(output: Path, build_dir: Path) -> Path:
    """Compile the object to output (atomically); return output."""
    missing = [name for name in TOOLS if shutil.which(name) is None]
    if missing:
        packages = " ".join(TOOLS[name] for name in missing)
        raise BuildError(f"BPF object: {' and '.join(missing)} not found on PATH; "
                         f"install them (Debian: apt-get install {packages})")
    header_dir = vmlinux_h(build_dir).parent
    cmd = [_tool("clang"), "-g", "-O2", "-Wall", "-target", "bpf",
           f"-D__TARGET_ARCH_{target_arch()}", f"-I{header_dir}", f"-I{BPF_DIR}",
           "-c", str(SOURCE), "-o", f"{output}.tmp"]
    output.parent.mkdir(parents=True, exist_ok=True)
    print(" ".join(cmd), file=sys.stderr)
    _run(cmd)
    os.replace(f"{output}.tmp", output)
    return output


def _run(cmd: list[str], **kwargs: object) -> None:
    try:
        subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"BPF object: {Path(cmd[0]).name} failed with exit {exc.returncode}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compile the collector's BPF object.")
    parser.add_argument("output", type=Path)
    parser.add_argument("--build-dir", type=Path, default=Path("build"),
                        help="where vmlinux.h is kept (default: build)")
    args = parser.parse_args(argv)
    try:
        build(args.output, args.build_dir)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
