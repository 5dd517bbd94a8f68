"""Into a SIEM: the collector's topic pulled by a real OpenSearch 3.8 node.

OpenSearch's own `ingestion-kafka` plugin (tests/support/opensearch.py)
consumes the topic; the index is deploy/siem/<shape>-index.json, what `make
siem` creates for users. Marker processes run through `collector run
--sink kafka --schema ocsf|ecs` (JSON values, the default); a search on the
index finds exactly their launch and terminate events. The collector only
passes the markers (an allow rule), since other jobs on this machine exec
thousands of processes, and the node's pull would index them too.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CollectorProcess, stat_value
from tests.kafka_fixtures import Burst, new_topic
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
               timeout: float = 180.0) -> int:
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


@pytest.mark.parametrize("shape", ["ocsf", "ecs"])
def test_marker_processes_are_found_in_opensearch_exactly(
        kafka: KafkaBroker, opensearch: OpenSearchNode, tmp_path: Path, shape: str) -> None:
    topic, index = new_topic(f"siem-{shape}"), f"process-{shape}-{uuid.uuid4().hex[:6]}"
    burst = Burst()
    cfg = tmp_path / "markers.toml"
    cfg.write_text(f'[[filter.allow]]\nargs = "{burst.marker}"\n')
    with CollectorProcess("--config", str(cfg), "--sink", "kafka", "--kafka-bootstrap",
                          kafka.bootstrap, "--kafka-topic", topic, "--schema", shape,
                          env={"COLLECTOR_ENRICH_PROCFS_EVENTS": "false"}).wait_attached() as col:
        burst.spawn(N)
        assert col.stop() == 0, col.stderr
    assert stat_value(col.stats_line(), "acked", "kafka") == 2 * N
    opensearch.create_pull_index(index, shape, topic, kafka.bootstrap)

    by_marker, launch, terminate = QUERIES[shape]
    mine = by_marker(burst.marker)
    assert wait_count(opensearch, index, mine, 2 * N) == 2 * N
    time.sleep(3)  # nothing more arrives: exactly, not at least
    assert opensearch.count(index, mine) == 2 * N
    assert opensearch.count(index, {"bool": {"filter": [mine, launch]}}) == N
    assert opensearch.count(index, {"bool": {"filter": [mine, terminate]}}) == N
    hits = opensearch.call("POST", f"/{index}/_search",
                           {"size": 20, "query": {"bool": {"filter": [mine, launch]}}})["hits"]
    pids = sorted(h["_source"]["process"]["pid"] for h in hits["hits"])
    assert pids == sorted(burst.pids)
