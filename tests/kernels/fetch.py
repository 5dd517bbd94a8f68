"""Downloads for the kernel matrix, cached in cache_dir("kernels"): fetched once, reused.

- Kernels: `linux-image-amd64` of each Debian suite through a PRIVATE apt state
  (its own sources list, lists, cache and an empty dpkg status under the cache),
  so the host's apt sources and installed packages are never touched; the
  image package is only downloaded and unpacked (`dpkg-deb -x`).
- The guest root: `debootstrap --variant=minbase` of bookworm with python3,
  python3-venv and libbpf1, kept as a tarball.
- Wheels: the collector's dependencies as wheels (`pip download`), so the
  guest installs offline.

A lock file serialises runs that could fetch at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.cache import cache_dir

MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
ROOT_SUITE = "bookworm"
ROOT_PACKAGES = ("python3", "python3-venv", "libbpf1")


@dataclass(frozen=True)
class Suite:
    """A Debian suite whose kernel the matrix boots."""

    name: str
    label: str                 # e.g. "5.10", for people
    archives: tuple[str, ...]  # sources.list lines after "deb [signed-by=...]"


SUITES = (
    Suite("bullseye", "5.10", (f"{MIRROR} bullseye main", f"{SECURITY} bullseye-security main")),
    Suite("bookworm", "6.1", (f"{MIRROR} bookworm main", f"{SECURITY} bookworm-security main")),
    Suite("trixie", "6.12", (f"{MIRROR} trixie main", f"{SECURITY} trixie-security main")),
    Suite("trixie-backports", "7.x", (f"{MIRROR} trixie-backports main",)),
)


def root() -> Path:
    return cache_dir("kernels")


@contextmanager
def locked(name: str = "fetch") -> Iterator[None]:
    """One fetcher at a time across processes (two `make kernels` at once)."""
    root().mkdir(parents=True, exist_ok=True)
    with open(root() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def log(msg: str) -> None:
    print(f"kernels: {msg}", file=sys.stderr, flush=True)


# --- kernels -------------------------------------------------------------------------------

def _apt(suite: Suite, *args: str, cwd: Path | None = None) -> str:
    state = root() / "apt" / suite.name
    for sub in ("lists/partial", "cache/archives/partial", "etc/parts"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    sources = state / "etc" / "sources.list"
    sources.write_text("".join(f"deb [signed-by={KEYRING}] {a}\n" for a in suite.archives))
    status = state / "status"
    status.touch()
    opts = [
        f"-oDir::Etc::sourcelist={sources}", f"-oDir::Etc::sourceparts={state / 'etc' / 'parts'}",
        f"-oDir::Etc::preferences={state / 'etc' / 'preferences'}",
        f"-oDir::Etc::preferencesparts={state / 'etc' / 'parts'}",
        f"-oDir::State={state}", f"-oDir::State::Lists={state / 'lists'}",
        f"-oDir::State::status={status}", f"-oDir::Cache={state / 'cache'}",
        "-oAPT::Architecture=amd64", "-oAPT::Architectures::=amd64",
        "-oAcquire::Languages=none", "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root",
    ]
    tool = "apt-cache" if args[0] in ("show", "depends", "policy") else "apt-get"
    out = subprocess.run([tool, "-q", *opts, *args], check=True, cwd=cwd, text=True,
                         stdout=subprocess.PIPE)
    return out.stdout


def _image_package(suite: Suite) -> str:
    """The versioned image package linux-image-amd64 points at (highest version)."""
    shown = _apt(suite, "show", "linux-image-amd64")
    names = re.findall(r"^Depends:.*?\b(linux-image-[0-9][^ ,]*)", shown, re.M)
    if not names:
        raise RuntimeError(f"{suite.name}: linux-image-amd64 names no image package")
    versions = re.findall(r"^Version: (\S+)", shown, re.M)
    best = max(range(len(names)), key=lambda i: _dpkg_key(versions[i]) if i < len(versions) else [])
    return str(names[best])


def _dpkg_key(version: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", version)]


def _vmlinuz_from(suite: Suite, package: str, tmp: Path) -> tuple[Path, str, str]:
    """(vmlinuz, kernel release, .deb name)."""
    # Download package and unpack it; follow its linux-binary-* dependency (7.x splits the
    # image package into a shell and the binary) until a vmlinuz appears.
    for _ in range(3):
        log(f"{suite.name}: downloading {package}")
        folder = tmp / package
        folder.mkdir()
        _apt(suite, "download", package, cwd=folder)
        (deb,) = folder.glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(folder / "x")], check=True)
        # /boot/vmlinuz-<release> up to 6.x; /usr/lib/modules/<release>/vmlinuz from 7.x
        images = [(p, p.name.removeprefix("vmlinuz-")) for p in (folder / "x" / "boot").glob("vmlinuz-*")]
        images += [(p, p.parent.name) for p in (folder / "x" / "usr/lib/modules").glob("*/vmlinuz")]
        if images:
            return images[0][0], images[0][1], deb.name
        depends = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], check=True, text=True,
                                 stdout=subprocess.PIPE).stdout
        binary = re.search(r"\b(linux-binary-[^ ,]+)", depends)
        if binary is None:
            break
        package = binary.group(1)
    raise RuntimeError(f"{suite.name}: no vmlinuz in {package} or its linux-binary dependency")


def kernel(suite: Suite) -> tuple[Path, str]:
    """(vmlinuz, kernel release) of the suite, downloaded on first use."""
    dest = root() / "kernel" / suite.name
    vmlinuz = dest / "vmlinuz"
    release_file = dest / "release"
    if vmlinuz.exists() and release_file.exists():
        return vmlinuz, release_file.read_text().strip()
    with locked():
        if vmlinuz.exists() and release_file.exists():
            return vmlinuz, release_file.read_text().strip()
        log(f"{suite.name}: apt-get update (private state under {root() / 'apt'})")
        _apt(suite, "update")
        package = _image_package(suite)
        with tempfile.TemporaryDirectory(dir=root()) as tmp:
            image, release, deb = _vmlinuz_from(suite, package, Path(tmp))
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, vmlinuz)
            (dest / "package").write_text(deb + "\n")
            release_file.write_text(release + "\n")
    return vmlinuz, release_file.read_text().strip()


# --- the guest root ------------------------------------------------------------------------

def root_tarball() -> Path:
    """bookworm minbase + python3, python3-venv, libbpf1, as a tar (made once)."""
    key = hashlib.sha256(" ".join((ROOT_SUITE, *ROOT_PACKAGES)).encode()).hexdigest()[:12]
    tarball = root() / f"root-{ROOT_SUITE}-{key}.tar"
    if tarball.exists():
        return tarball
    with locked():
        if tarball.exists():
            return tarball
        log(f"debootstrap {ROOT_SUITE} minbase + {','.join(ROOT_PACKAGES)} (once; cached)")
        with tempfile.TemporaryDirectory(dir=root()) as tmp:
            target = Path(tmp) / "root"
            subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(ROOT_PACKAGES)}",
                            f"--keyring={KEYRING}", ROOT_SUITE, str(target), MIRROR],
                           check=True, stdout=subprocess.DEVNULL)
            for junk in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                         "var/cache/apt", "var/lib/apt/lists"):
                shutil.rmtree(target / junk, ignore_errors=True)
            subprocess.run(["tar", "-C", str(target), "--one-file-system", "--exclude=./proc/*",
                            "--exclude=./sys/*", "-cf", f"{tarball}.tmp", "."], check=True)
            Path(f"{tarball}.tmp").replace(tarball)
    return tarball


# --- wheels --------------------------------------------------------------------------------

def dependency_wheels(project_wheel: Path, python: str) -> Path:
    """A folder with project_wheel's dependencies as wheels for the guest's Python (3.11)."""
    folder = root() / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    with locked("wheels"):
        with tempfile.TemporaryDirectory() as scratch:
            offline = subprocess.run(
                [python, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-index",
                 "--find-links", str(folder), "-d", scratch, str(project_wheel)],
                capture_output=True)
        if offline.returncode != 0:
            log("pip download: the collector's dependencies as wheels (once; cached)")
            subprocess.run([python, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                            "--only-binary=:all:", "--python-version", "3.11",
                            "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
                            "--platform", "linux_x86_64", "-d", str(folder), str(project_wheel)],
                           check=True)
            for own in folder.glob("process_collector-*.whl"):
                own.unlink()
    return folder
