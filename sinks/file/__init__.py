"""The file sink, in layers:

    options.py   its options; can this host write an Avro codec?
    framing.py   a batch as bytes: JSON lines, Avro OCF header / block; torn-tail reading
    append.py    all of a batch or none of it, the fsync policy, file modes
    rotation.py  when to rotate, rotated names, retention, gzip of rotated files
    sink.py      FileSink: the collector.export.Sink the core drives

Imports run one way: sink → rotation → append; sink → framing, options.
"""

from sinks.file.sink import FileSink

__all__ = ["FileSink"]
