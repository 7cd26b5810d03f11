"""Speed of full-ranking evaluation at MovieLens-1M size (6,040 users x 3,416 items).

Uses the real ``../shared/data/ml-1m/ml-1m.txt`` leave-one-out split when present (history = train + valid,
one test item per user), otherwise a synthetic log of the same shape. The model's ``score_indices`` returns rows
of a precomputed random score table, so the timing covers what evaluation itself costs: score retrieval through
``scores_with_fallback``, masking the history, ranking the targets (pessimistic ties), the metrics at k = 10, 20
and the coverage top-k lists. Target: <= 1 s with 2 threads.

Usage (from the project root)::

    nice -n 10 .venv/bin/python benchmarks/eval_speed.py [--threads 2] [--repeats 5] [--synthetic]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import torch

from attnrec.base import Recommender
from attnrec.data import IdVocabulary, Interactions, leave_one_out
from attnrec.evaluation import evaluate

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-1m" / "ml-1m.txt"


class PrecomputedScores(Recommender):
    """``score_indices`` = rows of a fixed random table (no model cost)."""

    name = "precomputed-benchmark"
    uses_history = False

    def __init__(self, table: np.ndarray) -> None:
        super().__init__()
        self.table = table

    def _fit(self, train, valid, options) -> None:  # type: ignore[no-untyped-def]
        pass

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return self.table[user_idx]


def load_ml1m() -> Interactions:
    frame = pl.read_csv(DATA, separator=" ", has_header=False, new_columns=["u", "i"])
    u_raw, i_raw = frame["u"].to_numpy(), frame["i"].to_numpy()
    return _index(u_raw, i_raw)


def synthetic(n_users: int = 6040, n_items: int = 3416, n_events: int = 999_611, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    pop = rng.zipf(1.3, size=n_items).astype(np.float64)
    per_user = rng.multinomial(n_events - 5 * n_users, np.full(n_users, 1 / n_users)) + 5
    u_raw = np.repeat(np.arange(1, n_users + 1), per_user)
    i_raw = rng.choice(n_items, size=len(u_raw), p=pop / pop.sum()) + 1
    return _index(u_raw, i_raw)


def _index(u_raw: np.ndarray, i_raw: np.ndarray) -> Interactions:
    u_ids, u_idx = np.unique(u_raw, return_inverse=True)
    i_ids, i_idx = np.unique(i_raw, return_inverse=True)
    users = IdVocabulary([str(x) for x in u_ids], kind="user")
    items = IdVocabulary([str(x) for x in i_ids], kind="item")
    order = np.arange(len(u_raw), dtype=np.int64)  # file order = time order per user
    return Interactions(users, items, u_idx.astype(np.int64) + 1, i_idx.astype(np.int64) + 1, order=order).sorted()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--synthetic", action="store_true", help="ignore ml-1m.txt even when present")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    real = DATA.exists() and not args.synthetic
    inter = load_ml1m() if real else synthetic()
    split = leave_one_out(inter)
    table = np.random.default_rng(0).random((inter.num_users + 1, inter.num_items + 1), dtype=np.float32)
    model = PrecomputedScores(table).fit(split.train)

    evaluate(model, split, target="test")  # warm-up (also builds the cached history offsets)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = evaluate(model, split, target="test", ks=(10, 20))
        times.append(time.perf_counter() - start)
    source = "ml-1m.txt leave-one-out" if real else "synthetic ML-1M-shaped log"
    print(f"data: {source}: {inter.num_users} users x {inter.num_items} items, {len(inter)} events")
    print(f"evaluated users: {result.n_users} (protocol {result.protocol}, ks 10,20), threads: {args.threads}")
    print(f"hr@10 of random scores: {result.summary['hr@10']:.4f} (chance level: 10 / (items - history) ~ 0.003)")
    print(
        f"full-ranking evaluation: best {min(times):.3f} s, median {float(np.median(times)):.3f} s "
        f"over {args.repeats} runs (target <= 1 s)"
    )


if __name__ == "__main__":
    main()
