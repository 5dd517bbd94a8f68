"""The kernel matrix: the capture checks on Debian's kernels 5.10 to 7.x and on this host.

    python -m tests.kernels.matrix [--wheel dist/x.whl] [--kernels bullseye,host] [--jobs 2]

For each Debian suite (tests/kernels/fetch.py) it boots the suite's kernel
under qemu with TCG (KVM is not usable on these machines) with one
uncompressed initramfs as the whole root: bookworm minbase, the collector
pip-installed offline into /opt/collector from the project's wheel, and
tests/kernels/guest_checks.py run by /init, whose output comes back on the
serial console. The host's own kernel cannot be booted in qemu, so the same
checks run here directly, in a venv installed from the same wheel. A table
of the results is printed, tests/kernels/results.json and README's
"Supported kernels" table are rewritten, and the exit code is 1 if any
kernel failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.kernels import bcc_row, fetch, readme_table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BUILD = REPO / "build" / "kernels"
RESULTS = HERE / "results.json"
CHECKS = HERE / "guest_checks.py"
INIT = HERE / "init.sh"
GUEST_PYTHON = "/usr/bin/python3"  # bookworm's, in the guest and on this (bookworm) host
HOST = "host"
BCC = bcc_row.NAME  # the 6.1 kernel with the bcc backend and its own headers
# results.json and README order
ORDER = [fetch.SUITES[0].name, fetch.SUITES[1].name, BCC, *(s.name for s in fetch.SUITES[2:]), HOST]
# what `make kernels` (and CI) runs: not the bcc row, whose clang compiles take ~4-7 min under
# TCG (`make kernels-bcc` runs it; README's table keeps its last result)
DEFAULT = [k for k in ORDER if k != BCC]
GUEST_TIMEOUT = 420.0  # seconds per guest, boot to power-off: ~100 s under TCG, 300+ on a host at load 50
QEMU = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "2048",
        "-nographic", "-monitor", "none", "-no-reboot"]
# no_timer_check: a slow TCG guest on a busy host otherwise fails the IO-APIC timer check and panics
CMDLINE = "console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check"
LINE = re.compile(r"KCHECK (\S+)(?: (.*))?$")


@dataclass
class Result:
    """One kernel's outcome, as results.json and the README table record it."""

    kernel: str
    suite: str
    release: str = ""
    result: str = "fail"
    passed: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    load_failures: list[str] = field(default_factory=list)


def parse(kernel: str, suite: str, output: str, seconds: float) -> Result:
    """The checks' KCHECK lines (wherever the serial log put them) into a Result."""
    res = Result(kernel, suite, seconds=round(seconds, 1))
    summary = False
    for raw in output.splitlines():
        m = LINE.search(raw.rstrip("\r"))
        if not m:
            continue
        word, rest = m.group(1), (m.group(2) or "").strip()
        if word == "kernel":
            res.release = rest
        elif word == "FAIL":
            res.failures.append(rest)
        elif word == "load-failure":
            res.load_failures.append(rest)
        elif word == "SUMMARY":
            counts = re.match(r"(\d+) passed, (\d+) failed", rest)
            if counts:
                summary = True
                res.passed, res.failed = int(counts.group(1)), int(counts.group(2))
    if not summary:
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
        panic = [ln for ln in lines if "Kernel panic" in ln]
        res.failures.append("no summary line from the checks (timeout or crash); "
                            + (f"the guest said: {panic[0]}" if panic else f"last output: {lines[-3:]}"))
        res.failed = max(res.failed, 1)
    res.result = "pass" if summary and res.failed == 0 and not res.failures else "fail"
    return res


# --- what the guests and the host install ---------------------------------------------------

def project_wheel(given: Path | None) -> Path:
    if given is not None:
        return given
    wheels = sorted((REPO / "dist").glob("process_collector-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise SystemExit("kernels: no wheel in dist/; run `make wheel` (or `make kernels`)")
    return wheels[-1]


def wheel_of(checkout: Path) -> Path:
    """The wheel of another checkout's HEAD, built in a clone (its worktree is not written)."""
    clone = BUILD / "checkout"
    shutil.rmtree(clone, ignore_errors=True)
    BUILD.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", str(checkout), str(clone)], check=True)
    head = subprocess.run(["git", "-C", str(clone), "log", "-1", "--format=%h %s"], check=True,
                          text=True, stdout=subprocess.PIPE).stdout.strip()
    fetch.log(f"checkout {checkout}: {head[:100]}")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    "-w", str(clone / "dist"), str(clone)], check=True)
    (wheel,) = (clone / "dist").glob("process_collector-*.whl")
    return wheel


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def wheel_digest(wheel: Path) -> bytes:
    """The wheel's files, not its zip timestamps: a rebuilt identical wheel reuses the guest."""
    with zipfile.ZipFile(wheel) as zf:
        return b"".join(name.encode() + zf.read(name) for name in sorted(zf.namelist()))


