"""Durable event stores: SQLite (default, WAL + ``synchronous=FULL``) and PostgreSQL (psycopg 3).

Both follow :class:`EventStore`. :meth:`EventStore.add` returns only after the transaction is committed, so an
acknowledged event survives a crash of the process (and, with ``synchronous=FULL`` / PostgreSQL's default
``synchronous_commit=on``, of the machine). ``event_id`` is unique over the store: a second event with an
``event_id`` already stored is not stored again and is counted as a duplicate (the first version wins).
Every statement is parameterised; the only composed identifier (the PostgreSQL table name) goes through
:class:`psycopg.sql.Identifier`.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from attnrec.errors import AttnRecError, ConfigError


class StoreUnavailableError(AttnRecError, RuntimeError):
    """The event store cannot be reached or refused the operation (the service answers 503)."""


@dataclass(frozen=True)
class Event:
    """An event to store; ``timestamp`` is epoch seconds (None: the time it is received)."""

    user_id: str
    item_id: str
    timestamp: float | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    user_id: str
    item_id: str
    timestamp: float
    event_id: str | None


@dataclass(frozen=True)
class WriteResult:
    """``stored`` new events, ``duplicates`` skipped; ``new[i]`` tells whether event ``i`` was stored."""

    stored: int
    duplicates: int
    new: tuple[bool, ...] = ()


@runtime_checkable
class EventStore(Protocol):
    """What the service needs from an event store (thread-safe)."""

    url: str

    def add(self, events: Sequence[Event], received_at: float) -> WriteResult:
        """Store ``events`` in one committed transaction; returns after the commit."""
        ...

    def user_events(self, user_id: str, limit: int | None = None) -> list[StoredEvent]:
        """The user's events, oldest first (by timestamp, then arrival); at most the ``limit`` most recent."""
        ...

    def count(self) -> int:
        """Number of stored events."""
        ...

    def ping(self) -> None:
        """Raise :class:`StoreUnavailableError` unless the store answers a query."""
        ...

    def close(self) -> None: ...


def _rows(events: Sequence[Event], received_at: float) -> list[tuple[str, str, float, str | None, float]]:
    return [
        (e.user_id, e.item_id, received_at if e.timestamp is None else float(e.timestamp), e.event_id, received_at)
        for e in events
    ]


# ---------------------------------------------------------------------------------------------------- SQLite
_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    ts REAL NOT NULL,
    event_id TEXT UNIQUE,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_user_ts ON events (user_id, ts, seq);
