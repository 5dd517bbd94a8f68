"""A real three-node Apache Kafka cluster (KRaft) on loopback, for failover tests.

Why this exists: a fleet of collectors writes into a replicated cluster, and
what matters there (a partition leader that dies, a rolling restart, the
active controller lost, two nodes down at once) cannot be shown with one
broker. Each node is a `KafkaBroker` (tests/support/kafka_broker.py) acting
as broker and controller; the three form one static controller quorum and
share one cluster id. Topics are replicated three times with
`min.insync.replicas=2` and `unclean.leader.election.enable=false`, so an
acknowledged (acks=all) message is on two nodes and an out-of-sync replica
is never made leader.

Every node has its own directory `workdir/node-N` (config, data, and its log
`broker.log`), so a failing test can say what each node was doing:
`describe()` gives the live nodes, the quorum leader and every partition's
leader and in-sync replicas, `log_paths()` where to read more.

    with KafkaCluster(tmp_path / "cluster") as cluster:
        cluster.create_topic("events", partitions=6)
        cluster.kill_node(cluster.leader("events", 0))
        cluster.start_node(...); cluster.wait_isr_full()

or, for users:  python tests/support/kafka_cluster.py start --dir DIR

The node processes are managed with the standard library; the state queries
use confluent-kafka's AdminClient (imported when first needed) and, for the
quorum leader, Kafka's own MetadataQuorumCommand.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__:
    from .kafka_broker import ConfigValue, KafkaBroker, KafkaBrokerError, _free_port, _new_cluster_id
else:  # run as a script: this file's directory is on sys.path
    from kafka_broker import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        ConfigValue,
        KafkaBroker,
        KafkaBrokerError,
        _free_port,
        _new_cluster_id,
    )

__all__ = ["KafkaCluster", "PartitionState"]

QUORUM_COMMAND_MAIN = "org.apache.kafka.tools.MetadataQuorumCommand"
#: a small heap per node: three JVMs share a 2-core machine with other work
NODE_HEAP = "320m"
#: the C1 compiler only: a node starts with about half the CPU (three JVMs start at
#: once); the benchmarks pass () to compare with the single broker as it runs
LIGHT_JVM = ("-XX:TieredStopAtLevel=1",)


@dataclass(frozen=True)
class PartitionState:
    """One partition as the cluster's metadata shows it."""

    leader: int  # -1 while there is none
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def isr_full(self) -> bool:
        return self.leader >= 0 and set(self.isr) == set(self.replicas)


