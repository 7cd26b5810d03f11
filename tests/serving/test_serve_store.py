"""Issue 4, point 2: the event stores (SQLite and PostgreSQL): committed before the answer, idempotent
``event_id``, unknown items kept, parameterised SQL, ordering, concurrency."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import post_events

from attnrec.errors import ConfigError
from attnrec.serving.store import Event, SQLiteStore, open_store


def test_acknowledged_events_are_committed_before_the_answer(client: Any, store_factory: Any) -> None:
    ack = post_events(client, {"user_id": "d", "item_id": "i1"}, {"user_id": "d", "item_id": "zz"})
    assert ack.json()["stored"] == 2
    # a separate connection (another process would see the same) finds them immediately
    other = store_factory()
    try:
        assert [e.item_id for e in other.user_events("d")] == ["i1", "zz"]
        assert other.count() == 2
    finally:
        other.close()


def test_event_id_makes_retries_idempotent(client: Any, store_factory: Any) -> None:
    batch = [
        {"user_id": "r", "item_id": "i1", "event_id": "evt-1"},
        {"user_id": "r", "item_id": "i2", "event_id": "evt-2"},
        {"user_id": "r", "item_id": "i2", "event_id": "evt-2"},  # repeated inside the request
        {"user_id": "r", "item_id": "i3"},
    ]
    assert post_events(client, *batch).json() == {"stored": 3, "duplicates": 1, "unknown_items": 0, "unknown_users": 3}
    retry = post_events(client, *batch[:2]).json()
    assert retry["stored"] == 0 and retry["duplicates"] == 2 and retry["unknown_users"] == 0
    assert client.get("/users/r/history").json()["items"] == ["i1", "i2", "i3"]
    store = store_factory()
    try:
        assert store.count() == 3
    finally:
        store.close()


def test_store_orders_by_timestamp_then_arrival_and_limits_to_recent(store_factory: Any) -> None:
    store = store_factory()
    try:
        store.add([Event("o", "b", 20.0), Event("o", "a", 10.0), Event("o", "c", 20.0)], received_at=99.0)
        store.add([Event("o", "d")], received_at=30.0)
        assert [e.item_id for e in store.user_events("o")] == ["a", "b", "c", "d"]
        assert [e.item_id for e in store.user_events("o", limit=2)] == ["c", "d"]
        assert store.user_events("nobody") == []
        result = store.add([Event("o", "x", None, "same"), Event("o", "y", None, "same")], received_at=40.0)
        assert (result.stored, result.duplicates, result.new) == (1, 1, (True, False))
    finally:
        store.close()


def test_sql_is_parameterised(store_factory: Any) -> None:
    store = store_factory()
    try:
        nasty = ["'; DROP TABLE events; --", "x' OR '1'='1", "%s", "?", "\\", '"quoted"', "$1"]
        store.add([Event(n, n, 1.0, n) for n in nasty], received_at=1.0)
        for n in nasty:
            assert [(e.user_id, e.item_id, e.event_id) for e in store.user_events(n)] == [(n, n, n)]
        assert store.count() == len(nasty)
    finally:
        store.close()


def test_concurrent_writers_lose_nothing(store_factory: Any) -> None:
    store = store_factory()
    try:

        def write(t: int) -> None:
            for n in range(20):
                store.add([Event(f"w{t}", f"i{n}", float(n), f"{t}-{n}")], received_at=1.0)

        threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert store.count() == 80
        assert [e.item_id for e in store.user_events("w2")] == [f"i{n}" for n in range(20)]
    finally:
        store.close()


def test_sqlite_uses_wal_and_full_sync(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "e.sqlite3")
    try:
        store.add([Event("u", "i")], received_at=1.0)
        with store._reader() as conn:  # the connections the store writes and reads with
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        store.close()
    raw = sqlite3.connect(tmp_path / "e.sqlite3")
    assert raw.execute("SELECT user_id, item_id FROM events").fetchall() == [("u", "i")]
    raw.close()


def test_open_store_urls(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path}/a.sqlite3", str(tmp_path / "b.sqlite3")):
        store = open_store(url)
        assert isinstance(store, SQLiteStore)
        store.close()
    assert (tmp_path / "a.sqlite3").exists() and (tmp_path / "b.sqlite3").exists()
    with pytest.raises(ConfigError, match="scheme 'mysql'"):
        open_store("mysql://x")
    with pytest.raises(ConfigError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/missing/e.sqlite3")


def test_postgres_password_is_not_in_messages() -> None:
    from attnrec.serving.store import StoreUnavailableError, _redact

    assert _redact("postgresql://user:s3cret@host:5432/db") == "postgresql://user:***@host:5432/db"
    with pytest.raises(StoreUnavailableError) as info:
        open_store("postgresql://user:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(info.value)
