"""`make siem`: a local SIEM stack to try the collector's OCSF and ECS records.

Starts a single-node Kafka broker (127.0.0.1:9092), OpenSearch 3.8 with its
ingestion-kafka plugin (127.0.0.1:9200), and two indexes that pull the
topics process-events-ocsf and process-events-ecs (deploy/siem/*-index.json).
Runs in the foreground; Ctrl-C stops everything (about 1 GB RSS in all).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from tests.support.kafka_broker import KafkaBroker
from tests.support.opensearch import OpenSearchNode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kafka-port", type=int, default=9092)
    ap.add_argument("--opensearch-port", type=int, default=9200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pc-siem-"))
    work.chmod(0o755)  # the OpenSearch user must enter it
    broker = KafkaBroker(work / "kafka", port=args.kafka_port)
    node = OpenSearchNode(work / "opensearch", port=args.opensearch_port)
    try:
        broker.start()
        print(f"kafka: {broker.bootstrap}; starting opensearch (up to a minute or two)...",
              flush=True)
        node.start()
        for shape in ("ocsf", "ecs"):
            node.create_pull_index(f"process-{shape}", shape, f"process-events-{shape}",
                                   broker.bootstrap)
        print(f"opensearch: {node.url}; indexes process-ocsf and process-ecs pull the topics "
              "process-events-ocsf and process-events-ecs. Ctrl-C stops.", flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        node.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