"""


class SQLiteStore:
    """Events in one SQLite file (WAL journal, ``synchronous=FULL``, one writer, pooled readers)."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._timeout = busy_timeout_ms / 1000
        if not self.path.parent.is_dir():
            raise ConfigError(f"--db {self.url}: the folder {self.path.parent} does not exist")
        try:
            self._writer = self._connect()
            self._writer.execute("PRAGMA journal_mode=WAL")
            self._writer.executescript(_SQLITE_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"--db {self.url}: cannot open the SQLite event store ({exc})") from None
        self._write_lock = threading.Lock()
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._all: list[sqlite3.Connection] = [self._writer]
        self._all_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
        # sqlite3.connect(timeout=...) already installs the busy timeout (PRAGMA busy_timeout)
        return conn

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = self._connect()
            with self._all_lock:
                self._all.append(conn)
        try:
            yield conn
        finally:
            self._readers.put(conn)

    def add(self, events: Sequence[Event], received_at: float) -> WriteResult:
        if not events:
            return WriteResult(0, 0)
        rows = _rows(events, received_at)
        new: list[bool] = []
        with self._write_lock:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                for row in rows:
                    before = self._writer.total_changes
                    self._writer.execute(
                        "INSERT INTO events (user_id, item_id, ts, event_id, received_at) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (event_id) DO NOTHING",
                        row,
                    )
                    new.append(self._writer.total_changes > before)
                self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._writer.in_transaction:
                    self._writer.execute("ROLLBACK")
                raise StoreUnavailableError(f"SQLite event store {self.path}: write failed ({exc})") from None
        stored = sum(new)
        return WriteResult(stored, len(rows) - stored, tuple(new))

    def user_events(self, user_id: str, limit: int | None = None) -> list[StoredEvent]:
        try:
            with self._reader() as conn:
                rows = conn.execute(
                    "SELECT seq, user_id, item_id, ts, event_id FROM ("
                    "  SELECT seq, user_id, item_id, ts, event_id FROM events WHERE user_id = ? "
                    "  ORDER BY ts DESC, seq DESC LIMIT ?"
                    ") ORDER BY ts, seq",
                    (user_id, -1 if limit is None else int(limit)),
                ).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"SQLite event store {self.path}: read failed ({exc})") from None
        return [StoredEvent(*row) for row in rows]

    def count(self) -> int:
        try:
            with self._reader() as conn:
                return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"SQLite event store {self.path}: read failed ({exc})") from None

    def ping(self) -> None:
        try:
            with self._reader() as conn:
                conn.execute("SELECT 1 FROM events LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"SQLite event store {self.path}: not answering ({exc})") from None

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()


# ------------------------------------------------------------------------------------------------ PostgreSQL
class PostgresStore:
    """Events in a PostgreSQL table (psycopg 3, a small connection pool, ``synchronous_commit=on``)."""

    def __init__(self, dsn: str, *, table: str = "attnrec_events", pool_size: int = 8, connect_timeout: int = 5):
        import psycopg
        from psycopg import sql

        self._psycopg = psycopg
        self.url = _redact(dsn)
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        t = self._table = sql.Identifier(table)
        self._sql_insert = sql.SQL(
            "INSERT INTO {t} (user_id, item_id, ts, event_id, received_at) "
            "SELECT u, i, ts, e, r FROM unnest(%s::text[], %s::text[], %s::float8[], %s::text[], %s::float8[]) "
            "WITH ORDINALITY AS x(u, i, ts, e, r, n) ORDER BY n "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        ).format(t=t)
        self._sql_user = sql.SQL(
            "SELECT seq, user_id, item_id, ts, event_id FROM ("
            "  SELECT seq, user_id, item_id, ts, event_id FROM {t} WHERE user_id = %s "
            "  ORDER BY ts DESC, seq DESC LIMIT %s"
            ") AS recent ORDER BY ts, seq"
        ).format(t=t)
        self._sql_count = sql.SQL("SELECT count(*) FROM {t}").format(t=t)
        self._sql_ping = sql.SQL("SELECT 1 FROM {t} LIMIT 1").format(t=t)
        schema = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {t} ("
                " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                " user_id TEXT NOT NULL, item_id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,"
                " event_id TEXT UNIQUE, received_at DOUBLE PRECISION NOT NULL)"
            ).format(t=t),
            sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} (user_id, ts, seq)").format(
                i=sql.Identifier(f"{table}_user_ts"), t=t
            ),
        ]
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x617474_6E72_6563,))  # serialise DDL
            for stmt in schema:
                conn.execute(stmt)

    def _new_connection(self) -> Any:
        try:
            conn = self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._connect_timeout)
            conn.execute("SET synchronous_commit = on")
        except self._psycopg.Error as exc:
            raise StoreUnavailableError(f"--db {self.url}: cannot connect to PostgreSQL ({_one_line(exc)})") from None
        return conn

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        if not self._slots.acquire(timeout=30):
            raise StoreUnavailableError(f"--db {self.url}: no free connection within 30 s")
        conn = None
        try:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._new_connection()
            if conn.closed:
                conn = self._new_connection()
            try:
                yield conn
            except self._psycopg.OperationalError as exc:
                conn.close()
                raise StoreUnavailableError(f"--db {self.url}: PostgreSQL failed ({_one_line(exc)})") from None
            except self._psycopg.Error as exc:
                raise StoreUnavailableError(f"--db {self.url}: PostgreSQL refused ({_one_line(exc)})") from None
        finally:
            if conn is not None and not conn.closed:
                self._pool.put(conn)
            self._slots.release()

    def add(self, events: Sequence[Event], received_at: float) -> WriteResult:
        if not events:
            return WriteResult(0, 0)
        rows = _rows(events, received_at)
        columns = [list(col) for col in zip(*rows, strict=True)]
        with self._conn() as conn, conn.transaction():
            returned = [r[0] for r in conn.execute(self._sql_insert, columns).fetchall()]
        # rows without event_id are always stored; a returned event_id is its first occurrence in the request
        fresh = {e for e in returned if e is not None}
        new = []
        for event in events:
            if event.event_id is None:
                new.append(True)
            elif event.event_id in fresh:
                fresh.discard(event.event_id)
                new.append(True)
            else:
                new.append(False)
        return WriteResult(len(returned), len(rows) - len(returned), tuple(new))

    def user_events(self, user_id: str, limit: int | None = None) -> list[StoredEvent]:
        with self._conn() as conn:
            rows = conn.execute(self._sql_user, (user_id, limit)).fetchall()
        return [StoredEvent(int(s), u, i, float(t), e) for s, u, i, t, e in rows]

    def count(self) -> int:
        with self._conn() as conn:
            return int(conn.execute(self._sql_count).fetchone()[0])

    def ping(self) -> None:
        with self._conn() as conn:
            conn.execute(self._sql_ping).fetchall()

    def drop(self) -> None:
        """Drop the events table (tests)."""
        from psycopg import sql

        with self._conn() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {t}").format(t=self._table))

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break


def _redact(dsn: str) -> str:
    """The DSN without its password (for messages)."""
    head, sep, tail = dsn.partition("://")
    if sep and "@" in tail:
        cred, _, rest = tail.rpartition("@")
        user = cred.split(":", 1)[0]
        return f"{head}://{user}:***@{rest}" if ":" in cred else f"{head}://{user}@{rest}"
    return dsn


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def open_store(url: str, **options: Any) -> EventStore:
    """Open the store named by ``url``: ``sqlite:///PATH`` (``sqlite:////abs/path``) or a plain path for SQLite,
    ``postgresql://...`` / ``postgres://...`` for PostgreSQL."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, **options)
    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///") :], **options)
    if "://" in url:
        raise ConfigError(
            f"--db must be 'sqlite:///PATH', a file path or 'postgresql://...'; got scheme {url.split('://')[0]!r}"
        )
    return SQLiteStore(url, **options)
