"""Classic baselines on MovieLens-100K and MovieLens-1M (leave-one-out, full ranking over all items).

Protocol (also in ``docs/benchmarks.md``):

1. Load the log (``../shared/data``), leave-one-out split: per user the last event is test, the second last
   validation, the rest training.
2. For each model, fit every configuration of a small grid on *train* and score it on *valid* (history = train);
   keep the configuration with the best NDCG@10.
3. Refit that configuration on *train + valid* (same seed) and evaluate on *test* with history = train + valid,
   ranking all items except the user's history. Report HR@10, NDCG@10, MRR@10, coverage@10 and the fit seconds
   of that final fit.
4. BiasedMF on ML-100K ratings: same split (last rating per user is test), early stopping on validation RMSE,
   MAE/RMSE on test next to the global-mean and item-mean baselines.

Usage (from the project root)::

    nice -n 10 .venv/bin/python benchmarks/classic.py [--datasets ml-100k ml-1m] [--threads 2] [--no-tune]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnrec.data import Interactions, leave_one_out
from attnrec.data.split import Split
from attnrec.evaluation import evaluate, evaluate_ratings
from attnrec.registry import create_model
from attnrec.training.options import TrainingOptions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS = {
    "ml-100k": (DATA / "ml-100k" / "u.data", "udata"),
    "ml-1m": (DATA / "ml-1m" / "ml-1m.txt", "sasrec"),
    "beauty": (DATA / "amazon-beauty" / "Beauty.txt", "sequence"),
    "lastfm": (DATA / "lastfm" / "LastFM.txt", "sequence"),
}

GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{}],
    "itemknn": [{"neighbors": 50}, {"neighbors": 200}, {"neighbors": 200, "shrinkage": 20.0}],
    "userknn": [{"neighbors": 20}, {"neighbors": 50}, {"neighbors": 100}, {"neighbors": 200}],
    "ease": [{"l2": 100.0}, {"l2": 25.0}, {"l2": 50.0}, {"l2": 250.0}, {"l2": 500.0}, {"l2": 1000.0}, {"l2": 2000.0}],
    "als": [
        {"factors": 64, "alpha": 2.0},
        {"factors": 64, "alpha": 10.0},
        {"factors": 128, "alpha": 2.0, "regularization": 0.5},
        {"factors": 128, "alpha": 10.0, "regularization": 0.5},
    ],
    "bpr": [{"factors": 64}, {"factors": 128}, {"factors": 128, "learning_rate": 0.01, "iterations": 200}],
}


def load(name: str) -> Interactions:
    path, fmt = DATASETS[name]
    if not path.exists():
        raise SystemExit(f"{path}: dataset not found (see /work/shared/data/README.md)")
    from attnrec.data.loaders import load_interactions

    return Interactions.from_frame(load_interactions(path, format=fmt))


def run_model(name: str, split: Split, options: TrainingOptions, tune: bool) -> dict[str, Any]:
    grid = GRIDS[name] if tune else GRIDS[name][:1]
    best: tuple[float, dict[str, Any]] = (-1.0, grid[0])
    tried = []
    if len(grid) > 1:
        for params in grid:
            model = create_model(name, params).fit(split.train, split.valid, options=options)
            ndcg = evaluate(model, split, target="valid", ks=(10,)).summary["ndcg@10"]
            tried.append((params, ndcg))
            if ndcg > best[0]:
                best = (ndcg, params)
    model = create_model(name, best[1])
    start = time.perf_counter()
    model.fit(split.history_for("test"), options=options)
    fit_seconds = time.perf_counter() - start
    res = evaluate(model, split, target="test", ks=(10, 20))
    return {
        "model": name,
        "params": best[1],
        "valid_ndcg": best[0],
        "tried": tried,
        "fit_seconds": fit_seconds,
        "fallback": res.num_fallback,
        **res.summary,
    }


def rating_benchmark(split: Split, options: TrainingOptions) -> dict[str, float]:
    model = create_model("mf").fit(split.train, split.valid, options=options)
    out = evaluate_ratings(model, split.test)
    test, train = split.test, split.train
    assert test.rating is not None and train.rating is not None
    mu = train.rating.mean()
    sums = np.bincount(train.item_idx, weights=train.rating, minlength=train.num_items + 1)
    counts = np.bincount(train.item_idx, minlength=train.num_items + 1)
    item_mean = np.where(counts > 0, sums / np.maximum(counts, 1), mu)[test.item_idx]
    return {
        "mf_mae": out["mae"],
        "mf_rmse": out["rmse"],
        "mf_best_epoch": float(model.train_info_.get("best_epoch", 0)),
        "mean_mae": float(np.mean(np.abs(test.rating - mu))),
        "mean_rmse": float(np.sqrt(np.mean((test.rating - mu) ** 2))),
        "item_mean_mae": float(np.mean(np.abs(test.rating - item_mean))),
        "item_mean_rmse": float(np.sqrt(np.mean((test.rating - item_mean) ** 2))),
        "fit_seconds": model.fit_seconds_,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"], choices=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-tune", action="store_true", help="use the first grid entry (the defaults)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)  # --threads for the evaluations after each fit too
    options = TrainingOptions(seed=args.seed, threads=args.threads)
    for ds in args.datasets:
        inter = load(ds)
        split = leave_one_out(inter)
        print(
            f"\n### {ds}: {inter.num_users} users, {inter.num_items} items, {len(inter)} events "
            f"(train {len(split.train)}, valid {len(split.valid)}, test {len(split.test)})\n"
        )
        print("| model | chosen params (valid NDCG@10) | HR@10 | NDCG@10 | MRR@10 | coverage@10 | fit s |")
        print("|---|---|---|---|---|---|---|")
        for name in args.models:
            r = run_model(name, split, options, tune=not args.no_tune)
            params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
            valid = f" ({r['valid_ndcg']:.4f})" if r["valid_ndcg"] >= 0 else ""
            print(
                f"| {name} | {params}{valid} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['mrr@10']:.4f} | "
                f"{r['coverage@10']:.4f} | {r['fit_seconds']:.1f} |",
                flush=True,
            )
        if ds == "ml-100k" and inter.rating is not None:
            m = rating_benchmark(split, options)
            print("\n| rating model (last rating per user) | MAE | RMSE | fit s |")
            print("|---|---|---|---|")
            print(f"| global mean | {m['mean_mae']:.4f} | {m['mean_rmse']:.4f} | - |")
            print(f"| item mean | {m['item_mean_mae']:.4f} | {m['item_mean_rmse']:.4f} | - |")
            print(
                f"| BiasedMF (defaults, best epoch {int(m['mf_best_epoch'])}) | {m['mf_mae']:.4f} | "
                f"{m['mf_rmse']:.4f} | {m['fit_seconds']:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
