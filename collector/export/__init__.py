"""The public sink API: what a sink (built in or a plugin) is written against.

    from collector.export import Option, Sink, TransientSinkError

    class MySink(Sink):
        name = "mysink"
        options = (Option("url", "str", "", "where to send events", required=True),)

        def encode(self, event): return orjson.dumps(event)
        def write_batch(self, batch): ...  # raise TransientSinkError to be retried

and in the distribution's pyproject.toml:

    [project.entry-points."process_collector.sinks"]
    mysink = "mypackage:MySink"

Then `collector run --sink mysink --sink-option mysink.url=...` uses it, with
the core's queue, batching, retries, backpressure and counters. The contract
is in collector.export.contract; collector.export.testing.MemorySink is the
in-memory stand-in for tests.
"""

from collector.errors import SinkError, UsageError
from collector.export.contract import Event, OutputClosed, PartialWriteError, Sink, TransientSinkError
from collector.export.options import SCHEMA_OPTION, Option
from collector.export.policy import PipelineSettings, RetryPolicy

__all__ = [
    "SCHEMA_OPTION",
    "Event",
    "Option",
    "OutputClosed",
    "PartialWriteError",
    "PipelineSettings",
    "RetryPolicy",
    "Sink",
    "SinkError",
    "TransientSinkError",
    "UsageError",
]
