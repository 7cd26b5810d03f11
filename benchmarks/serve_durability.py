"""Durability of acknowledged events: `kill -9` the server mid-load, restart it, check every acknowledged event.

Each round drives a mixed load (events carry unique ``event_id``s; the client records the ids of every event the
server acknowledged with 200) and sends SIGKILL to the server at a random moment while requests are in flight.
The server is restarted on the same store and the time until ``/ready`` answers 200 is measured. After the last
round the store is read directly: every acknowledged ``event_id`` must be there, exactly once.

Usage (from the project root)::

    nice -n 5 .venv/bin/python benchmarks/serve_durability.py --model sasrec --rounds 5 \
        [--db postgresql://attnrec:attnrec@127.0.0.1:5432/attnrec_test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_common import WORK, Server, drive, ensure_run, user_ids


def stored_event_ids(db_url: str, table: str = "attnrec_events") -> list[str]:
    if db_url.startswith("postgres"):
        import psycopg
        from psycopg import sql

        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                sql.SQL("SELECT event_id FROM {t} WHERE event_id IS NOT NULL").format(t=sql.Identifier(table))
            ).fetchall()
    else:
        conn = sqlite3.connect(db_url[len("sqlite:///") :])
        rows = conn.execute("SELECT event_id FROM events WHERE event_id IS NOT NULL").fetchall()
        conn.close()
    return [r[0] for r in rows]


def drop_pg_table(db_url: str, table: str = "attnrec_events") -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {t}").format(t=sql.Identifier(table)))


async def round_(
    server: Server, users: list[str], items: list[str], seconds: float, seed: int, acked: set[str]
) -> tuple[int, int]:
    def on_answer(name: str, body: Any, status: int, data: bytes) -> None:
        if name == "POST /events" and status == 200:
            for event in body["events"]:
                acked.add(event["event_id"])

    stop = asyncio.Event()

    async def killer() -> None:
        await asyncio.sleep(seconds)
        server.kill9()  # while the load is running
        stop.set()

    load = asyncio.create_task(
        drive(server.port, seconds + 5, 8, users, items, seed=seed, stop=stop, on_answer=on_answer)
    )
    await killer()
    stats, _ = await load
    ok = sum(n for by in stats.statuses.values() for code, n in by.items() if code == 200)
    return ok, sum(stats.errors.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", default=None, help="postgresql://... (default: a fresh SQLite file)")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20:
        raise SystemExit("--rounds must be within 1..20")
    run = ensure_run(args.model)
    items, users = user_ids()
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "durability.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db_url = args.db or f"sqlite:///{db}"
    if db_url.startswith("postgres"):
        drop_pg_table(db_url)
    rng = random.Random(0)
    acked: set[str] = set()
    server = Server(run, db, db_url=db_url)
    ready_times = [server.start()]
    print(f"store {db_url.split('@')[-1]}; model {args.model}; first start ready in {ready_times[0]:.2f} s")
    try:
        for r in range(args.rounds):
            kill_after = rng.uniform(3, 8)
            # a fresh client-side event_id prefix per round: ids stay unique across restarts
            ok, errors = asyncio.run(round_(server, users, items, kill_after, seed=100 + r, acked=acked))
            restart = server.start()
            ready_times.append(restart)
            print(
                f"round {r + 1}: killed after {kill_after:.1f} s ({ok} answers 200, {errors} connection errors "
                f"at the kill); acknowledged events so far {len(acked)}; restarted, /ready after {restart:.2f} s"
            )
    finally:
        server.stop()
    stored = stored_event_ids(db_url)
    stored_set = set(stored)
    missing = acked - stored_set
    duplicates = len(stored) - len(stored_set)
    print(
        json.dumps(
            {
                "acknowledged_events": len(acked),
                "stored_events_with_id": len(stored),
                "acknowledged_missing": len(missing),
                "stored_but_unacknowledged": len(stored_set - acked),
                "duplicate_event_ids": duplicates,
                "ready_seconds_max": round(max(ready_times), 2),
                "ready_seconds": [round(t, 2) for t in ready_times],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
