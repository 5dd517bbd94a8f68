"""Fetch artifacts from Maven Central into the download cache, once.

The real servers the tests run (Apicurio Registry, OpenSearch, its Kafka
ingestion plugin) are published on Maven Central, the one registry this
machine reaches; Maven itself (installed by `make setup`) downloads them, so
proxies and mirrors configured for Maven apply. Each artifact is copied into
``cache_dir(name)`` under an exclusive lock (two test sessions may start at
once) and kept there: a fresh checkout reuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

try:
    from .cache import cache_dir
except ImportError:  # run as a script
    from cache import cache_dir  # type: ignore[no-redef,import-not-found,unused-ignore]


class FetchError(RuntimeError):
    """Maven could not fetch an artifact (its log is in the message)."""


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold ``directory/.lock`` exclusively (blocks while another run fetches)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _mvn(*args: str) -> None:
    if shutil.which("mvn") is None:
        raise FetchError("mvn not found: run `make setup` (it installs maven)")
    proc = subprocess.run(["mvn", "-B", "-q", *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise FetchError(f"mvn {' '.join(args)} failed:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")


def fetch_artifact(coords: str, name: str) -> Path:
    """The cached file of ``group:artifact:version[:packaging[:classifier]]``.

    Downloaded into a temporary folder and renamed into place, so a fetch
    cut short never leaves a file that looks complete."""
    _group, artifact, version, *rest = coords.split(":")
    packaging = rest[0] if rest else "jar"
    classifier = rest[1] if len(rest) > 1 else ""
    filename = f"{artifact}-{version}{'-' + classifier if classifier else ''}.{packaging}"
    directory = cache_dir(name)
    target = directory / filename
    if target.exists():
        return target
    with locked(directory):
        if target.exists():
            return target
        with tempfile.TemporaryDirectory(dir=directory, prefix=".fetch.") as work:
            _mvn("dependency:copy", f"-Dartifact={coords}", f"-DoutputDirectory={work}")
            got = Path(work) / filename
            if not got.exists():
                raise FetchError(f"mvn fetched {coords} but {filename} is not in its output")
            got.rename(target)
    return target


def fetch_with_dependencies(coords: list[str], name: str, excludes: tuple[str, ...] = ()) -> Path:
    """A folder holding the jars of ``coords`` and their runtime dependencies
    (resolved by Maven from the artifacts' POMs), e.g. for a plugin."""
    directory = cache_dir(name)
    libs = directory / "libs"
    stamp = libs / ".complete"
    want = " ".join(coords)
    if stamp.exists() and stamp.read_text() == want:
        return libs
    with locked(directory):
        if stamp.exists() and stamp.read_text() == want:
            return libs
        with tempfile.TemporaryDirectory(dir=directory, prefix=".fetch.") as work:
            deps = "\n".join(
                f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
                f"<version>{v}</version></dependency>"
                for g, a, v in (c.split(":")[:3] for c in coords))
            pom = Path(work) / "pom.xml"
            pom.write_text(
                '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0'
                "</modelVersion><groupId>local.process-collector</groupId><artifactId>fetch"
                "</artifactId><version>1</version><packaging>pom</packaging>"
                f"<dependencies>{deps}</dependencies></project>")
            out = Path(work) / "libs"
            args = ["-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={out}",
                    "-DincludeScope=runtime"]
            if excludes:
                args.append("-DexcludeGroupIds=" + ",".join(excludes))
            _mvn(*args)
            (out / ".complete").write_text(want)
            if libs.exists():
                shutil.rmtree(libs)
            out.rename(libs)
    return libs
