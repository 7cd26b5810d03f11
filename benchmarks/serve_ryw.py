"""Read-your-writes: N trials of "POST an event, then GET recommendations" against `attnrec serve`; count stale
answers.

Oracle: this process loads the same run folder and computes, for every trial, the top-k the model gives for the
user's full history *including* the event just posted (training history + every event posted so far, in order).
An answer is *stale* when it differs from that list, or when it contains the item just posted (seen items are
excluded). Half the trials use known ML-1M users, half new users (no training history). Torch uses one thread on
both sides so that scores are bit-identical; lists are compared item by item (a different order among items
with equal scores would still count as stale).

Usage (from the project root)::

    nice -n 5 .venv/bin/python benchmarks/serve_ryw.py --model sasrec --trials 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_common import WORK, Connection, Server, ensure_run


async def trials(port: int, n: int, k: int, model: object, seed: int) -> dict[str, object]:
    from attnrec.base import Recommender

    assert isinstance(model, Recommender) and model.items_ is not None and model.users_ is not None
    rng = random.Random(seed)
    items = model.items_.all_ids
    known = model.users_.all_ids
    posted: dict[str, list[str]] = {}
    conn = Connection(port)
    stale = contains_posted = 0
    lat: list[float] = []
    pool = [rng.choice(known) for _ in range(n // 10)] + [f"ryw-new-{i}" for i in range(n // 10)]
    for t in range(n):
        user = pool[t % len(pool)]
        item = rng.choice(items)
        status, _ = await conn.request(
            "POST", "/events", {"events": [{"user_id": user, "item_id": item, "event_id": f"ryw-{seed}-{t}"}]}
        )
        assert status == 200, status
        posted.setdefault(user, []).append(item)
        t0 = time.perf_counter()
        status, body = await conn.request("GET", f"/users/{user}/recommendations?k={k}")
        lat.append(time.perf_counter() - t0)
        assert status == 200, status
        served = [i["item_id"] for i in json.loads(body)["items"]]
        uidx = model.users_.get(user)
        history = np.concatenate([model.history(uidx), model.items_.indices(posted[user])]).astype(np.int64)
        expected = model.recommend_indices(np.array([uidx]), [history], k=k).row(0)
        if served != [i for i, _ in expected]:
            stale += 1
        if item in served:
            contains_posted += 1
    conn.close()
    arr = np.asarray(lat) * 1000
    return {
        "trials": n,
        "stale_answers": stale,
        "answers_containing_the_posted_item": contains_posted,
        "users": len(posted),
        "recommend_p50_ms": round(float(np.percentile(arr, 50)), 2),
        "recommend_p99_ms": round(float(np.percentile(arr, 99)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 10 <= args.trials <= 20_000:
        raise SystemExit("--trials must be within 10..20000")
    import torch

    torch.set_num_threads(1)
    from attnrec.base import Recommender

    run = ensure_run(args.model)
    model = Recommender.load(run)
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "ryw.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    server = Server(run, db, threads=1)
    try:
        server.start()
        result = asyncio.run(trials(server.port, args.trials, args.k, model, args.seed))
    finally:
        server.stop()
    print(json.dumps({"model": args.model, **result}, indent=2))


if __name__ == "__main__":
    main()
