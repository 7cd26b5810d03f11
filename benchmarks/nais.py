"""NAIS and the content model next to ItemKNN and EASE: leave-one-out, full ranking, several seeds.

Protocol (``docs/benchmarks.md``, section "NAIS and the content model"): per user the last event is test, the
second last validation, the rest training. NAIS trains on *train* with its defaults, early-stops on validation
NDCG@10 and keeps its best epoch; the content model reads item features (``u.item``; ML-1M ``movies.dat``
through ``sas_to_original_items.txt``) and has nothing to train; both are evaluated on *test* with history =
train + valid, ranking every item except the user's history. ItemKNN and EASE are chosen on validation over the
grids of ``benchmarks/classic.py``, refitted on train + valid and evaluated the same way (deterministic: one run
whatever the seed). No per-dataset settings.

Usage (from the project root)::

    flock /work/bench/heavy.lock nice -n 5 .venv/bin/python benchmarks/nais.py --datasets ml-100k ml-1m \
        --seeds 0,1,2 [--models nais content itemknn ease] [--set key=value ...] [--threads 2] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from classic import run_model
from sequential import cpu_name, parse_sets

from attnrec.data import Interactions, leave_one_out
from attnrec.data.features import load_item_features
from attnrec.data.loaders import load_interactions
from attnrec.evaluation import evaluate
from attnrec.registry import create_model
from attnrec.training.options import TrainingOptions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS: dict[str, tuple[Path, str, Path, Path | None]] = {
    "ml-100k": (DATA / "ml-100k" / "u.data", "udata", DATA / "ml-100k" / "u.item", None),
    "ml-1m": (
        DATA / "ml-1m" / "ml-1m.txt",
        "sasrec",
        DATA / "ml-1m" / "movies.dat",
        DATA / "ml-1m" / "sas_to_original_items.txt",
    ),
}


def run_trained(
    name: str, split: Any, features: Any, params: dict[str, Any], seed: int, threads: int
) -> dict[str, Any]:
    model = create_model(name, params)
    if getattr(model, "needs_item_features", False):
        model.set_features(items=features)
    start = time.perf_counter()

    def log(row: dict[str, Any]) -> None:
        print(f"  {name} seed {seed}: " + json.dumps(row, default=str), file=sys.stderr, flush=True)

    model.fit(split.train, split.valid, options=TrainingOptions(seed=seed, threads=threads, log=log))
    train_seconds = time.perf_counter() - start
    history = list(getattr(model, "history_", []) or [])
    epoch_seconds = [float(r["seconds"]) for r in history if "seconds" in r]
    start = time.perf_counter()
    res = evaluate(model, split, target="test", ks=(10, 20))
    return {
        "model": name,
        "seed": seed,
        "train_seconds": train_seconds,
        "test_seconds": time.perf_counter() - start,
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else None,
        "best_epoch": model.train_info_.get("best_epoch"),
        "epochs_run": model.train_info_.get("epochs_run"),
        "config": model.get_config(),
        "fallback": res.num_fallback,
        **res.summary,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"], choices=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=["nais", "content", "itemknn", "ease"])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="NAIS key=value")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)  # --threads for the evaluations after each fit too
    seeds = [int(s) for s in args.seeds.split(",")]
    nais_params = parse_sets(args.sets)
    results: list[dict[str, Any]] = []
    print(f"CPU: {cpu_name()}; threads {args.threads}; NAIS --set {nais_params or '-'}", flush=True)
    for ds in args.datasets:
        path, fmt, items_path, id_map = DATASETS[ds]
        inter = Interactions.from_frame(load_interactions(path, format=fmt))
        features = load_item_features(items_path, id_map=id_map)
        split = leave_one_out(inter)
        print(f"\n### {ds}: {inter.num_users} users, {inter.num_items} items, {len(inter)} events\n", flush=True)
        print("| model | HR@10 | NDCG@10 | MRR@10 | coverage@10 | s/epoch | best epoch |")
        print("|---|---|---|---|---|---|---|", flush=True)
        for name in args.models:
            if name in ("itemknn", "ease"):
                r = run_model(name, split, TrainingOptions(seed=seeds[0], threads=args.threads), tune=True)
                runs = [{**r, "seed": s} for s in seeds]
            else:
                params = nais_params if name == "nais" else {}
                runs = [run_trained(name, split, features, params, s, args.threads) for s in seeds]
            for r in runs:
                r["dataset"] = ds
            results.extend(runs)

            def ms(key: str, runs: list[dict[str, Any]] = runs) -> str:
                v = np.asarray([r[key] for r in runs], dtype=float)
                return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"

            spe = [r.get("seconds_per_epoch") for r in runs if r.get("seconds_per_epoch")]
            best = [str(r.get("best_epoch")) for r in runs if r.get("best_epoch") is not None]
            print(
                f"| {name} | {ms('hr@10')} | {ms('ndcg@10')} | {ms('mrr@10')} | {ms('coverage@10')} | "
                f"{np.mean(spe):.1f} | {','.join(best) or '-'} |"
                if spe
                else f"| {name} | {ms('hr@10')} | {ms('ndcg@10')} | {ms('mrr@10')} | {ms('coverage@10')} | - | - |",
                flush=True,
            )
            if args.out is not None:
                args.out.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
