"""SASRec quality and training time on ML-1M / Amazon Beauty (leave-one-out, full ranking over all items).

Protocol (also in ``docs/benchmarks.md``): per user the last event is test, the second last validation, the rest
training. The model trains on *train*, early-stops on validation NDCG@10 (history = train) and restores its best
epoch; it is then evaluated once on *test* with history = train + valid, ranking every item except those in the
user's history. Hyperparameters were chosen on validation only. Train seconds include validation passes; wall
seconds add the test evaluation (and, for the first seed, reading and splitting the data).

Usage (from the project root)::

    nice -n 5 .venv/bin/python benchmarks/sasrec.py --data ml-1m --seeds 0,1,2 [--set key=value ...] \
        [--threads 2] [--out results.json] [--log-dir runs/]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from attnrec.config import coerce_value
from attnrec.data import Interactions, leave_one_out
from attnrec.data.loaders import load_interactions
from attnrec.evaluation import evaluate
from attnrec.models.sasrec import SASRec
from attnrec.training.options import TrainingOptions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS: dict[str, tuple[Path, str, dict[str, Any]]] = {
    # no per-dataset settings: every dataset runs the model's defaults (users do not tune); `--set` is for
    # experiments, and docs/benchmarks.md names every `--set` it used
    "ml-1m": (DATA / "ml-1m" / "ml-1m.txt", "sasrec", {}),
    "beauty": (DATA / "amazon-beauty" / "Beauty.txt", "sequence", {}),
    "lastfm": (DATA / "lastfm" / "LastFM.txt", "sequence", {}),
}


def load(data: str) -> tuple[Interactions, dict[str, Any]]:
    if data in DATASETS:
        path, fmt, defaults = DATASETS[data]
    else:
        path, fmt, defaults = Path(data), None, {}
    if not Path(path).exists():
        raise SystemExit(f"{path}: dataset not found (see ../shared/data/README.md)")
    frame = load_interactions(path, format=fmt)
    return Interactions.from_frame(frame), defaults


def parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value; got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = coerce_value(value.strip())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ml-1m", help="ml-1m, beauty, lastfm or a path to a log file")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--threads", type=int, default=2, help="threads per training process")
    parser.add_argument("--processes", type=int, default=1, help="data-parallel training processes")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    parser.add_argument("--log-dir", type=Path, default=None, help="per-seed history.csv files here")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines on stderr")
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    inter, defaults = load(args.data)
    split = leave_one_out(inter)
    params = {**defaults, **parse_sets(args.set)}
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        history: list[dict[str, Any]] = []

        def log(row: dict[str, Any], seed: int = seed, history: list[dict[str, Any]] = history) -> None:
            history.append(row)
            if not args.quiet:
                parts = [f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()]
                sys.stderr.write(f"[seed {seed}] " + " ".join(parts) + "\n")
                sys.stderr.flush()

        t0 = time.perf_counter() if seed != seeds[0] else t_start  # the first seed's clock includes loading
        model = SASRec(params)
        options = TrainingOptions(seed=seed, threads=args.threads, processes=args.processes, log=log)
        model.fit(split.train, split.valid, options=options)
        train_seconds = time.perf_counter() - t0
        result = evaluate(model, split, target="test", ks=(10,))
        wall_seconds = time.perf_counter() - t0
        row = {
            "seed": seed,
            "hr@10": result.summary["hr@10"],
            "ndcg@10": result.summary["ndcg@10"],
            "valid_ndcg@10": model.train_info_.get("best_metric"),
            "best_epoch": model.train_info_.get("best_epoch"),
            "epochs_run": model.train_info_.get("epochs_run"),
            "train_seconds": train_seconds,
            "wall_seconds": wall_seconds,
            "threads": args.threads,
            "processes": args.processes,
            "bf16": model.train_info_.get("bf16"),
        }
        rows.append(row)
        sys.stderr.write(json.dumps(row) + "\n")
        if args.log_dir is not None and history:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            keys = sorted(
                {k for h in history for k in h}, key=lambda k: list(history[-1]).index(k) if k in history[-1] else 99
            )
            with open(
                args.log_dir / f"history_{args.data.replace('/', '_')}_seed{seed}.csv",
                "w",
                newline="",
                encoding="utf-8",
            ) as fh:
                writer = csv.DictWriter(fh, fieldnames=keys)
                writer.writeheader()
                writer.writerows(history)

    def ms(key: str) -> str:
        vals = np.asarray([r[key] for r in rows], dtype=np.float64)
        sd = vals.std(ddof=1) if len(vals) > 1 else 0.0
        return f"{vals.mean():.4f} ± {sd:.4f}" if "seconds" not in key else f"{vals.mean():.0f} ± {sd:.0f}"

    print(
        f"SASRec on {args.data}, seeds {seeds}, {args.processes} process(es) x {args.threads} thread(s), "
        f"settings {params or '{}'}"
    )
    print("| seed | HR@10 | NDCG@10 | valid NDCG@10 (best epoch) | train s | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seed']} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['valid_ndcg@10']:.4f} ({r['best_epoch']}) "
            f"| {r['train_seconds']:.0f} | {r['wall_seconds']:.0f} |"
        )
    print(
        f"| mean ± sd | {ms('hr@10')} | {ms('ndcg@10')} | {ms('valid_ndcg@10')} | {ms('train_seconds')} "
        f"| {ms('wall_seconds')} |"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"data": args.data, "params": params, "config": model.get_config(), "runs": rows}, indent=2)
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
