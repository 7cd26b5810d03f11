"""Mixed load against `attnrec serve` on 127.0.0.1: 80% recommendations, 20% events.

The server runs in its own process (``attnrec serve`` via :func:`attnrec.cli.serve.serve_command`, ``nice -n 5``);
this process drives a closed-loop load from ``--concurrency`` keep-alive connections for ``--seconds`` and prints
throughput and p50/p95/p99 latency per endpoint. Mix: 55% GET /users/{id}/recommendations, 5% the same with
explain=true, 20% POST /recommendations (anonymous 20-item history), 20% POST /events (one event, 20% of them
for new users).

Usage (from the project root)::

    nice -n 5 .venv/bin/python benchmarks/serve_load.py --model sasrec --seconds 120 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_common import WORK, Server, drive, ensure_run, one_request, user_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sasrec", help="sasrec, itemknn, ease, popularity (ML-1M run)")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    if not 1 <= args.seconds <= 900 or not 1 <= args.concurrency <= 64:
        raise SystemExit("--seconds must be within 1..900 and --concurrency within 1..64")

    run = ensure_run(args.model)
    items, users = user_ids()
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / f"load-{args.model}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    server = Server(run, db, threads=args.threads)
    try:
        ready = server.start()
        print(f"server ready in {ready:.2f} s ({args.model}, torch threads {args.threads}); warming up")
        asyncio.run(drive(server.port, args.warmup, args.concurrency, users, items, seed=99))
        stats, wall = asyncio.run(drive(server.port, args.seconds, args.concurrency, users, items, seed=1))
        _, metrics = asyncio.run(one_request(server.port, "GET", "/metrics"))
    finally:
        server.stop()
    print(f"mixed load, {args.concurrency} connections, {wall:.1f} s, model {args.model}")
    print(stats.table(wall))
    bad = sum(n for by in stats.statuses.values() for code, n in by.items() if code >= 400)
    print(f"non-2xx answers: {bad}; connection errors: {sum(stats.errors.values())}")
    cache = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in metrics.decode().splitlines()
        if line.startswith("attnrec_recommendation_cache_total{")
    }
    looked_up = sum(cache.values())
    if looked_up:
        print(f"per-user list cache (warm-up included): {cache.get('hit', 0) / looked_up:.1%} hits of {looked_up:.0f}")


if __name__ == "__main__":
    main()
