"""sinks.kafka.producer_stats: librdkafka's statistics → re-sends and leader changes.

The cluster tests show the counters move during a real failover; these pin the
arithmetic on statistics documents shaped as librdkafka emits them."""

from __future__ import annotations

import orjson

from sinks.kafka.producer_stats import ProducerStats


def doc(parts: dict[int, tuple[int, int, int]]) -> str:
    """partition → (msgs produced, txmsgs transmitted, leader), plus the -1 partition."""
    partitions = {str(p): {"partition": p, "msgs": m, "txmsgs": t, "leader": lead}
                  for p, (m, t, lead) in parts.items()}
    partitions["-1"] = {"partition": -1, "msgs": 0, "txmsgs": 99, "leader": -1}
    return orjson.dumps({"topics": {"events": {"partitions": partitions}}}).decode()


def test_resends_are_transmissions_beyond_the_messages_produced() -> None:
    stats = ProducerStats()
    stats(doc({0: (100, 80, 1), 1: (50, 50, 2)}))  # 20 not yet sent: no re-send known
    assert stats.retries == 0
    stats(doc({0: (100, 130, 1), 1: (50, 55, 2)}))
    assert stats.retries == 35
    stats(doc({0: (200, 150, 1), 1: (60, 60, 2)}))  # a lower bound never makes it shrink
    assert stats.retries == 35


def test_a_leader_change_is_counted_once_through_an_election() -> None:
    stats = ProducerStats()
    stats(doc({0: (1, 1, 1), 1: (1, 1, 2)}))
    stats(doc({0: (1, 1, -1), 1: (1, 1, 2)}))  # no leader while the election runs
    stats(doc({0: (1, 1, 3), 1: (1, 1, 2)}))
    stats(doc({0: (1, 1, 3), 1: (1, 1, 2)}))
    assert stats.leader_changes == 1


def test_a_document_that_is_not_json_changes_nothing() -> None:
    stats = ProducerStats()
    stats("{not json")
    assert (stats.retries, stats.leader_changes) == (0, 0)


def brokers(states: dict[str, tuple[int, str]]) -> str:
    """broker name → (nodeid, state), as librdkafka's `brokers` object."""
    return orjson.dumps({"brokers": {n: {"name": n, "nodeid": i, "state": s}
                                     for n, (i, s) in states.items()}}).decode()


def test_a_node_whose_connection_leaves_up_is_reported_once() -> None:
    lost: list[tuple[str, str]] = []
    stats = ProducerStats(lambda name, state: lost.append((name, state)))
    a, b, boot = "127.0.0.1:1/1", "127.0.0.1:2/2", "127.0.0.1:1/bootstrap"
    stats(brokers({a: (1, "INIT"), b: (2, "UP"), boot: (-1, "UP")}))
    stats(brokers({a: (1, "UP"), b: (2, "UP"), boot: (-1, "DOWN")}))  # bootstrap: not a node
    assert lost == []  # INIT -> UP is a connection made, not one lost
    stats(brokers({a: (1, "TRY_CONNECT"), b: (2, "UP"), boot: (-1, "DOWN")}))
    stats(brokers({a: (1, "CONNECT"), b: (2, "UP"), boot: (-1, "DOWN")}))  # still down: once
    assert lost == [(a, "TRY_CONNECT")]
    stats(brokers({a: (1, "UP"), b: (2, "DOWN"), boot: (-1, "DOWN")}))
    assert lost == [(a, "TRY_CONNECT"), (b, "DOWN")]
