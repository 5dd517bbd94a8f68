"""A durable FIFO of encoded Kafka messages in SQLite (kafka.buffer = disk).

Why SQLite: it is in the standard library, its transactions survive a
crash, and WAL mode lets the sink's two sides work at once: the worker
thread appends (an event counts as accepted only once its transaction has
committed) while the sender thread reads the oldest rows and deletes them
only after Kafka acknowledged them.

Durability level: `PRAGMA synchronous = FULL`. In WAL mode, NORMAL already
survives a SIGKILL of the collector (the WAL is in the OS page cache), but a
power loss or kernel panic can roll back the last commits, i.e. lose events
that were reported as accepted. FULL fsyncs the WAL at every commit. One
commit covers a whole batch (up to kafka.batch_events), so the cost is one
fsync per batch, not per event; bench/kafka_buffer.py measures it.

Each thread gets its own connection (sqlite3 objects must not be shared
without a lock, and separate connections let the reader see committed rows
while the writer works). `max_bytes` bounds the stored payload (key +
value); the file itself is a little larger (pages, indexes) and is reused,
not shrunk, once rows are deleted.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from collector.errors import SinkError, UsageError
from collector.export import TransientSinkError

FILE_NAME = "kafka-buffer.sqlite3"
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    event_type TEXT NOT NULL,
    size INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class Row:
    """One buffered message, as the sender reads it back."""

    id: int
    key: bytes
    value: bytes
    event_type: str


class DiskBuffer:
    """The SQLite file under `directory`; see the module docstring."""

    def __init__(self, directory: str | Path, max_bytes: int, synchronous: str = "FULL") -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.max_bytes = max_bytes
        self.synchronous = synchronous
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the counters below
        self._conns: list[sqlite3.Connection] = []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"config key kafka.buffer_path: cannot create {self.directory}: "
                             f"{exc.strerror}") from None
        conn = self._conn()
        try:
            conn.execute(_SCHEMA)
            count, size = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
        except sqlite3.DatabaseError as exc:
            raise SinkError(f"kafka disk buffer {self.path}: {exc}; move the file away to start "
                            "an empty buffer") from None
        self.rows: int = count
        self.bytes: int = size
        #: rows found at start: the backlog of an earlier run, sent first
        self.backlog_at_start: int = count

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # Used by one thread only; check_same_thread=False just lets close()
                # run on whichever thread shuts the sink down.
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            except sqlite3.Error as exc:
                raise SinkError(f"kafka disk buffer {self.path}: cannot open: {exc}; check the "
                                "directory's permissions and free space") from None
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def append(self, items: Sequence[tuple[bytes, bytes, str]]) -> int:
        """Store items (key, value, event_type) in order, as many as fit, in one
        transaction; return how many were stored (durably, once this returns)."""
        with self._lock:
            room = self.max_bytes - self.bytes
        take, size = 0, 0
        for key, value, _ in items:
            n = len(key) + len(value)
            if size + n > room:
                break
            size += n
            take += 1
        if take == 0:
            return 0
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO messages (key, value, event_type, size) VALUES (?, ?, ?, ?)",
                [(k, v, t, len(k) + len(v)) for k, v, t in items[:take]],
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _transient(f"kafka disk buffer {self.path}: append failed: {exc}") from None
        with self._lock:
            self.rows += take
            self.bytes += size
        return take

    def oldest(self, limit: int, after_id: int = 0) -> list[Row]:
        """The oldest rows with id > after_id (the sender's next round)."""
        cur = self._conn().execute(
            "SELECT id, key, value, event_type FROM messages WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [Row(*r) for r in cur.fetchall()]

    def delete(self, ids: Iterable[int]) -> int:
        """Remove rows (delivered, or given up); return how many existed."""
        id_list = [(i,) for i in ids]
        if not id_list:
            return 0
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS gone (id INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM gone")
            conn.executemany("INSERT OR IGNORE INTO gone (id) VALUES (?)", id_list)
            count, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages WHERE id IN (SELECT id FROM gone)"
            ).fetchone()
            conn.execute("DELETE FROM messages WHERE id IN (SELECT id FROM gone)")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _transient(f"kafka disk buffer {self.path}: delete failed: {exc}") from None
        with self._lock:
            self.rows -= count
            self.bytes -= size
        return int(count)

    def evict_oldest(self, need_bytes: int, after_id: int) -> int:
        """Free at least need_bytes by deleting the oldest rows with id > after_id
        (rows up to after_id are being sent right now); return rows deleted."""
        conn = self._conn()
        ids: list[int] = []
        freed = 0
        for row_id, size in conn.execute(
            "SELECT id, size FROM messages WHERE id > ? ORDER BY id", (after_id,)
        ):
            if freed >= need_bytes:
                break
            ids.append(row_id)
            freed += size
        return self.delete(ids)

    def close(self) -> None:
        """Close every thread's connection (called once both threads are done)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


def _transient(message: str) -> SinkError:
    """Disk trouble (full, I/O error) may pass: the worker retries the batch."""
    return TransientSinkError(message)
