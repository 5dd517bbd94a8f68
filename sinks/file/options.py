"""The file sink's options, and whether this host can write an Avro codec."""

from __future__ import annotations

import io
import re

from collector.export import SCHEMA_OPTION, Option

FORMATS = ("jsonl", "avro")
CODECS = ("null", "deflate", "zstandard", "snappy")
FSYNC_POLICIES = ("never", "batch", "interval")


def _octal_mode(v: str) -> str | None:
    if not re.fullmatch(r"0?[0-7]{3,4}", v):
        return "an octal file mode such as 0640"
    return None


OPTIONS = (
    Option("path", "str", "", "the file events are written to (required with --sink file)",
           required=True, flag="--file-path", metavar="PATH"),
    Option("format", "str", "jsonl", "jsonl or avro (Avro object container file)",
           choices=FORMATS, flag="--file-format"),
    Option("avro_codec", "str", "deflate", "Avro block codec", choices=CODECS),
    Option("max_bytes", "int", 100 << 20, "rotate when the file reaches this size (bytes; "
           "0 = never)", unit="bytes", minimum=0),
    Option("max_age_s", "float", 0.0, "rotate when the file is this old (s; 0 = never)",
           unit="s", minimum=0),
    Option("retain", "int", 10, "rotated files kept; older ones are deleted", unit="files",
           minimum=0),
    Option("gzip", "bool", False, "gzip rotated JSON-lines files"),
    Option("mode", "str", "0640", "permissions of new files (octal)", check=_octal_mode),
    Option("fsync", "str", "batch", "when to fsync: never, batch (after every batch), "
           "interval", choices=FSYNC_POLICIES),
    Option("fsync_interval_s", "float", 1.0, "with fsync = interval: at most this long "
           "between fsyncs (s)", unit="s", minimum=0),
    SCHEMA_OPTION,
)


def codec_usable(codec: str) -> str | None:
    """None if fastavro can write `codec` here, else why not (its own words)."""
    import fastavro  # only where Avro files are written (8 MiB of resident libraries)

    probe = {"type": "record", "name": "Probe", "fields": [{"name": "a", "type": "int"}]}
    try:
        fastavro.writer(io.BytesIO(), probe, [{"a": 1}], codec=codec)
    except ValueError as exc:
        return str(exc)
    return None
