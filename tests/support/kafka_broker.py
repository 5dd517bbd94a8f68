"""A real single-node Apache Kafka broker (KRaft, broker+controller) for tests.

Why this exists: the collector's Kafka exporter must be tested against a real
broker (acks, idempotence, SASL/TLS, broker outages), and this machine has no
Docker and no network except package registries. ``fetch_kafka.sh`` pulls the
Kafka jars from Maven Central; this module writes a ``server.properties``,
formats the KRaft storage once, and runs ``kafka.Kafka`` as a child process.

Stdlib only, so it can be imported from any test environment::

    with KafkaBroker(tmp_path / "kafka") as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap})

or run for manual trials of the collector::

    python tests/support/kafka_broker.py start --dir /tmp/kafka [--port 9092]
"""

from __future__ import annotations

import argparse
import atexit
import base64
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

if __package__:
    from . import tls
    from .cache import cache_dir
else:  # run as a script: this file's directory is on sys.path
    import tls  # type: ignore[no-redef,import-not-found,unused-ignore]
    from cache import cache_dir  # type: ignore[no-redef,import-not-found,unused-ignore]

__all__ = [
    "SASL_PASSWORD",
    "SASL_USERNAME",
    "KafkaBroker",
    "KafkaBrokerError",
    "default_cache_dir",
    "fetch_kafka",
]

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
FETCH_SCRIPT = HERE / "fetch_kafka.sh"

# The one user on the SASL_SSL listener, for PLAIN and SCRAM-SHA-256/512.
SASL_USERNAME = "collector"
SASL_PASSWORD = "collector-secret"

NODE_ID = 1
# Kafka 4.x: broker entry point and the KRaft storage formatter (Scala, in
# kafka_2.13.jar; the same class kafka-storage.sh runs).
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
STARTED_MARKER = "Kafka Server started"
CONFIG_COMMAND_MAIN = "kafka.admin.ConfigCommand"
TOPIC_COMMAND_MAIN = "org.apache.kafka.tools.TopicCommand"

ConfigValue = str | int | float | bool


class KafkaBrokerError(RuntimeError):
    """The broker could not be fetched, formatted, started or stopped."""


def default_cache_dir() -> Path:
    """Where the Kafka jars are cached: $KAFKA_CACHE_DIR or the download cache's ``kafka``."""
    env = os.environ.get("KAFKA_CACHE_DIR")
    return Path(env) if env else cache_dir("kafka")


