"""How a batch becomes bytes in the file, and how a file cut short is read.

- JSON lines: a batch is its lines joined; a torn tail (a write cut short
  by SIGKILL) is everything after the last newline.
- Avro object container files (the Avro spec's OCF): the header (magic,
  metadata with the schema and codec, the 16-byte sync marker) as fastavro's
  Writer writes it; one batch is one block (record count, the codec's
  compressed datums, the sync marker), framed by the same Writer
  (Writer.write_block), so a reader can stop at any block boundary.
  `read_ocf` finds the end of the last complete block of an existing file.
"""

from __future__ import annotations

import functools
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from collector.schema import parsed_schema, raw_schema

AVRO_MAGIC = b"Obj\x01"
# fastavro is imported where Avro files are written or read, not at start: a
# JSON-lines collector does not need its 8 MiB of resident libraries.


@functools.cache
def _ocf_header() -> Any:
    """The OCF header as the Avro spec defines it, read with fastavro itself."""
    import fastavro

    return fastavro.parse_schema({
        "type": "record", "name": "org.apache.avro.file.Header", "fields": [
            {"name": "magic", "type": {"type": "fixed", "name": "Magic", "size": 4}},
            {"name": "meta", "type": {"type": "map", "values": "bytes"}},
            {"name": "sync", "type": {"type": "fixed", "name": "Sync", "size": 16}},
        ]})
_NO_BLOCK_LIMIT = 1 << 62  # the Writer's own buffer is never cut into blocks


def jsonl_frame(lines: Sequence[bytes]) -> bytes:
    return b"".join(lines)


def jsonl_good_end(fd: int, size: int) -> int:
    """Where the last complete line of a JSON-lines file ends (0 if none)."""
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    end = size
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        end = start
    return 0


def schema_form(schema: dict[str, Any] | None = None) -> str:
    """The canonical form of the schema written (default: the native one), which an
    existing file must have to be continued."""
    from fastavro.schema import to_parsing_canonical_form

    return to_parsing_canonical_form(raw_schema() if schema is None else schema)


class _Datums:
    """What Writer.write_block reads of a block: its records' bytes and count."""

    __slots__ = ("bytes_", "num_records")

    def __init__(self, data: bytes, count: int) -> None:
        self.bytes_ = io.BytesIO(data)
        self.num_records = count


class OcfFraming:
    """The header of a container file with this codec and sync marker, and its blocks."""

    def __init__(self, codec: str, sync: bytes, parsed: Any = None) -> None:
        """`parsed`: the fastavro-parsed schema of the records (default: the native one)."""
        self.codec = codec
        self.sync = sync
        from fastavro.write import Writer

        self._buf = io.BytesIO()
        self._writer = Writer(self._buf, parsed_schema() if parsed is None else parsed,
                              codec=codec,
                              sync_interval=_NO_BLOCK_LIMIT, sync_marker=sync)
        self.header = self._buf.getvalue()

    def block(self, datums: Sequence[bytes]) -> bytes:
        """One block of Avro datums (collector.encode.avro.datum's output)."""
        buf = self._buf
        buf.seek(0)
        buf.truncate()
        self._writer.write_block(_Datums(b"".join(datums), len(datums)))
        return buf.getvalue()


def _read_varlong(f: BinaryIO) -> int | None:
    """One zig-zag varint (Avro long), or None at a torn end."""
    shift = result = 0
    while True:
        b = f.read(1)
        if not b:
            return None
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7
        if shift > 63:
            return None


@dataclass(frozen=True)
class OcfFile:
    """What an existing container file is: its schema, codec, sync marker, and
    where its last complete block ends."""

    schema_form: str
    codec: str
    sync: bytes
    good_end: int


def read_ocf(f: BinaryIO, size: int) -> OcfFile | None:
    """An existing container file, or None when even its header is incomplete or foreign."""
    try:
        import fastavro
        from fastavro.schema import to_parsing_canonical_form

        header = fastavro.schemaless_reader(f, _ocf_header(), None)
    except Exception:  # EOF or garbage inside the header: fastavro raises several kinds
        return None
    if not isinstance(header, dict) or header.get("magic") != AVRO_MAGIC:
        return None
    meta = header["meta"]
    try:
        schema = to_parsing_canonical_form(json.loads(meta["avro.schema"]))
    except (KeyError, ValueError):
        return None
    codec = meta.get("avro.codec", b"null").decode()
    sync = header["sync"]
    good = f.tell()
    while good < size:
        count = _read_varlong(f)
        length = _read_varlong(f)
        if count is None or length is None or count < 0 or length < 0:
            break
        f.seek(length, os.SEEK_CUR)
        if f.tell() + 16 > size or f.read(16) != sync:
            break
        good = f.tell()
    return OcfFile(schema, codec, sync, good)
