"""`make siem`: a local SIEM stack to try the collector's OCSF and ECS records.

Starts a single-node Kafka broker (127.0.0.1:9092), OpenSearch 3.8 with its
ingestion-kafka plugin (127.0.0.1:9200), and two indexes that pull the JSON
topics process-events-ocsf and process-events-ecs (deploy/siem/*-index.json).
For the Confluent Avro path it also starts Apicurio Registry 3.3.3
(127.0.0.1:8081, ccompat API at /apis/ccompat/v7, user `siem`) and one
Apache Camel consumer per shape (deploy/siem/camel/) that indexes the Avro
topics process-events-ocsf-avro and process-events-ecs-avro into
process-ocsf-avro and process-ecs-avro. Runs in the foreground; Ctrl-C
stops everything (about 1.6 GB RSS in all).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from collector import shapes
from tests.support.apicurio import ApicurioRegistry
from tests.support.camel_siem import CamelAvroConsumer, ingest_pipeline
from tests.support.kafka_broker import KafkaBroker
from tests.support.opensearch import OpenSearchNode

SHAPES = ("ocsf", "ecs")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kafka-port", type=int, default=9092)
    ap.add_argument("--opensearch-port", type=int, default=9200)
    ap.add_argument("--registry-port", type=int, default=8081)
    ap.add_argument("--no-avro", action="store_true",
                    help="JSON only: no registry, no Camel (about 1 GB RSS)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pc-siem-"))
    work.chmod(0o755)  # the OpenSearch user must enter it
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        try:
            broker = KafkaBroker(work / "kafka", port=args.kafka_port)
            broker.start()
            stack.callback(broker.stop)
            print(f"kafka: {broker.bootstrap}; starting opensearch (up to a minute or two)...",
                  flush=True)
            node = OpenSearchNode(work / "opensearch", port=args.opensearch_port)
            node.start()
            stack.callback(node.stop)
            for shape in SHAPES:
                node.create_pull_index(f"process-{shape}", shape, f"process-events-{shape}",
                                       broker.bootstrap)
            print(f"opensearch: {node.url}; indexes process-ocsf and process-ecs pull the "
                  "topics process-events-ocsf and process-events-ecs.", flush=True)
            if not args.no_avro:
                reg = ApicurioRegistry(work / "registry", port=args.registry_port).start()
                stack.callback(reg.stop)
                for shape in SHAPES:
                    index = f"process-{shape}-avro"
                    node.create_pushed_index(index, shape,
                                             ingest_pipeline(shapes.get(shape).raw_schema))
                    camel = CamelAvroConsumer(
                        work / f"camel-{shape}", topic=f"process-events-{shape}-avro",
                        bootstrap=broker.bootstrap, registry=reg.v2_url, user=reg.user,
                        password=reg.password, opensearch=f"127.0.0.1:{node.port}", index=index)
                    camel.start()
                    stack.callback(camel.stop)
                print(f"registry: {reg.url} (user {reg.user}, password {reg.password}); Camel "
                      "indexes the Avro topics process-events-ocsf-avro and "
                      "process-events-ecs-avro into process-ocsf-avro and process-ecs-avro.",
                      flush=True)
            print("Ctrl-C stops.", flush=True)
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