def initramfs(wheel: Path, deps: Path) -> Path:
    """The guest's whole root as one uncompressed cpio (newc), rebuilt when an input changes."""
    tarball = fetch.root_tarball()
    key = _digest(wheel_digest(wheel), CHECKS.read_bytes(), INIT.read_bytes(), tarball.name.encode(),
                  " ".join(sorted(p.name for p in deps.glob("*.whl"))).encode())
    out = BUILD / f"initramfs-{key}.cpio"
    if out.exists():
        return out
    BUILD.mkdir(parents=True, exist_ok=True)
    for old in BUILD.glob("initramfs-*.cpio"):
        old.unlink()
    fetch.log(f"guest root: {tarball.name} + {wheel.name} -> {out.name}")
    root = BUILD / "root"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(root), "-xf", str(tarball)], check=True)
    staged = root / "tmp" / "wheels"
    shutil.copytree(deps, staged)
    shutil.copy2(wheel, staged / wheel.name)
    # pip inside the guest's own root and Python, offline: what a host without network does
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}  # no host PIP_*
    subprocess.run(["chroot", str(root), GUEST_PYTHON, "-m", "venv", "/opt/collector"], check=True, env=env)
    subprocess.run(["chroot", str(root), "/opt/collector/bin/pip", "install", "-q", "--no-index",
                    "--disable-pip-version-check", "--find-links", "/tmp/wheels",
                    f"/tmp/wheels/{wheel.name}"], check=True, env=env)
    shutil.rmtree(staged)
    (root / "opt" / "kcheck").mkdir(parents=True, exist_ok=True)
    shutil.copy2(CHECKS, root / "opt" / "kcheck" / "guest_checks.py")
    shutil.copy2(INIT, root / "init")
    (root / "init").chmod(0o755)
    console = root / "dev" / "console"
    if not console.exists():
        os.mknod(console, 0o600 | 0o020000, os.makedev(5, 1))
    files = subprocess.run(["find", ".", "-print0"], cwd=root, check=True, stdout=subprocess.PIPE).stdout
    with open(f"{out}.tmp", "wb") as f:
        subprocess.run(["cpio", "--null", "--create", "--format=newc", "--quiet"], cwd=root,
                       input=files, stdout=f, check=True)
    os.replace(f"{out}.tmp", out)
    shutil.rmtree(root)
    return out


def host_venv(wheel: Path, deps: Path, name: str = "host-venv") -> Path:
    """A venv on this host from the same wheel, for the host-kernel run (and the bcc row's)."""
    venv = BUILD / name
    stamp = venv / ".wheel"
    key = _digest(wheel_digest(wheel))
    if stamp.exists() and stamp.read_text() == key:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([GUEST_PYTHON, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--disable-pip-version-check",
                    "--find-links", str(deps), str(wheel)], check=True)
    stamp.write_text(key)
    return venv


# --- running ---------------------------------------------------------------------------------

def run_guest(suite: fetch.Suite, cpio: Path) -> Result:
    vmlinuz, _release = fetch.kernel(suite)
    BUILD.mkdir(parents=True, exist_ok=True)
    log = BUILD / f"serial-{suite.name}.log"
    log.unlink(missing_ok=True)
    t0 = time.monotonic()
    cmd = [*QEMU, "-kernel", str(vmlinuz), "-initrd", str(cpio), "-append", CMDLINE,
           "-serial", f"file:{log}"]
    try:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=GUEST_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pass  # subprocess.run killed qemu; the log says how far it got
    seconds = time.monotonic() - t0
    output = log.read_text(errors="replace") if log.exists() else ""
    res = parse(suite.label, suite.name, output, seconds)
    res.release = res.release or _release  # a guest that died early still names its kernel
    fetch.log(f"{suite.name}: {res.result} ({res.passed}/{res.passed + res.failed}) in {seconds:.0f} s")
    return res


def run_bcc(venv: Path) -> Result:
    """The bcc row: the checks with --backend bcc and header offsets on the 6.1 kernel."""
    output, seconds, release = bcc_row.run(venv, CHECKS, BUILD)
    res = parse(bcc_row.LABEL, bcc_row.NAME, output, seconds)
    res.release = res.release or release
    fetch.log(f"{bcc_row.NAME}: {res.result} ({res.passed}/{res.passed + res.failed}) in {seconds:.0f} s")
    return res


