"""The one set of counters of the pipeline, its snapshot, and the one-line
summary printed on stderr.

Each counter has one writer thread (the reader, or one sink's worker), so
plain integer updates are enough under the GIL; readers only look at them.
Anything that reports counters (the stats line, a metrics endpoint) reads
them through `Collector.snapshot()` → `Snapshot`, so they cannot drift:

    Snapshot
      .reader   ReaderStats: records (raw, from the ring buffer), kernel_drops
                {kind: n}, execs, exits, forks, procfs, filtered (and
                filtered_by_type), decode_errors; emitted() = events handed to
                the sinks, by event_type
      .sinks    [SinkCounters]: name, queued, written, batches, retries,
                dropped {reason: n}, queue_depth, failed, retrying (the error a
                retry is waiting out), extra (the sink's own integer counters
                from health(), e.g. acked, rotations)
      .enrich   {name: n} from the process cache: cache (entries), evictions,
                released, ... plus the encoders' fallbacks (avro_fallbacks)
      .probe_problem  None while the probes are attached and the reader runs,
                else one line saying why not (what /healthz reports first)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.export.contract import Sink

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
    """One sink's queue, batches, retries and drops (written by its worker)."""

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

    @property
    def undelivered(self) -> int:
        """Queued but neither written nor dropped by a counted reason."""
        return self.queued - self.written - self.dropped_total

    def take_give_ups(self, sink: Sink) -> None:
        """Items the sink gave up (Sink.give_up) count as dropped, not written."""
        for reason, n in sink.give_ups.take().items():
            self.dropped[reason] += n
            self.written -= n

    def refresh_extra(self, sink: Sink) -> None:
        """Copy the sink's own integer counters (rotations, acked, ...), after every
        batch: a stale copy would show Kafka's acked= behind written=."""
        try:
            health = sink.health()
        except Exception:
            return
        self.extra = {k: v for k, v in health.items()
                      if isinstance(v, int) and not isinstance(v, bool)}


@dataclass(frozen=True)
class SinkCounters:
    """A copy of one sink's counters at one moment."""

    name: str
    queued: int
    written: int
    batches: int
    retries: int
    dropped: dict[str, int]
    queue_depth: int
    failed: str | None
    extra: dict[str, int]
    retrying: str | None = None

    @classmethod
    def of(cls, s: SinkStats) -> SinkCounters:
        return cls(s.name, s.queued, s.written, s.batches, s.retries, dict(s.dropped),
                   s.queue_depth, s.failed, dict(s.extra), s.retrying)


@dataclass(frozen=True)
class Snapshot:
    """Every counter at one moment; see the module docstring."""

    reader: ReaderStats
    sinks: list[SinkCounters]
    enrich: dict[str, int]
    probe_problem: str | None = None


def snapshot(reader: ReaderStats, sinks: list[SinkStats],
             enrich: dict[str, int] | None = None,
             probe_problem: str | None = None) -> Snapshot:
    copy = ReaderStats(**{**reader.__dict__, "kernel_drops": dict(reader.kernel_drops),
                          "filtered_by_type": Counter(reader.filtered_by_type)})
    return Snapshot(copy, [SinkCounters.of(s) for s in sinks], dict(enrich or {}),
                    probe_problem)


def render(snap: Snapshot) -> str:
    """e.g. `stats: kernel records=4002 drops=0 | exec=2000 exit=2001 ... | stdout written=4001 ...`"""
    reader = snap.reader
    parts = [
        f"kernel records={reader.records} drops={reader.kernel_dropped}",
        f"events exec={reader.execs} exit={reader.exits} procfs={reader.procfs} "
        f"filtered={reader.filtered} decode_errors={reader.decode_errors}",
    ]
    if snap.enrich:
        parts.append(" ".join(f"{k}={v}" for k, v in snap.enrich.items()))
    for s in snap.sinks:
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


def summary_line(reader: ReaderStats, sinks: list[SinkStats],
                 extra: dict[str, int] | None = None) -> str:
    return render(snapshot(reader, sinks, extra))


__all__ = ["SINK_DROP_REASONS", "ReaderStats", "SinkCounters", "SinkStats", "Snapshot", "render", "snapshot",
           "summary_line"]
