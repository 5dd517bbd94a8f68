"""A real OpenSearch 3.8 single node that pulls the collector's topic itself.

OpenSearch comes from Maven Central (`org.opensearch.distribution.
integ-test-zip:opensearch:3.8.0:zip`, no bundled JDK: Temurin 25 runs it).
The Kafka side is OpenSearch's own pull-based `ingestion-kafka` plugin
(`org.opensearch.plugin:ingestion-kafka:3.8.0`). Central has its jar but no
plugin zip, so it is packaged here: the jar, the dependencies its POM names
(kafka-clients, slf4j-api, snappy-java), lz4-java (the collector compresses
with lz4 by default; the POM leaves the codec out), a plugin descriptor and
a security policy (the plugin's Kafka client must open sockets), then
installed with `bin/opensearch-plugin install`. Downloads and the installed
node are cached; each run uses a hard-linked copy under its own folder.

OpenSearch refuses to run as root: the node runs as the unprivileged system
user `pc-opensearch` (created when missing), with a 512 MB heap, bound to
127.0.0.1 on free ports. Measured here: ready in 45-90 s on a loaded 2-core
machine, about 750 MB RSS.

An index pulls a topic when it is created with an `ingestion_source`
(deploy/siem/*-index.json): `mapper_type: raw_payload` makes each message
value the document; the node creates one poller per shard.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

try:
    from .cache import cache_dir
    from .maven import fetch_artifact, fetch_with_dependencies, locked
    from .processes import stop_gracefully
except ImportError:  # run as a script
    from cache import cache_dir  # type: ignore[no-redef,import-not-found,unused-ignore]
    from maven import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        fetch_artifact,
        fetch_with_dependencies,
        locked,
    )
    from processes import stop_gracefully  # type: ignore[no-redef,import-not-found,unused-ignore]

VERSION = "3.8.0"
COORDS = f"org.opensearch.distribution.integ-test-zip:opensearch:{VERSION}:zip"
PLUGIN = [f"org.opensearch.plugin:ingestion-kafka:{VERSION}", "org.lz4:lz4-java:1.8.0"]
JAVA_HOME = os.environ.get("OPENSEARCH_JAVA_HOME", "/usr/lib/jvm/temurin-25-jdk-amd64")
USER = "pc-opensearch"
REPO = Path(__file__).resolve().parent.parent.parent
INDEX_TEMPLATES = REPO / "deploy" / "siem"

DESCRIPTOR = f"""description=Pull-based ingestion from Apache Kafka (packaged by process-collector's tests)
version={VERSION}
name=ingestion-kafka
classname=org.opensearch.plugin.kafka.KafkaPlugin
java.version=21
opensearch.version={VERSION}
"""
POLICY = """grant {
  permission java.net.SocketPermission "*", "connect,resolve";
  permission java.lang.RuntimePermission "getClassLoader";
  permission java.lang.RuntimePermission "accessDeclaredMembers";
  permission java.lang.reflect.ReflectPermission "suppressAccessChecks";
  permission java.util.PropertyPermission "*", "read,write";
  permission javax.management.MBeanServerPermission "createMBeanServer";
  permission javax.management.MBeanPermission "*", "*";
  permission javax.management.MBeanTrustPermission "register";
};
"""


class OpenSearchError(RuntimeError):
    """The node could not be installed or started (its log tail is in the message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _java_env() -> dict[str, str]:
    return {**os.environ, "OPENSEARCH_JAVA_HOME": JAVA_HOME}


def install_dir() -> Path:
    """OpenSearch unpacked with the ingestion-kafka plugin installed (once, cached)."""
    root = cache_dir("opensearch")
    home = root / f"opensearch-{VERSION}"
    stamp = home / ".ingestion-kafka-installed"
    if stamp.exists():
        return home
    archive = fetch_artifact(COORDS, "opensearch")
    libs = fetch_with_dependencies(PLUGIN, "opensearch-ingestion-kafka")
    with locked(root):
        if stamp.exists():
            return home
        shutil.rmtree(home, ignore_errors=True)
        with zipfile.ZipFile(archive) as z:
            z.extractall(root)
        for script in (home / "bin").iterdir():
            script.chmod(0o755)
        plugin_zip = root / "ingestion-kafka.zip"
        with zipfile.ZipFile(plugin_zip, "w") as z:
            for jar in sorted(libs.glob("*.jar")):
                z.write(jar, jar.name)
            z.writestr("plugin-descriptor.properties", DESCRIPTOR)
            z.writestr("plugin-security.policy", POLICY)
        proc = subprocess.run([str(home / "bin" / "opensearch-plugin"), "install", "--batch",
                               plugin_zip.as_uri()], env=_java_env(), capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise OpenSearchError(f"opensearch-plugin install failed: {proc.stdout}{proc.stderr}")
        stamp.write_text(VERSION)
    return home


def ensure_user() -> int:
    """The unprivileged system user the node runs as (OpenSearch refuses root)."""
    try:
        return pwd.getpwnam(USER).pw_uid
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", USER], check=True, capture_output=True)
        return pwd.getpwnam(USER).pw_uid


class OpenSearchNode:
    """One single-node cluster under `directory`; see the module docstring."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        # every folder above it must be enterable by the node's user: not pytest's tmp_path
        self.directory = Path(directory)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _prepare(self) -> Path:
        """A run folder the node's user owns: a hard-linked copy of the install
        (the cache sits under root's home, which the user cannot enter), config,
        data and logs."""
        uid = ensure_user()
        home = self.directory / "opensearch"
        if not home.exists():
            try:
                shutil.copytree(install_dir(), home, copy_function=os.link, symlinks=True)
            except OSError:  # another file system: a plain copy (160 MB)
                shutil.rmtree(home, ignore_errors=True)
                shutil.copytree(install_dir(), home, symlinks=True)
        conf = self.directory / "config"
        shutil.rmtree(conf, ignore_errors=True)
        shutil.copytree(home / "config", conf)
        logs, data = self.directory / "logs", self.directory / "data"
        logs.mkdir(exist_ok=True)
        data.mkdir(exist_ok=True)
        with open(conf / "opensearch.yml", "a") as f:
            f.write(f"\ncluster.name: process-collector-test\nnode.name: node-1\n"
                    f"network.host: 127.0.0.1\nhttp.port: {self.port}\n"
                    f"transport.port: {free_port()}\ndiscovery.type: single-node\n"
                    f"path.data: {data}\npath.logs: {logs}\n")
        jvm = (conf / "jvm.options").read_text()
        jvm = jvm.replace("-Xms1g", "-Xms512m").replace("-Xmx1g", "-Xmx512m")
        jvm = jvm.replace("=logs/", f"={logs}/").replace("HeapDumpPath=data",
                                                         f"HeapDumpPath={data}")
        (conf / "jvm.options").write_text(jvm)
        self.directory.chmod(0o755)
        os.chown(self.directory, uid, -1)
        for path in (conf, logs, data):
            for p in [path, *path.rglob("*")]:
                os.chown(p, uid, -1)
        return home

    def start(self, timeout: float = 240.0) -> OpenSearchNode:
        home = self._prepare()
        env = {**_java_env(), "OPENSEARCH_PATH_CONF": str(self.directory / "config")}
        out = open(self.directory / "stdout.log", "ab")
        self.proc = subprocess.Popen(["runuser", "-u", USER, "--", str(home / "bin" / "opensearch")],
                                     cwd=self.directory, env=env, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise OpenSearchError(f"opensearch exited with {self.proc.returncode}: "
                                      f"{self._log_tail()}")
            try:
                if self.call("GET", "/_cluster/health?wait_for_status=yellow&timeout=5s"):
                    return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise OpenSearchError(f"opensearch not ready in {timeout}s: {self._log_tail()}")
            time.sleep(1.0)

    def _log_tail(self) -> str:
        parts = []
        for name in ("stdout.log", "logs/process-collector-test.log"):
            try:
                parts.append((self.directory / name).read_text(errors="replace")[-2000:])
            except OSError:
                pass
        return "\n".join(parts) or "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_gracefully(self.proc, 60, group=True)  # runuser and the JVM: this node's group
        self.proc = None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            exc.close()
            raise OpenSearchError(f"{method} {path}: {exc.code} {detail[:1000]}") from None

    def create_pull_index(self, index: str, shape: str, topic: str, bootstrap: str) -> None:
        """The index of deploy/siem/<shape>-index.json, pulling `topic` from `bootstrap`."""
        body = json.loads((INDEX_TEMPLATES / f"{shape}-index.json").read_text())
        body["settings"]["ingestion_source"]["param"] = {"topic": topic,
                                                        "bootstrap_servers": bootstrap}
        self.call("PUT", f"/{index}", body)

    def create_pushed_index(self, index: str, shape: str,
                            pipeline: dict[str, Any] | None = None) -> None:
        """The index of deploy/siem/<shape>-index.json without its ingestion
        source, for a consumer that indexes documents itself (the Avro path);
        `pipeline`, when given, is installed as the index's default pipeline."""
        body = json.loads((INDEX_TEMPLATES / f"{shape}-index.json").read_text())
        del body["settings"]["ingestion_source"]
        if pipeline is not None:
            self.call("PUT", f"/_ingest/pipeline/{index}", pipeline)
            body["settings"]["index.default_pipeline"] = index
        self.call("PUT", f"/{index}", body)

    def count(self, index: str, query: dict[str, Any]) -> int:
        self.call("POST", f"/{index}/_refresh")
        return int(self.call("POST", f"/{index}/_count", {"query": query})["count"])

    def __enter__(self) -> OpenSearchNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