def run_host(venv: Path) -> Result:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kcheck-") as work:
        try:
            done = subprocess.run([str(venv / "bin" / "python"), str(CHECKS), "--collector",
                                   str(venv / "bin" / "collector"), "--work", work],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=GUEST_TIMEOUT, cwd=work, env=_clean_env(venv))
            output = done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
    (BUILD / "host.log").write_text(output)
    return parse(os.uname().release.split("-")[0].rsplit(".", 1)[0], HOST, output, time.monotonic() - t0)


def _clean_env(venv: Path) -> dict[str, str]:
    """Only the venv's bin and the system's: the installed collector, nothing from the checkout."""
    return {"PATH": f"{venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8"}


def table(results: list[Result]) -> str:
    rows = [("kernel", "suite", "release", "result", "checks", "seconds", "first failure")]
    for r in results:
        first = (r.load_failures or r.failures or [""])[0]
        rows.append((r.kernel, r.suite, r.release, r.result.upper(), f"{r.passed}/{r.passed + r.failed}",
                     f"{r.seconds:.0f}", first[:110]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def save(results: list[Result], wall: float) -> None:
    """Merge into results.json (a partial run keeps the other kernels' last results).

    wall_seconds is the default matrix's (`make kernels`): only a run of all of
    DEFAULT replaces it; each row keeps its own seconds.
    """
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"kernels": []}
    merged = {k["suite"]: k for k in old.get("kernels", [])}
    merged.update({r.suite: asdict(r) for r in results})
    full = set(DEFAULT) <= {r.suite for r in results}
    doc = {"wall_seconds": round(wall, 1) if full or "wall_seconds" not in old else old["wall_seconds"],
           "kernels": [merged[name] for name in ORDER if name in merged]}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the capture checks on every kernel.")
    parser.add_argument("--wheel", type=Path, help="the collector wheel (default: newest in dist/)")
    parser.add_argument("--kernels", default=",".join(DEFAULT),
                        help=f"comma-separated suites, {BCC!r} and/or 'host' (default: all but {BCC})")
    parser.add_argument("--jobs", type=int, default=2, help="guests booted at once (default 2)")
    parser.add_argument("--checkout", type=Path,
                        help="test another checkout's committed HEAD (e.g. /work/wt/bpfcompat): clone "
                             "it, build its wheel, run; results go to build/kernels/results-<name>.json "
                             "and this README is left alone")
    args = parser.parse_args(argv)
    wanted = [k.strip() for k in args.kernels.split(",") if k.strip()]
    known = {s.name: s for s in fetch.SUITES}
    unknown = [k for k in wanted if k not in ORDER]
    if unknown:
        print(f"kernels: unknown kernel {unknown[0]!r}; choose from {', '.join(ORDER)}",
              file=sys.stderr)
        return 2
    t0 = time.monotonic()
    wheel = wheel_of(args.checkout) if args.checkout else project_wheel(args.wheel)
    deps = fetch.dependency_wheels(wheel, sys.executable)
    suites = [known[k] for k in wanted if k in known]
    for suite in suites:
        fetch.kernel(suite)
    cpio = initramfs(wheel, deps) if suites else None
    results: list[Result] = []
    bcc_venv = host_venv(wheel, deps, "bcc-venv") if BCC in wanted else None
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        # the bcc row first: it is the longest, the other guests share the second worker meanwhile
        bcc_future = pool.submit(run_bcc, bcc_venv) if bcc_venv is not None else None
        futures = [pool.submit(run_guest, suite, cpio) for suite in suites]  # type: ignore[arg-type]
        if HOST in wanted:
            results.append(run_host(host_venv(wheel, deps)))
        results = [f.result() for f in futures] + results
        if bcc_future is not None:
            results.append(bcc_future.result())
    results.sort(key=lambda r: ORDER.index(r.suite))
    wall = time.monotonic() - t0
    print(table(results))
    for r in results:
        for line in r.load_failures:
            print(f"{r.kernel} ({r.suite}) load failure: {line}")
    print(f"kernel matrix: {sum(r.result == 'pass' for r in results)}/{len(results)} passed "
          f"in {wall:.0f} s (serial logs in {BUILD})")
    if args.checkout:
        out = BUILD / f"results-{args.checkout.resolve().name}.json"
        out.write_text(json.dumps({"checkout": str(args.checkout), "wall_seconds": round(wall, 1),
                                   "kernels": [asdict(r) for r in results]}, indent=2) + "\n")
        print(f"results: {out}")
    else:
        save(results, wall)
        readme_table.rewrite()
    return 0 if all(r.result == "pass" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