def fetch_kafka(cache_dir: Path | str | None = None) -> Path:
    """Ensure the Kafka jars are in ``cache_dir/libs`` (idempotent); return libs dir."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    libs = cache / "libs"
    if not (libs / ".complete").is_file():
        proc = subprocess.run(
            ["bash", str(FETCH_SCRIPT), str(cache)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.returncode != 0:
            raise KafkaBrokerError(f"fetch_kafka.sh failed (exit {proc.returncode}):\n{proc.stdout}")
    return libs


def _free_port() -> int:
    """Ask the kernel for an unused loopback port (small race, fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    exe = shutil.which("java")
    if exe is None:
        raise KafkaBrokerError("java (>= 17) not found on PATH")
    return exe


def _prop_value(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # .properties treats backslash as an escape and newlines as separators.
    return str(value).replace("\\", "\\\\").replace("\n", "\\n")


def _new_cluster_id() -> str:
    """Kafka cluster ids are a UUID in unpadded URL-safe base64 (22 chars). Not one
    that starts with '-': kafka-storage would read it as an option (1 start in 64)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _metadata_broker_ids(host: str, port: int, timeout: float = 2.0) -> list[int]:
    """Send a raw Metadata v4 request and return the node ids of live brokers.

    A KRaft broker only lists itself once it is registered and unfenced, so
    this is a stronger readiness signal than an open port. v4 is the oldest
    Metadata version Kafka 4 still serves; the request is not "flexible", so
    plain big-endian framing is enough.
    """
    client_id = b"readiness-probe"
    header = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    body = struct.pack(">i?", 0, False)  # no topics, do not auto-create
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)

        def read(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                chunk = sock.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError("broker closed the connection")
                buf += chunk
            return buf

        (size,) = struct.unpack(">i", read(4))
        data = read(size)
    # correlation id, throttle_time_ms, brokers array
    _corr, _throttle, count = struct.unpack_from(">iii", data, 0)
    off, ids = 12, []
    for _ in range(count):
        (node_id,) = struct.unpack_from(">i", data, off)
        off += 4
        (hlen,) = struct.unpack_from(">h", data, off)
        off += 2 + hlen + 4  # host, port
        (rlen,) = struct.unpack_from(">h", data, off)
        off += 2 + max(rlen, 0)  # nullable rack
        ids.append(node_id)
    return ids


def _tls_handshake_ok(port: int, ca_pem: Path, timeout: float = 2.0) -> bool:
    """True once the SASL_SSL listener completes a verified TLS handshake."""
    ctx = ssl.create_default_context(cafile=str(ca_pem))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                return True
    except (OSError, ssl.SSLError):
        return False


# Running brokers, held strongly so the atexit hook can always reach them.
_LIVE: set[KafkaBroker] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Never leave a JVM behind when a test run ends without stopping its broker."""
    for broker in list(_LIVE):
        broker.kill()


class KafkaBroker:
    """One combined broker+controller KRaft node on 127.0.0.1.

    Ports are picked once and kept across ``stop()``/``start()``/``restart()``
    so clients can reconnect to the same address after an outage; the data
    directory (``workdir/data``) is formatted once and reused.
    """

    def __init__(
        self,
        workdir: Path | str,
        port: int | None = None,
        sasl_ssl: bool = False,
        extra_config: Mapping[str, ConfigValue] | None = None,
        *,
        auto_create_topics: bool = True,
        message_max_bytes: int | None = None,
        num_partitions: int = 1,
        sasl_port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
        cache_dir: Path | str | None = None,
        die_with_parent: bool = True,
        node_id: int = NODE_ID,
        quorum_voters: str | None = None,
        cluster_id: str | None = None,
        replication_factor: int = 1,
        jvm_options: Sequence[str] = (),
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.port = port or _free_port()
        self.controller_port = controller_port or _free_port()
        self.sasl_ssl = sasl_ssl
        self.sasl_port: int | None = (sasl_port or _free_port()) if sasl_ssl else None
        self.extra_config: dict[str, ConfigValue] = dict(extra_config or {})
        self.auto_create_topics = auto_create_topics
        self.message_max_bytes = message_max_bytes
        self.num_partitions = num_partitions
        self.heap = heap
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.die_with_parent = die_with_parent
        # One node of a cluster (KafkaCluster) differs from the single broker only in
        # these: its id, the voters of the shared quorum, the shared cluster id and the
        # replication of every topic (internal ones included).
        self.node_id = node_id
        self.quorum_voters = quorum_voters or f"{node_id}@127.0.0.1:{self.controller_port}"
        self.cluster_id = cluster_id
        self.replication_factor = replication_factor
        self.jvm_options = list(jvm_options)
        self.min_insync = 1 if replication_factor == 1 else 2
        self._log_offset = 0
        self._deadline = 0.0
        self._t0 = 0.0

        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "server.properties"
        self.log_path = self.workdir / "broker.log"
        self.tls_dir = self.workdir / "tls"
        self._tls: tls.TlsFiles | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self.last_start_seconds: float | None = None
        self.last_exit_code: int | None = None

    # ----------------------------------------------------------------- API

    @property
    def bootstrap(self) -> str:
        """PLAINTEXT bootstrap address, e.g. ``127.0.0.1:39123``."""
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        """SASL_SSL bootstrap address (only with ``sasl_ssl=True``)."""
        if self.sasl_port is None:
            raise KafkaBrokerError("broker was created without sasl_ssl=True")
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def ca_pem_path(self) -> Path:
        """CA certificate that signed the broker certificate (librdkafka ssl.ca.location)."""
        if not self.sasl_ssl:
            raise KafkaBrokerError("broker was created without sasl_ssl=True")
        return self._ensure_tls().ca_pem

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client_config(self, mechanism: str | None = None) -> dict[str, str]:
        """librdkafka-style settings to reach this broker.

        ``mechanism=None`` gives PLAINTEXT; ``"PLAIN"``, ``"SCRAM-SHA-256"``
        or ``"SCRAM-SHA-512"`` give the SASL_SSL listener with the test user.
        """
        if mechanism is None:
            return {"bootstrap.servers": self.bootstrap}
        return {
            "bootstrap.servers": self.sasl_bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": mechanism,
            "sasl.username": SASL_USERNAME,
            "sasl.password": SASL_PASSWORD,
            "ssl.ca.location": str(self.ca_pem_path),
        }

    def start(self, timeout: float = 60) -> KafkaBroker:
        """Fetch jars if needed, format storage on first use, launch, wait until ready.

        ``timeout`` covers formatting and startup, not the one-off jar fetch.
        """
        if self.is_running():
            return self
        self.launch(timeout)
        return self.wait_ready()

    def launch(self, timeout: float = 60) -> None:
        """Start the JVM without waiting for it. A cluster node is only ready once a
        quorum of controllers runs, so KafkaCluster launches every node first."""
        if self.is_running():
            return
        self._t0 = time.monotonic()
        libs = fetch_kafka(self.cache_dir)
        self._deadline = time.monotonic() + timeout
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.sasl_ssl:
            self._ensure_tls()
        self._write_config()
        self._write_log4j()
        self._format_storage(libs)

        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log_file = open(self.log_path, "ab")
        cmd = [
            _java(),
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseSerialGC",  # fewer GC threads on a small test machine
            *self.jvm_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.workdir}",
            "-cp",
            f"{libs}/*",
            BROKER_MAIN,
            str(self.config_path),
        ]
        # If the Python process dies without cleanup (SIGKILL, crash), the
        # kernel sends SIGTERM to the broker so no JVM is left behind. The
        # signal fires when the *thread* that started the broker exits, so
        # pass die_with_parent=False when starting from a short-lived thread.
        setpriv = shutil.which("setpriv") if self.die_with_parent else None
        if setpriv:
            cmd = [setpriv, "--pdeathsig", "TERM", "--", *cmd]
        self._proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        _LIVE.add(self)

    def wait_ready(self) -> KafkaBroker:
        """Wait (until launch's deadline) for the launched node to serve clients."""
        try:
            self._wait_ready(self._log_offset, deadline=self._deadline)
            if self.sasl_ssl:
                self._ensure_scram_users()
        except BaseException:
            self.kill()
            raise
        self.last_start_seconds = time.monotonic() - self._t0
        return self

    def stop(self, timeout: float = 30) -> None:
        """Graceful shutdown (SIGTERM); SIGKILL if it takes longer than ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGCONT)  # in case it was paused
                proc.terminate()
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                pass
        self.last_exit_code = proc.returncode
        self._cleanup()

    def kill(self) -> None:
        """Hard stop (SIGKILL): simulates a broker crash; data on disk survives."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            proc.wait()
        self.last_exit_code = proc.returncode
        self._cleanup()

    def restart(self, timeout: float = 60, downtime: float = 0.0) -> KafkaBroker:
        """Stop, optionally stay down for ``downtime`` seconds, start on the same ports and data."""
        self.stop()
        if downtime > 0:
            time.sleep(downtime)
        return self.start(timeout=timeout)

    def pause(self) -> None:
        """SIGSTOP the broker: connections stay open but nothing answers (hung broker)."""
        if self.is_running():
            assert self._proc is not None
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause()``."""
        if self.is_running():
            assert self._proc is not None
            self._proc.send_signal(signal.SIGCONT)

    def run_tool(self, main_class: str, *args: str, timeout: float = 120) -> str:
        """Run a Kafka CLI class (e.g. TopicCommand) from the cached jars; return its output.

        Lets tests administer the broker with no Kafka client library.
        """
        libs = fetch_kafka(self.cache_dir)
        if not (self.workdir / "log4j2-tools.properties").is_file():
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._write_log4j()
        cmd = [
            _java(),
            "-Xmx256m",
            "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2-tools.properties'}",
            "-cp",
            f"{libs}/*",
            main_class,
            *args,
        ]
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise KafkaBrokerError(
                f"{main_class} {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout}"
            )
        return proc.stdout

    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, ConfigValue] | None = None
    ) -> None:
        """Create a topic (needed when ``auto_create_topics=False``); ~2 s of JVM startup."""
        args = [
            "--bootstrap-server",
            self.bootstrap,
            "--create",
            "--if-not-exists",
            "--topic",
            name,
            "--partitions",
            str(partitions),
            "--replication-factor",
            str(self.replication_factor),
        ]
        for key, value in (config or {}).items():
            args += ["--config", f"{key}={_prop_value(value)}"]
        self.run_tool(TOPIC_COMMAND_MAIN, *args)

    def log_tail(self, lines: int = 60) -> str:
        """Last lines of the broker log, for assertion messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        extra = f", sasl_ssl={self.sasl_bootstrap}" if self.sasl_ssl else ""
        return f"KafkaBroker({self.bootstrap}{extra}, {state}, workdir={self.workdir})"

    # ------------------------------------------------------------ internals

    def _ensure_tls(self) -> tls.TlsFiles:
        if self._tls is None:
            self._tls = tls.ensure_tls_material(self.tls_dir)
        return self._tls

    def _properties(self) -> dict[str, ConfigValue]:
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}", f"CONTROLLER://127.0.0.1:{self.controller_port}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        if self.sasl_ssl:
            listeners.append(f"SASL_SSL://127.0.0.1:{self.sasl_port}")
            advertised.append(f"SASL_SSL://127.0.0.1:{self.sasl_port}")
            protocols.append("SASL_SSL:SASL_SSL")
        props: dict[str, ConfigValue] = {
            "process.roles": "broker,controller",
            "node.id": self.node_id,
            # Static quorum (ourselves, or the cluster's voters); format needs no --standalone.
            "controller.quorum.voters": self.quorum_voters,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(self.data_dir),
            "num.partitions": self.num_partitions,
            "auto.create.topics.enable": self.auto_create_topics,
            # Single node: every internal topic must fit on one replica. A cluster
            # node: three replicas, two of them in sync for acks=all, and never a
            # replica that was out of sync elected leader (it would lose acked data).
            "default.replication.factor": self.replication_factor,
            "min.insync.replicas": self.min_insync,
            "unclean.leader.election.enable": False,
            "offsets.topic.replication.factor": self.replication_factor,
            "transaction.state.log.replication.factor": self.replication_factor,
            "transaction.state.log.min.isr": self.min_insync,
            "share.coordinator.state.topic.replication.factor": self.replication_factor,
            "share.coordinator.state.topic.min.isr": self.min_insync,
            # Fewer internal partitions and no rebalance delay: faster tests.
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.num.partitions": 1,
            "share.coordinator.state.topic.num.partitions": 1,
            "group.initial.rebalance.delay.ms": 0,
            # After kill() the controller refuses the new broker incarnation
            # until the old session expires (default 9 s); a shorter session
            # makes kill-and-restart tests start in ~6 s instead of ~12 s.
            "broker.session.timeout.ms": 6000,
            "broker.heartbeat.interval.ms": 1000,
            "num.network.threads": 2,
            "num.io.threads": 4,
        }
        if self.message_max_bytes is not None:
            props["message.max.bytes"] = self.message_max_bytes
            # Keep replication/fetch limits consistent with a raised limit.
            props["replica.fetch.max.bytes"] = max(self.message_max_bytes, 1048576)
        if self.sasl_ssl:
            files = self._ensure_tls()
            lname = "listener.name.sasl_ssl"
            props.update(
                {
                    "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
                    f"{lname}.plain.sasl.jaas.config": (
                        "org.apache.kafka.common.security.plain.PlainLoginModule required "
                        f'user_{SASL_USERNAME}="{SASL_PASSWORD}";'
                    ),
                    # SCRAM credentials live in the metadata log (added at format time).
                    f"{lname}.scram-sha-256.sasl.jaas.config": (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                    ),
                    f"{lname}.scram-sha-512.sasl.jaas.config": (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                    ),
                    f"{lname}.ssl.keystore.type": "PEM",
                    f"{lname}.ssl.keystore.location": str(files.server_keystore_pem),
                    f"{lname}.ssl.truststore.type": "PEM",
                    f"{lname}.ssl.truststore.location": str(files.ca_pem),
                }
            )
        props.update(self.extra_config)
        return props

    def _write_config(self) -> None:
        lines = ["# Written by tests/support/kafka_broker.py; regenerated on every start."]
        lines += [f"{k}={_prop_value(v)}" for k, v in self._properties().items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _write_log4j(self) -> None:
        # Kafka 4 logs through log4j2; everything goes to stdout, which
        # start() appends to broker.log. log4j's own shutdown hook is off so
        # the broker's shutdown sequence is still logged after SIGTERM.
        for name, level in (("log4j2.properties", "INFO"), ("log4j2-tools.properties", "WARN")):
            self._write_log4j_file(self.workdir / name, level)

    @staticmethod
    def _write_log4j_file(path: Path, root_level: str) -> None:
        path.write_text(
            "\n".join(
                [
                    "status = warn",
                    "shutdownHook = disable",
                    "appender.out.type = Console",
                    "appender.out.name = OUT",
                    "appender.out.layout.type = PatternLayout",
                    "appender.out.layout.pattern = [%d] %p %m (%c)%n",
                    f"rootLogger.level = {root_level}",
                    "rootLogger.appenderRef.out.ref = OUT",
                    "logger.state.name = state.change.logger",
                    "logger.state.level = WARN",
                    "logger.request.name = kafka.request.logger",
                    "logger.request.level = WARN",
                    "logger.authorizer.name = kafka.authorizer.logger",
                    "logger.authorizer.level = WARN",
                ]
            )
            + "\n"
        )

    def _format_storage(self, libs: Path) -> None:
        """Format the KRaft log dir once; later starts reuse it (data survives restarts)."""
        if (self.data_dir / "meta.properties").is_file():
            return
        cmd = [
            _java(),
            "-Xmx256m",
            "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2-tools.properties'}",
            "-cp",
            f"{libs}/*",
            STORAGE_TOOL_MAIN,
            "format",
            "--config",
            str(self.config_path),
            "--cluster-id",
            self.cluster_id or _new_cluster_id(),
            "--ignore-formatted",
        ]
        if self.sasl_ssl:
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                cmd += ["--add-scram", f"{mech}=[name={SASL_USERNAME},password={SASL_PASSWORD}]"]
        proc = subprocess.run(
            cmd,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        (self.workdir / "format.log").write_text(proc.stdout)
        if proc.returncode != 0:
            raise KafkaBrokerError(f"kafka storage format failed (exit {proc.returncode}):\n{proc.stdout}")
        if self.sasl_ssl:
            self._scram_marker.write_text(f"{SASL_USERNAME}\n")

    @property
    def _scram_marker(self) -> Path:
        return self.workdir / "scram-users-added"

    def _ensure_scram_users(self) -> None:
        """Add the SCRAM user to a data dir first formatted without sasl_ssl.

        Format-time ``--add-scram`` only works on a fresh dir; for a reused
        one the credentials go in through the admin API (ConfigCommand).
        """
        if self._scram_marker.is_file():
            return
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            self.run_tool(
                CONFIG_COMMAND_MAIN,
                "--bootstrap-server",
                self.bootstrap,
                "--alter",
                "--entity-type",
                "users",
                "--entity-name",
                SASL_USERNAME,
                "--add-config",
                f"{mech}=[password={SASL_PASSWORD}]",
            )
        self._scram_marker.write_text(f"{SASL_USERNAME}\n")

    def _wait_ready(self, log_offset: int, deadline: float) -> None:
        """Ready = log says started, the broker lists itself in Metadata, TLS works."""
        assert self._proc is not None
        started = False
        while True:
            if self._proc.poll() is not None:
                raise KafkaBrokerError(
                    f"kafka exited with {self._proc.returncode} during startup; log tail:\n{self.log_tail()}"
                )
            if not started:
                with open(self.log_path, "rb") as f:
                    f.seek(log_offset)
                    started = STARTED_MARKER.encode() in f.read()
            if started:
                try:
                    ready = self.node_id in _metadata_broker_ids("127.0.0.1", self.port)
                except (OSError, struct.error):
                    ready = False
                if ready and self.sasl_ssl:
                    assert self.sasl_port is not None
                    ready = _tls_handshake_ok(self.sasl_port, self._ensure_tls().ca_pem)
                if ready:
                    return
            if time.monotonic() > deadline:
                raise KafkaBrokerError(f"kafka not ready in time; log tail:\n{self.log_tail()}")
            time.sleep(0.2)

    def _cleanup(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        _LIVE.discard(self)


# --------------------------------------------------------------------- CLI


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a local single-node Kafka broker for trying the collector."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download Kafka jars into the cache (idempotent)")
    p_fetch.add_argument("--cache-dir", type=Path, default=None)
    p_start = sub.add_parser("start", help="start a broker and stay in the foreground until Ctrl-C")
    p_start.add_argument("--dir", type=Path, required=True, help="working dir (config, data, logs)")
    p_start.add_argument("--port", type=int, default=None, help="PLAINTEXT port (default: a free one)")
    p_start.add_argument("--sasl-ssl", action="store_true", help="also open a SASL_SSL listener")
    p_start.add_argument("--sasl-port", type=int, default=None)
    p_start.add_argument("--no-auto-create", action="store_true", help="disable topic auto-creation")
    p_start.add_argument("--partitions", type=int, default=1, help="default partitions for new topics")
    p_start.add_argument("--cache-dir", type=Path, default=None)
    p_start.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)

    if args.command == "fetch":
        print(fetch_kafka(args.cache_dir))
        return 0

    broker = KafkaBroker(
        args.dir,
        port=args.port,
        sasl_ssl=args.sasl_ssl,
        sasl_port=args.sasl_port,
        auto_create_topics=not args.no_auto_create,
        num_partitions=args.partitions,
        cache_dir=args.cache_dir,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        broker.start(timeout=args.timeout)
        print(broker.bootstrap, flush=True)
        print(f"bootstrap: {broker.bootstrap}", file=sys.stderr)
        if args.sasl_ssl:
            print(
                f"sasl_ssl: {broker.sasl_bootstrap} user={SASL_USERNAME} password={SASL_PASSWORD} "
                f"mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512 ca={broker.ca_pem_path}",
                file=sys.stderr,
            )
        print(f"log: {broker.log_path}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
        while not stop.is_set():
            if not broker.is_running():
                print(f"kafka exited unexpectedly; log tail:\n{broker.log_tail()}", file=sys.stderr)
                return 1
            stop.wait(1.0)
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
