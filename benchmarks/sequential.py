"""Any registered sequential model on a leave-one-out split, full ranking over all items, with its defaults.

Protocol (the one of ``benchmarks/sasrec.py`` and ``docs/benchmarks.md``): per user the last event is test, the
second last validation, the rest training. The model trains on *train*, early-stops on validation NDCG@10
(history = train) as its defaults say and restores its best epoch; it is then evaluated once on *test* with
history = train + valid, ranking every item except those in the user's history. No per-dataset settings: the
model's defaults, plus any ``--set`` given on the command line (printed with the results). Train seconds include
validation passes, seconds per epoch do not; wall seconds add the test evaluation (and, for the first seed,
reading and splitting the data).

Usage (from the project root)::

    nice -n 5 .venv/bin/python benchmarks/sequential.py --model narm --data lastfm --seeds 0,1,2 \
        [--set key=value ...] [--threads 2] [--device cpu] [--out results.json] [--log-dir runs/]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnrec.config import coerce_value
from attnrec.data import Interactions, leave_one_out
from attnrec.data.loaders import load_interactions
from attnrec.evaluation import evaluate
from attnrec.registry import create_model
from attnrec.training.options import TrainingOptions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS: dict[str, tuple[Path, str]] = {
    "ml-1m": (DATA / "ml-1m" / "ml-1m.txt", "sasrec"),
    "beauty": (DATA / "amazon-beauty" / "Beauty.txt", "sequence"),
    "lastfm": (DATA / "lastfm" / "LastFM.txt", "sequence"),
    # logs with timestamps (for time_inputs): ML-100K and the first half of the ML-1M ratings
    "ml-100k": (DATA / "ml-100k" / "u.data", "udata"),
    "ml-1m-ratings": (DATA / "ml-1m" / "extra" / "ratings_partial_users1-2999.dat", "movielens"),
}


def load(data: str) -> Interactions:
    path, fmt = DATASETS[data] if data in DATASETS else (Path(data), None)
    if not Path(path).exists():
        raise SystemExit(f"{path}: dataset not found (see ../shared/data/README.md)")
    return Interactions.from_frame(load_interactions(path, format=fmt))


def parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value; got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = coerce_value(value.strip())
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a registered sequential model (sasrec, narm, ...)")
    parser.add_argument(
        "--data", default="ml-1m", help="ml-1m, beauty, lastfm, ml-100k, ml-1m-ratings or a path to a log file"
    )
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--threads", type=int, default=2, help="threads per training process")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda[:N]")
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    parser.add_argument("--log-dir", type=Path, default=None, help="per-seed history.csv files here")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines on stderr")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)  # --threads for the evaluations after each fit too

    t_start = time.perf_counter()
    split = leave_one_out(load(args.data))
    params = parse_sets(args.set)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    rows: list[dict[str, Any]] = []
    model = create_model(args.model, params)
    for seed in seeds:
        history: list[dict[str, Any]] = []

        def log(row: dict[str, Any], seed: int = seed, history: list[dict[str, Any]] = history) -> None:
            history.append(row)
            if not args.quiet:
                parts = [f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()]
                sys.stderr.write(f"[seed {seed}] " + " ".join(parts) + "\n")
                sys.stderr.flush()

        t0 = time.perf_counter() if seed != seeds[0] else t_start  # the first seed's clock includes loading
        model = create_model(args.model, params)
        options = TrainingOptions(seed=seed, threads=args.threads, device=args.device, log=log)
        model.fit(split.train, split.valid, options=options)
        train_seconds = time.perf_counter() - t0
        result = evaluate(model, split, target="test", ks=(10,))
        wall_seconds = time.perf_counter() - t0
        epoch_seconds = [float(h["seconds"]) for h in history if "seconds" in h]
        row = {
            "seed": seed,
            "hr@10": result.summary["hr@10"],
            "ndcg@10": result.summary["ndcg@10"],
            "valid_ndcg@10": model.train_info_.get("best_metric"),
            "best_epoch": model.train_info_.get("best_epoch"),
            "epochs_run": model.train_info_.get("epochs_run"),
            "train_seconds": train_seconds,
            "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else float("nan"),
            "epoch_seconds": epoch_seconds,
            "wall_seconds": wall_seconds,
            "threads": args.threads,
            "device": model.train_info_.get("device"),
            "bf16": model.train_info_.get("bf16"),
        }
        rows.append(row)
        sys.stderr.write(json.dumps(row) + "\n")
        if args.log_dir is not None and history:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            keys = list(dict.fromkeys(k for h in history for k in h))
            name = f"history_{args.model}_{args.data.replace('/', '_')}_seed{seed}.csv"
            with open(args.log_dir / name, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=keys)
                writer.writeheader()
                writer.writerows(history)

    def ms(key: str) -> str:
        vals = np.asarray([r[key] for r in rows], dtype=np.float64)
        sd = vals.std(ddof=1) if len(vals) > 1 else 0.0
        return f"{vals.mean():.4f} ± {sd:.4f}" if "seconds" not in key else f"{vals.mean():.0f} ± {sd:.0f}"

    print(
        f"{args.model} on {args.data}, seeds {seeds}, {args.threads} thread(s) on {cpu_name()}, device "
        f"{args.device}, settings {params or '{}'} (the defaults otherwise)"
    )
    print("| seed | HR@10 | NDCG@10 | valid NDCG@10 (best epoch / run) | train s | s/epoch | wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seed']} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['valid_ndcg@10']:.4f} "
            f"({r['best_epoch']} / {r['epochs_run']}) | {r['train_seconds']:.0f} | {r['seconds_per_epoch']:.1f} "
            f"| {r['wall_seconds']:.0f} |"
        )
    print(
        f"| mean ± sd | {ms('hr@10')} | {ms('ndcg@10')} | {ms('valid_ndcg@10')} | {ms('train_seconds')} "
        f"| {ms('seconds_per_epoch')} | {ms('wall_seconds')} |"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "data": args.data,
                    "cpu": cpu_name(),
                    "params": params,
                    "config": model.get_config(),
                    "runs": rows,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
