"""Into a SIEM: the collector's topic indexed by a real OpenSearch 3.8 node.

Two real, maintained consumers, as a SIEM would run them:
- JSON messages (the default format): OpenSearch's own `ingestion-kafka`
  plugin pulls the topic (tests/support/opensearch.py);
- Confluent Avro (`--kafka-format avro` against the real Apicurio registry):
  Apache Camel 4 with Apicurio's AvroKafkaDeserializer reads the topic and
  indexes each record (tests/support/camel_siem.py, the route in
  deploy/siem/camel/), through an ingest pipeline derived from the shape's
  schema that turns the Avro form into the JSON form.
The index is deploy/siem/<shape>-index.json in both, what `make siem`
creates for users. Marker processes run through `collector run --sink kafka
--schema ocsf|ecs`; a search on the index finds exactly their launch and
terminate events. The collector only passes the markers (an allow rule),
since other jobs on this machine exec thousands of processes, and the
node's pull would index them too. One node serves the module (~1 min to
start); Camel starts in a few seconds per test.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector import shapes
from tests.helpers import CollectorProcess, stat_value
from tests.kafka_fixtures import Burst, consume_cli, new_topic
from tests.support.apicurio import ApicurioRegistry
from tests.support.camel_siem import CamelAvroConsumer, ingest_pipeline
from tests.support.kafka_broker import KafkaBroker
from tests.support.opensearch import OpenSearchNode

pytestmark = [pytest.mark.siem, pytest.mark.kafka]
N = 5


@pytest.fixture(scope="module")
def opensearch() -> Iterator[OpenSearchNode]:
    directory = Path(tempfile.mkdtemp(prefix="pc-opensearch-"))
    node = OpenSearchNode(directory).start()
    yield node
    node.stop()
    shutil.rmtree(directory, ignore_errors=True)


def wait_count(node: OpenSearchNode, index: str, query: dict[str, Any], want: int,
               timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        n = node.count(index, query)
        if n >= want or time.monotonic() > deadline:
            return n
        time.sleep(1.0)


QUERIES = {
    # by the command line / argv, as an analyst would search
    "ocsf": (lambda m: {"wildcard": {"process.cmd_line": f"*{m}*"}},
             {"term": {"activity_id": 1}}, {"term": {"activity_id": 2}}),
    "ecs": (lambda m: {"term": {"process.args": m}},
            {"term": {"event.type": "start"}}, {"term": {"event.type": "end"}}),
}


def canonical(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True)


def run_markers(kafka: KafkaBroker, topic: str, shape: str, cfg_dir: Path, *args: str,
                env: dict[str, str] | None = None) -> Burst:
    """N marker processes through `collector run --sink kafka --schema shape`;
    only they pass the collector's filter. Every message is acked."""
    burst = Burst()
    cfg = cfg_dir / "markers.toml"
    cfg.write_text(f'[[filter.allow]]\nargs = "{burst.marker}"\n')
    with CollectorProcess("--config", str(cfg), "--sink", "kafka", "--kafka-bootstrap",
                          kafka.bootstrap, "--kafka-topic", topic, "--schema", shape, *args,
                          env={"COLLECTOR_ENRICH_PROCFS_EVENTS": "false", **(env or {})},
                          ).wait_attached() as col:
        burst.spawn(N)
        assert col.stop() == 0, col.stderr
    assert stat_value(col.stats_line(), "acked", "kafka") == 2 * N
    return burst


def assert_found_exactly(node: OpenSearchNode, index: str, shape: str,
                         burst: Burst) -> list[dict[str, Any]]:
    """A search by the markers finds their N launches and N terminates, no more;
    returns the documents (`_source`)."""
    by_marker, launch, terminate = QUERIES[shape]
    mine = by_marker(burst.marker)
    assert wait_count(node, index, mine, 2 * N) == 2 * N
    time.sleep(3)  # nothing more arrives: exactly, not at least
    assert node.count(index, mine) == 2 * N
    assert node.count(index, {"bool": {"filter": [mine, launch]}}) == N
    assert node.count(index, {"bool": {"filter": [mine, terminate]}}) == N
    hits = node.call("POST", f"/{index}/_search",
                     {"size": 20, "query": {"bool": {"filter": [mine, launch]}}})["hits"]
    pids = sorted(h["_source"]["process"]["pid"] for h in hits["hits"])
    assert pids == sorted(burst.pids)
    hits = node.call("POST", f"/{index}/_search", {"size": 20, "query": mine})["hits"]
    return [h["_source"] for h in hits["hits"]]


@pytest.mark.parametrize("shape", ["ocsf", "ecs"])
def test_marker_processes_are_found_in_opensearch_exactly(
        kafka: KafkaBroker, opensearch: OpenSearchNode, tmp_path: Path, shape: str) -> None:
    """JSON messages (the default format), pulled by OpenSearch's ingestion-kafka plugin."""
    topic, index = new_topic(f"siem-{shape}"), f"process-{shape}-{uuid.uuid4().hex[:6]}"
    burst = run_markers(kafka, topic, shape, tmp_path)
    opensearch.create_pull_index(index, shape, topic, kafka.bootstrap)
    assert_found_exactly(opensearch, index, shape, burst)


@pytest.mark.parametrize("shape", ["ocsf", "ecs"])
def test_confluent_avro_through_camel_is_found_in_opensearch_exactly(
        kafka: KafkaBroker, registry: ApicurioRegistry, opensearch: OpenSearchNode,
        tmp_path: Path, shape: str) -> None:
    """`--kafka-format avro` against the real registry, read by Apache Camel with
    Apicurio's AvroKafkaDeserializer and indexed through the schema-derived
    ingest pipeline: the documents are exactly the shape's JSON form of the
    same messages (what `collector consume` prints)."""
    topic, index = new_topic(f"siem-{shape}-avro"), f"process-{shape}-avro-{uuid.uuid4().hex[:6]}"
    creds = {"COLLECTOR_KAFKA_SCHEMA_REGISTRY_USER": registry.user,
             "COLLECTOR_KAFKA_SCHEMA_REGISTRY_PASSWORD": registry.password}
    burst = run_markers(kafka, topic, shape, tmp_path, "--kafka-format", "avro",
                        "--schema-registry", registry.url, env=creds)
    opensearch.create_pushed_index(index, shape, ingest_pipeline(shapes.get(shape).raw_schema))
    with CamelAvroConsumer(tmp_path / "camel", topic=topic, bootstrap=kafka.bootstrap,
                           registry=registry.v2_url, user=registry.user,
                           password=registry.password, opensearch=f"127.0.0.1:{opensearch.port}",
                           index=index) as camel:
        docs = assert_found_exactly(opensearch, index, shape, burst)
        assert "ERROR" not in camel.log(), camel.log()[-3000:]
    decoded = consume_cli(kafka.bootstrap, topic, "--schema-registry", registry.auth_url)
    assert sorted(map(canonical, docs)) == sorted(map(canonical, decoded))
