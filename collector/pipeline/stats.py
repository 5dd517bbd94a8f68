"""Counters for every stage, and the one-line summary printed on stderr.

Each counter has one writer thread (the reader, or one sink's worker), so
plain integer updates are enough under the GIL; readers only print them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: the reasons the core itself drops a sink's events for (a sink may add its own,
#: e.g. Kafka's too_large): metrics report these from 0, before the first drop
SINK_DROP_REASONS = ("queue_full", "sink_failed", "shutdown_timeout", "encode_error",
                     "retries_exhausted")


@dataclass
class ReaderStats:
    """The kernel → reader → decode → enrich → filter stages."""

    records: int = 0  # raw records taken from the ring buffer
    decode_errors: int = 0
    execs: int = 0
    exits: int = 0
    forks: int = 0
    procfs: int = 0  # exec events emitted by the start-up scan
    filtered: int = 0  # events dropped by filters (by design, not a loss)
    filtered_by_type: Counter[str] = field(default_factory=Counter)  # the same, by event_type
    kernel_drops: dict[str, int] = field(default_factory=dict)

    @property
    def kernel_dropped(self) -> int:
        return sum(self.kernel_drops.values())

    def emitted(self) -> dict[str, int]:
        """Events handed to the sinks (after filters), by event_type."""
        return {
            "process_exec": self.execs + self.procfs - self.filtered_by_type["process_exec"],
            "process_exit": self.exits - self.filtered_by_type["process_exit"],
        }


@dataclass
class SinkStats:
    """One sink's queue, batches, retries and drops."""

    name: str
    queued: int = 0  # accepted into the sink's queue
    written: int = 0  # delivered (acknowledged, for Kafka)
    batches: int = 0
    retries: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # reason → events
    queue_depth: int = 0
    failed: str | None = None  # why the sink stopped, if it did
    retrying: str | None = None  # the error its open or last batch is being retried after
    extra: dict[str, int] = field(default_factory=dict)  # the sink's own counters (health())

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


@dataclass(frozen=True)
class Snapshot:
    """The counters at one moment: what the stats line prints and the metrics
    endpoint serves (collector.metrics), so both read one source."""

    reader: ReaderStats
    sinks: list[SinkStats]
    cache: dict[str, int]  # ProcessCache.counters()
    probe_problem: str | None  # None while the probes are attached and the reader runs


def summary_line(reader: ReaderStats, sinks: list[SinkStats], extra: dict[str, int] | None = None) -> str:
    """e.g. `stats: kernel records=4002 drops=0 | exec=2000 exit=2001 fork=1 ... | stdout written=4001 ...`"""
    parts = [
        f"kernel records={reader.records} drops={reader.kernel_dropped}",
        f"events exec={reader.execs} exit={reader.exits} procfs={reader.procfs} "
        f"filtered={reader.filtered} decode_errors={reader.decode_errors}",
    ]
    if extra:
        parts.append(" ".join(f"{k}={v}" for k, v in extra.items()))
    for s in sinks:
        drops = ",".join(f"{k}:{v}" for k, v in sorted(s.dropped.items())) or "0"
        line = (
            f"{s.name} queued={s.queued} written={s.written} batches={s.batches} "
            f"retries={s.retries} dropped={drops} depth={s.queue_depth}"
        )
        own = " ".join(f"{k}={v}" for k, v in s.extra.items() if v)
        if own:
            line += " " + own
        if s.failed:
            line += f" FAILED({s.failed})"
        parts.append(line)
    return "stats: " + " | ".join(parts)
