"""What the delivery reports of one round mean: a pure classification.

Every message of a round ends as one of: delivered; to be re-sent (a
retriable error, or no report yet when the round was cut short); dropped
for a reason re-sending cannot fix (the table below); or, for a size error
the broker gave a whole batch, to be tried alone before it is declared too
large. No producer, no clock: tests feed it KafkaError codes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError

# Reports that will not get better by re-sending: drop (counted) and go on.
DROP_REASONS: dict[int, str] = {
    KafkaError.MSG_SIZE_TOO_LARGE: "too_large",
    KafkaError.RECORD_LIST_TOO_LARGE: "too_large",
    KafkaError.INVALID_MSG_SIZE: "too_large",
    KafkaError.UNKNOWN_TOPIC_OR_PART: "unknown_topic",
    KafkaError._UNKNOWN_TOPIC: "unknown_topic",
    KafkaError._UNKNOWN_PARTITION: "unknown_topic",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "not_authorized",
    KafkaError.TOPIC_EXCEPTION: "invalid_topic",
    KafkaError.INVALID_RECORD: "invalid_record",
}
PENDING: Any = object()  # a report not in yet


@dataclass
class Outcome:
    """What one round did: how many were delivered, indexes to re-send, drops by
    reason, and indexes to try alone (a size error on a batch)."""

    delivered: int = 0
    retry: list[int] = field(default_factory=list)
    drops: dict[str, list[int]] = field(default_factory=dict)
    alone: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # retriable error names


def classify(results: Sequence[Any], refused: set[int] | frozenset[int] = frozenset(),
             *, batch: bool = True) -> Outcome:
    """Reports (None = delivered, a KafkaError, or PENDING) → an Outcome.

    `refused`: indexes produce() itself refused (judged alone already); with
    batch=False every size error is final (the message was tried alone)."""
    out = Outcome()
    for i, err in enumerate(results):
        if err is None:
            out.delivered += 1
        elif err is PENDING:
            out.retry.append(i)
        else:
            reason = DROP_REASONS.get(err.code())
            if reason == "too_large" and batch and len(results) > 1 and i not in refused:
                out.alone.append(i)  # the broker judges whole batches: try it by itself
            elif reason is not None:
                out.drops.setdefault(reason, []).append(i)
            else:
                out.retry.append(i)
                out.errors[err.name()] += 1
    return out


def why_dropped(reason: str, topic: str, largest: int, when_full: str) -> str:
    """The one line that says why events were dropped and what to change."""
    return {
        "too_large": f"larger than the broker accepts (largest {largest} bytes); raise the "
                     "topic's max.message.bytes or lower capture.args_max_bytes",
        "unknown_topic": f"topic '{topic}' does not exist and the broker does not "
                         "create it; create the topic or fix kafka.topic",
        "not_authorized": f"not authorized to write to topic '{topic}'; grant WRITE "
                          "(and IDEMPOTENT_WRITE) to the collector's principal",
        "invalid_topic": f"'{topic}' is not a valid topic name; fix kafka.topic",
        "invalid_record": "the broker rejected the record as invalid",
        "buffer_full": f"the disk buffer is full (kafka.buffer_max_bytes; policy "
                       f"{when_full})",
    }.get(reason, reason)
