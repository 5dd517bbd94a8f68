"""What librdkafka retried by itself during a failover, from its statistics.

Why this exists: when a partition leader dies, or too few replicas are in
sync (NOT_ENOUGH_REPLICAS), librdkafka refreshes its metadata and re-sends
the affected messages to the new leader on its own, within
message.timeout.ms. The delivery report that finally arrives says "delivered",
so neither the sink nor the worker ever sees a retry: without this, a
failover would be invisible on the stats line (retries=0, nothing dropped).

librdkafka's statistics (statistics.interval.ms, JSON, documented in its
STATISTICS.md) count per partition the messages produced (`msgs`) and the
messages transmitted (`txmsgs`, every re-send included). Their difference is
the number of re-sends: a lower bound while messages still wait for their
first transmission, exact once the partition's queue is empty. The per-request
`txretries` counter is of no use here: a re-send after a leader change is a
new request, not a retried one (measured: it stays 0 through a leader kill).

A broker whose connection went from UP to anything else is reported to
`on_broker_lost`: librdkafka's error_cb says nothing when an idle connection
drops, and nothing later either once the metadata names a new leader and it
no longer tries to reconnect (measured in the cluster tests: the second
killed node of a run was reported only now and then).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

#: how often librdkafka emits its statistics (ms); a JSON document of a few KB
STATISTICS_INTERVAL_MS = "1000"


class ProducerStats:
    """A librdkafka `stats_cb`: re-sends and partition leader changes, both
    only ever growing. One per producer (librdkafka's counters start at 0 with
    each new producer)."""

    def __init__(self, on_broker_lost: Callable[[str, str], None] | None = None) -> None:
        self.retries = 0  # messages librdkafka transmitted again
        self.leader_changes = 0  # a partition's leader moved from one broker to another
        self._leaders: dict[tuple[str, int], int] = {}
        self._on_broker_lost = on_broker_lost
        self._broker_up: dict[str, bool] = {}

    def __call__(self, raw: str) -> None:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        resent = 0
        for topic, t in doc.get("topics", {}).items():
            for p in t.get("partitions", {}).values():
                partition = p.get("partition", -1)
                if partition < 0:  # the internal "unassigned" partition
                    continue
                resent += max(0, p.get("txmsgs", 0) - p.get("msgs", 0))
                leader = p.get("leader", -1)
                if leader < 0:  # no leader while an election runs: wait for the new one
                    continue
                before = self._leaders.get((topic, partition))
                if before is not None and before != leader:
                    self.leader_changes += 1
                self._leaders[(topic, partition)] = leader
        self.retries = max(self.retries, resent)
        for name, b in doc.get("brokers", {}).items():
            if b.get("nodeid", -1) < 0:  # a bootstrap address, not yet a known node
                continue
            up = b.get("state") == "UP"
            if self._broker_up.get(name) and not up and self._on_broker_lost is not None:
                self._on_broker_lost(name, str(b.get("state")))
            self._broker_up[name] = up
