"""A real Apicurio Registry 3.3.3 on loopback, for the Schema Registry tests.

Apicurio is the registry on Maven Central (Confluent's is not): its
Confluent-compatible REST API lives at ``/apis/ccompat/v7``, which is what
the collector and confluent-kafka's own ``AvroDeserializer`` talk to. The
app (``io.apicurio:apicurio-registry-app:3.3.3:tar.gz:all``) is fetched once
into the download cache and unpacked there; it is a Quarkus app started with
``java -jar quarkus-run.jar`` on Java 21+ (Temurin 25 here).

Set-up, as a production registry would be:
- HTTP basic auth (``quarkus.http.auth.basic``) with one embedded user in
  the role ``sr-admin``, and role-based authorization on;
- global compatibility BACKWARD (Confluent's default; Apicurio's own is
  none), set at every start through the ccompat API;
- storage in an H2 file under the test's folder, so a restart keeps the
  schemas and their ids (what ``restart()`` tests);
- optionally TLS only (no plain HTTP). Client certificates cannot be
  required: this build fixes ``quarkus.http.ssl.client-auth`` to NONE at
  build time (Quarkus says so at start and ignores the setting).

Usage::

    with ApicurioRegistry(tmp_path / "registry") as reg:
        reg.url          # http://127.0.0.1:PORT/apis/ccompat/v7 (no credentials)
        reg.auth_url     # the same with user:password@
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

try:
    from .cache import cache_dir
    from .maven import fetch_artifact, locked
    from .processes import stop_gracefully
    from .tls import TlsFiles
except ImportError:  # run as a script
    from cache import cache_dir  # type: ignore[no-redef,import-not-found,unused-ignore]
    from maven import fetch_artifact, locked  # type: ignore[no-redef,import-not-found,unused-ignore]
    from processes import stop_gracefully  # type: ignore[no-redef,import-not-found,unused-ignore]
    from tls import TlsFiles  # type: ignore[no-redef,import-not-found,unused-ignore]

VERSION = "3.3.3"
COORDS = f"io.apicurio:apicurio-registry-app:{VERSION}:tar.gz:all"
JAVA = os.environ.get("APICURIO_JAVA", "/usr/lib/jvm/temurin-25-jdk-amd64/bin/java")
CCOMPAT = "/apis/ccompat/v7"
USER = "siem"
PASSWORD = "registry-pa55word"


class RegistryStartError(RuntimeError):
    """The registry did not come up (the end of its log is in the message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_dir() -> Path:
    """The unpacked app in the download cache (fetched and unpacked once)."""
    root = cache_dir("apicurio")
    target = root / f"apicurio-registry-{VERSION}"
    if (target / "quarkus-run.jar").exists():
        return target
    archive = fetch_artifact(COORDS, "apicurio")
    with locked(root):
        if not (target / "quarkus-run.jar").exists():
            work = root / f".unpack-{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            with tarfile.open(archive) as tar:
                tar.extractall(work, filter="data")
            work.rename(target)
    return target


class ApicurioRegistry:
    """One registry process; see the module docstring."""

    def __init__(self, directory: Path, *, user: str = USER, password: str = PASSWORD,
                 port: int | None = None, tls: TlsFiles | None = None) -> None:
        self.directory = Path(directory)
        self.user, self.password = user, password
        self.port = port or free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.directory / "registry.log"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{CCOMPAT}"

    @property
    def v2_url(self) -> str:
        """Apicurio's own v2 API (what its 2.x Kafka serdes talk to)."""
        return f"{self.scheme}://127.0.0.1:{self.port}/apis/registry/v2"

    @property
    def auth_url(self) -> str:
        return f"{self.scheme}://{self.user}:{self.password}@127.0.0.1:{self.port}{CCOMPAT}"

    def _properties(self) -> dict[str, str]:
        props = {
            "quarkus.http.host": "127.0.0.1",
            "quarkus.http.port": str(self.port),
            # the management interface (health, metrics) is on at build time: loopback, free port
            "quarkus.management.host": "127.0.0.1",
            "quarkus.management.port": str(free_port()),
            "quarkus.log.level": "WARN",
            "quarkus.log.console.format": "%d{HH:mm:ss} %-5p [%c{2.}] %s%e%n",
            "apicurio.datasource.url": f"jdbc:h2:file:{self.directory / 'db' / 'registry'}",
            "apicurio.storage.snapshot.location": str(self.directory),
            "quarkus.http.auth.basic": "true",
            "quarkus.security.users.embedded.enabled": "true",
            "quarkus.security.users.embedded.plain-text": "true",
            f"quarkus.security.users.embedded.users.{self.user}": self.password,
            f"quarkus.security.users.embedded.roles.{self.user}": "sr-admin",
            "apicurio.auth.role-based-authorization": "true",
            "apicurio.auth.role-source": "token",
        }
        if self.tls is not None:
            props.update({
                "quarkus.http.ssl-port": str(self.port),
                "quarkus.http.port": str(free_port()),
                "quarkus.http.insecure-requests": "disabled",
                "quarkus.tls.key-store.pem.0.cert": str(self.tls.server_cert),
                "quarkus.tls.key-store.pem.0.key": str(self.tls.server_key),
            })
        return props

    def start(self, timeout: float = 90.0) -> ApicurioRegistry:
        app = app_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [JAVA, "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC",
                *(f"-D{k}={v}" for k, v in self._properties().items()),
                "-jar", str(app / "quarkus-run.jar")]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=self.directory, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RegistryStartError(f"apicurio exited with {self.proc.returncode}: "
                                         f"{self._log_tail()}")
            try:
                self.call("GET", "/subjects")
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RegistryStartError(f"apicurio not ready in {timeout}s: "
                                             f"{self._log_tail()}") from None
                time.sleep(0.3)
        self.call("PUT", "/config", {"compatibility": "BACKWARD"})
        return self

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_gracefully(self.proc, 30)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One ccompat call as the admin user (the tests' own look at the registry)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", "Basic " + token)
        req.add_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        context = None
        if self.tls is not None:
            import ssl

            context = ssl.create_default_context(cafile=str(self.tls.ca_pem))
        try:
            with urllib.request.urlopen(req, timeout=10, context=context) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response's socket
            raise

    def schema(self, schema_id: int) -> Any:
        return json.loads(self.call("GET", f"/schemas/ids/{schema_id}")["schema"])

    def versions(self, subject: str) -> list[int]:
        return list(self.call("GET", f"/subjects/{subject}/versions"))

    def __enter__(self) -> ApicurioRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
