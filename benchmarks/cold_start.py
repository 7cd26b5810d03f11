"""Cold start: held-out items (features, no events) and held-out users (demographics, no history), several seeds.

Protocols (``attnrec.evaluation.cold``; ``docs/benchmarks.md``, section "Cold start"):

* cold items: 10% of the items with features are held out with all their events; they stay in the catalogue as
  cold items; recall@10 / NDCG@10 of the held-out items among all items (full ranking, history = the user's other
  events) for the content model, popularity, and DIN / AutoInt when they are registered (``--models``).
* cold users: 10% of the users with user features are held out with all their events; at test time they have
  demographics and no history at all; global popularity vs the demographic fallback.

Usage (from the project root)::

    flock /work/bench/heavy.lock nice -n 5 .venv/bin/python benchmarks/cold_start.py --datasets ml-100k ml-1m \
        --seeds 0,1,2 [--models content popularity din autoint] [--set din.epochs=5] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from attnrec.data import Interactions
from attnrec.data.features import load_item_features, load_user_features
from attnrec.data.loaders import load_interactions
from attnrec.errors import AttnRecError
from attnrec.evaluation.cold import cold_item_split, cold_user_split, evaluate_cold_items, evaluate_cold_users
from attnrec.registry import available_models, create_model
from attnrec.training.options import TrainingOptions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS: dict[str, tuple[Path, str, Path, Path]] = {
    "ml-100k": (DATA / "ml-100k" / "u.data", "udata", DATA / "ml-100k" / "u.item", DATA / "ml-100k" / "u.user"),
    "ml-1m": (
        DATA / "ml-1m" / "extra" / "ratings_partial_users1-2999.dat",
        "movielens",
        DATA / "ml-1m" / "movies.dat",
        DATA / "ml-1m" / "users.dat",
    ),
}


def parse_sets(values: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        model, dot, name = key.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--set {item!r}: expected model.key=value")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(model, {})[name] = value
    return out


def mean_sd(values: list[float]) -> str:
    arr = np.asarray(values, dtype=np.float64)
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return f"{arr.mean():.4f} ± {sd:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k"], choices=sorted(DATASETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", nargs="+", default=["content", "popularity", "din", "autoint"])
    parser.add_argument("--set", action="append", default=[], help="model.key=value (JSON value)")
    parser.add_argument("--frac", type=float, default=0.1)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-users", action="store_true", help="only the cold-item protocol")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    params = parse_sets(args.set)
    registered = set(available_models())
    missing = [m for m in args.models if m not in registered]
    models = [m for m in args.models if m in registered]
    for m in missing:
        print(f"# {m}: not registered in this attnrec, skipped", file=sys.stderr)
    results: list[dict[str, Any]] = []
    k = args.k
    for name in args.datasets:
        path, fmt, items_path, users_path = DATASETS[name]
        inter = Interactions.from_frame(load_interactions(path, format=fmt))
        items = load_item_features(items_path)
        users = load_user_features(users_path)
        for seed in seeds:
            split = cold_item_split(inter, items, frac=args.frac, seed=seed)
            for model_name in models:
                model = create_model(model_name, params.get(model_name, {}))
                model.set_features(items=items, users=users)
                start = time.perf_counter()
                try:
                    model.fit(split.train, options=TrainingOptions(seed=seed, threads=args.threads, device=args.device))
                except AttnRecError as exc:
                    print(f"# {name} seed {seed} {model_name}: {exc}", file=sys.stderr)
                    continue
                metrics = evaluate_cold_items(model, split, k=k)
                row = {"dataset": name, "protocol": "cold items", "answer": model_name, "seed": seed, **metrics}
                row["seconds"] = round(time.perf_counter() - start, 1)
                results.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
            if args.skip_users:
                continue
            usplit = cold_user_split(inter, users.ids, frac=args.frac, seed=seed)
            base = create_model("itemknn").set_features(users=users).fit(usplit.train)
            for answer, metrics in evaluate_cold_users(base, usplit, k=k).items():
                row = {"dataset": name, "protocol": "cold users", "answer": answer, "seed": seed, **metrics}
                row["unreachable_events"] = usplit.unreachable
                results.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"| dataset | protocol | answer | recall@{k} | NDCG@{k} | test users | seeds |")
    print("|---|---|---|---|---|---|---|")
    keys = list(dict.fromkeys((r["dataset"], r["protocol"], r["answer"]) for r in results))
    for key in keys:
        rows = [r for r in results if (r["dataset"], r["protocol"], r["answer"]) == key]
        users_n = sorted({int(r["users"]) for r in rows})
        users_s = str(users_n[0]) if len(users_n) == 1 else f"{users_n[0]}-{users_n[-1]}"
        print(
            f"| {key[0]} | {key[1]} | {key[2]} | {mean_sd([r[f'recall@{k}'] for r in rows])} | "
            f"{mean_sd([r[f'ndcg@{k}'] for r in rows])} | {users_s} | {len(rows)} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