class KafkaCluster:
    """Three combined broker+controller KRaft nodes; see the module docstring.

    Nodes are numbered 1..size (the Kafka node ids). Ports and data survive
    stop/kill/start of a node, so clients reconnect to the same addresses."""

    def __init__(self, workdir: Path | str, size: int = 3, *, heap: str = NODE_HEAP,
                 num_partitions: int = 6, extra_config: Mapping[str, ConfigValue] | None = None,
                 cache_dir: Path | str | None = None, ports: Iterable[int] | None = None,
                 jvm_options: Sequence[str] = LIGHT_JVM) -> None:
        if size < 3:
            raise KafkaBrokerError("a cluster needs 3 nodes or more (min.insync.replicas=2)")
        self.workdir = Path(workdir).resolve()
        given = list(ports or [])
        if given and len(given) != size:
            raise KafkaBrokerError(f"{size} nodes need {size} ports, got {len(given)}")
        port_of = {i: (given[i - 1] if given else _free_port()) for i in range(1, size + 1)}
        controller_of = {i: _free_port() for i in range(1, size + 1)}
        voters = ",".join(f"{i}@127.0.0.1:{controller_of[i]}" for i in range(1, size + 1))
        cluster_id_file = self.workdir / "cluster-id"
        if cluster_id_file.is_file():  # a data dir formatted by an earlier run
            cluster_id = cluster_id_file.read_text().strip()
        else:
            cluster_id = _new_cluster_id()
            self.workdir.mkdir(parents=True, exist_ok=True)
            cluster_id_file.write_text(cluster_id + "\n")
        self.cluster_id = cluster_id
        config: dict[str, ConfigValue] = {
            # a follower that stops fetching leaves the ISR after 10 s, not 30 s
            "replica.lag.time.max.ms": 10000,
            **(extra_config or {}),
        }
        self.nodes: dict[int, KafkaBroker] = {
            i: KafkaBroker(self.workdir / f"node-{i}", port=port_of[i],
                           controller_port=controller_of[i], heap=heap, node_id=i,
                           quorum_voters=voters, cluster_id=cluster_id, replication_factor=3,
                           num_partitions=num_partitions, extra_config=config, cache_dir=cache_dir,
                           jvm_options=jvm_options)
            for i in range(1, size + 1)
        }
        self._admin: Any = None

    # -- addresses -------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """Every node's PLAINTEXT address, e.g. for --kafka-bootstrap."""
        return ",".join(n.bootstrap for n in self.nodes.values())

    def node(self, node_id: int) -> KafkaBroker:
        return self.nodes[node_id]

    def running(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.is_running()]

    def log_paths(self) -> dict[int, Path]:
        return {i: n.log_path for i, n in self.nodes.items()}

    # -- lifecycle -------------------------------------------------------------

    def start(self, timeout: float = 180) -> KafkaCluster:
        """Launch every node that is down, then wait for each: a node is only ready
        once a majority of the controllers runs, so they must start together."""
        down = [n for n in self.nodes.values() if not n.is_running()]
        try:
            for n in down:
                n.launch(timeout)
            for n in down:
                n.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM every node at once (one by one, the last ones would wait for a
        quorum that is already gone), SIGKILL what is still up after `timeout`."""
        threads = [threading.Thread(target=n.stop, args=(timeout,)) for n in self.nodes.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._close_admin()

    def kill(self) -> None:
        for n in self.nodes.values():
            n.kill()
        self._close_admin()

    def stop_node(self, node_id: int, timeout: float = 60) -> None:
        """SIGTERM: a controlled shutdown (leadership moves away first)."""
        self.nodes[node_id].stop(timeout)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL: a crash; the node's data survives for its restart."""
        self.nodes[node_id].kill()

    def start_node(self, node_id: int, timeout: float = 120) -> KafkaBroker:
        """Start one node again on its ports and data and wait until it serves."""
        return self.nodes[node_id].start(timeout)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state -------------------------------------------------------------------

    def admin(self) -> Any:
        """A confluent-kafka AdminClient on every node (made once)."""
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            # log_level 0: a node that a test killed is expected, not news
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap,
                                       "reconnect.backoff.max.ms": 1000, "log_level": 0})
        return self._admin

    def _close_admin(self) -> None:
        self._admin = None  # librdkafka closes it when the object goes

    def partitions(self, topic: str | None = None,
                   timeout: float = 10) -> dict[str, dict[int, PartitionState]]:
        """Every partition's leader, replicas and ISR (of one topic, or of all)."""
        meta = self.admin().list_topics(topic, timeout=timeout)
        out: dict[str, dict[int, PartitionState]] = {}
        for name, t in meta.topics.items():
            if t.error is not None:
                continue
            out[name] = {p.id: PartitionState(p.leader, tuple(p.replicas), tuple(p.isrs))
                         for p in t.partitions.values()}
        return out

    def live_brokers(self, timeout: float = 10) -> list[int]:
        """Nodes registered and unfenced, as the metadata says."""
        return sorted(self.admin().list_topics(timeout=timeout).brokers)

    def leader(self, topic: str, partition: int) -> int:
        return self.partitions(topic)[topic][partition].leader

    def partition_sizes(self, topic: str) -> dict[int, int]:
        """Messages per partition (high watermarks): how busy each one is."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "cluster-probe",
                             "enable.auto.commit": "false", "log_level": 0})
        try:
            ids = sorted(self.partitions(topic)[topic])
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in ids}
        finally:
            consumer.close()

    def busiest_partition(self, topic: str) -> int:
        sizes = self.partition_sizes(topic)
        return max(sizes, key=lambda p: sizes[p])

    def active_controller(self) -> int:
        """The quorum leader (the active controller), from Kafka's own
        MetadataQuorumCommand: the metadata a client gets names no controller in
        KRaft mode (it shows a random broker)."""
        any_node = self.nodes[self.running()[0]]
        out = any_node.run_tool(QUORUM_COMMAND_MAIN, "--bootstrap-server", self.bootstrap,
                                "describe", "--status", timeout=60)
        m = re.search(r"^LeaderId:\s*(\d+)", out, re.M)
        if m is None:
            raise KafkaBrokerError(f"no LeaderId in MetadataQuorumCommand output:\n{out}")
        return int(m.group(1))

    def wait_isr_full(self, timeout: float = 90) -> None:
        """Until every node is registered and every partition of every topic has a
        leader and all its replicas in sync: the cluster is healthy again."""
        deadline = time.monotonic() + timeout
        why = ""
        while True:
            try:
                live = self.live_brokers(timeout=5)
                lagging = {f"{t}/{p}": s for t, ps in self.partitions(timeout=5).items()
                           for p, s in ps.items() if not s.isr_full}
                if len(live) == len(self.nodes) and not lagging:
                    return
                why = f"live brokers {live}; not in sync: {lagging}"
            except Exception as exc:  # a metadata request may fail while nodes change
                why = f"metadata: {exc}"
            if time.monotonic() > deadline:
                raise KafkaBrokerError(f"cluster not back in sync in {timeout:.0f}s: {why}\n"
                                       + self.describe())
            time.sleep(0.5)

    def create_topic(self, name: str, partitions: int = 6,
                     config: Mapping[str, str] | None = None, timeout: float = 60) -> None:
        """A topic replicated on every node; returns once each partition has a
        leader and a full ISR (so a test starts from a healthy topic)."""
        from confluent_kafka.admin import NewTopic

        futures = self.admin().create_topics([NewTopic(name, num_partitions=partitions,
                                                       replication_factor=len(self.nodes),
                                                       config=dict(config or {}))])
        futures[name].result(timeout)
        deadline = time.monotonic() + timeout
        while True:
            state = self.partitions(name).get(name, {})
            if len(state) == partitions and all(s.isr_full for s in state.values()):
                return
            if time.monotonic() > deadline:
                raise KafkaBrokerError(f"topic {name} not ready in {timeout:.0f}s: {state}")
            time.sleep(0.2)

    def describe(self, topic: str | None = None) -> str:
        """What the cluster looks like now, for assertion messages."""
        lines = [f"cluster {self.cluster_id}: " + ", ".join(
            f"node {i} {'up pid ' + str(n.pid) if n.is_running() else 'DOWN'} :{n.port} "
            f"log {n.log_path}" for i, n in self.nodes.items())]
        try:
            lines.append(f"live brokers {self.live_brokers(timeout=5)}")
            for name, ps in sorted(self.partitions(topic, timeout=5).items()):
                lines.append(f"  {name}: " + " ".join(
                    f"{p}:L{s.leader}/isr{list(s.isr)}" for p, s in sorted(ps.items())))
        except Exception as exc:
            lines.append(f"metadata unavailable: {exc}")
        return "\n".join(lines)


# --------------------------------------------------------------------- CLI


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a local three-node Kafka cluster (KRaft) for trying the collector.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start the cluster and stay in the foreground until Ctrl-C")
    p_start.add_argument("--dir", type=Path, required=True, help="working dir (one node-N dir per node)")
    p_start.add_argument("--ports", default="", help="PLAINTEXT ports, e.g. 9092,9093,9094 "
                         "(default: free ones)")
    p_start.add_argument("--partitions", type=int, default=6, help="default partitions for new topics")
    p_start.add_argument("--heap", default=NODE_HEAP, help="JVM heap per node")
    p_start.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args(argv)
    try:
        ports = [int(p) for p in args.ports.split(",")] if args.ports else None
    except ValueError:
        parser.error(f"--ports: expected comma-separated numbers, got {args.ports!r}")
    cluster = KafkaCluster(args.dir, heap=args.heap, num_partitions=args.partitions, ports=ports)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        cluster.start(timeout=args.timeout)
        print(cluster.bootstrap, flush=True)
        print(f"bootstrap: {cluster.bootstrap}", file=sys.stderr)
        for i, path in cluster.log_paths().items():
            print(f"node {i}: pid {cluster.node(i).pid}, log {path}", file=sys.stderr)
        print("(Ctrl-C stops all three)", file=sys.stderr, flush=True)
        while not stop.is_set():
            for i, n in cluster.nodes.items():
                if not n.is_running():
                    print(f"node {i} exited; log tail:\n{n.log_tail()}", file=sys.stderr)
                    return 1
            stop.wait(1.0)
    except KafkaBrokerError as exc:
        print(f"kafka_cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
