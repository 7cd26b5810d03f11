"""Fusion of SASRec and EASE against each member: leave-one-out, full ranking, paired tests per user.

Protocol (the one of ``benchmarks/sequential.py``): per user the last event is test, the second last validation, the
rest training. Per seed one ``fusion`` model is fitted on *train*: it trains its members (SASRec with its defaults
and early stopping on validation, EASE with its defaults or ``--ease-l2``), then chooses the blend weight alpha on
the validation events with histories = train (101 points of [0, 1], NDCG@10). Fusion and each member are then
evaluated once on *test* with history = train + valid, ranking every item not in the history; the fusion is compared
with each member by a paired t-test and a Wilcoxon signed-rank test on the per-user test NDCG@10
(:func:`attnrec.evaluation.stats.paired_test`). The members evaluated are the fusion's own members, so the comparison
is paired on the very same models.

The same comparison as a generated table of ``docs/benchmarks.md`` (members trained once, as cells of their own;
paired tests against the best model): ``benchmarks/configs/fusion.toml``. This script stays for the paired test
of the fusion against *each* member.

Usage (from the project root)::

    flock /work/bench/heavy.lock .venv/bin/python benchmarks/fusion.py --data lastfm --seeds 0,1,2 \
        [--normalisation rank] [--ease-l2 L2] [--threads 2] [--out results.json]
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

from attnrec.data import Interactions, leave_one_out
from attnrec.data.loaders import load_interactions
from attnrec.evaluation import evaluate
from attnrec.evaluation.stats import paired_test
from attnrec.models.fusion import Fusion
from attnrec.training.options import TrainingOptions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS: dict[str, tuple[Path, str]] = {
    "ml-1m": (DATA / "ml-1m" / "ml-1m.txt", "sasrec"),
    "beauty": (DATA / "amazon-beauty" / "Beauty.txt", "sequence"),
    "lastfm": (DATA / "lastfm" / "LastFM.txt", "sequence"),
}


def load(data: str) -> Interactions:
    path, fmt = DATASETS[data] if data in DATASETS else (Path(data), None)
    if not Path(path).exists():
        raise SystemExit(f"{path}: dataset not found (see ../shared/data/README.md)")
    return Interactions.from_frame(load_interactions(path, format=fmt))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="lastfm, beauty, ml-1m or a path")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--normalisation", default="rank", choices=["rank", "zscore", "minmax", "rrf"])
    parser.add_argument("--ease-l2", type=float, default=None, help="EASE l2 (default: the EASE default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # --threads for the evaluations after each fit too
    seeds = [int(s) for s in args.seeds.split(",")]
    split = leave_one_out(load(args.data))
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        start = time.perf_counter()
        fusion = Fusion(
            {
                "members": [
                    {"model": "sasrec"},
                    {"model": "ease", "params": {} if args.ease_l2 is None else {"l2": args.ease_l2}},
                ],
                "normalisation": args.normalisation,
            }
        )
        fusion.fit(
            split.train, split.valid, options=TrainingOptions(seed=seed, threads=args.threads, device=args.device)
        )
        fit_s = time.perf_counter() - start
        results = {"fusion": evaluate(fusion, split, target="test", ks=(10,))}
        for name, member in zip(("sasrec", "ease"), fusion.members_, strict=True):
            results[name] = evaluate(member, split, target="test", ks=(10,))
        tuning = fusion.train_info_["tuning"]
        row: dict[str, Any] = {
            "seed": seed,
            "alpha_sasrec": float(fusion.weights_[0]),  # type: ignore[index]
            "valid_ndcg10": {
                "fusion": tuning["best_valid_score"],
                "sasrec": tuning["member_valid_scores"][0],
                "ease": tuning["member_valid_scores"][1],
            },
            "test_ndcg10": {k: float(v.summary["ndcg@10"]) for k, v in results.items()},
            "test_hr10": {k: float(v.summary["hr@10"]) for k, v in results.items()},
            "fit_seconds": round(fit_s, 1),
            "sasrec_epochs": fusion.members_[0].train_info_.get("epochs_run"),
            "paired": {m: paired_test(results["fusion"], results[m], "ndcg@10") for m in ("sasrec", "ease")},
            "tuning": tuning,
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "tuning"}), flush=True)
    print_table(args, rows)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


def sd(x: np.ndarray) -> str:
    return f" ± {x.std(ddof=1):.4f}" if len(x) > 1 else ""


def print_table(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    out = sys.stdout
    out.write(
        f"\nfusion (sasrec + ease l2={args.ease_l2 or 'default'}, {args.normalisation}) on {args.data}, seeds "
        f"{','.join(str(r['seed']) for r in rows)}\n\n"
    )
    out.write("| model | HR@10 | NDCG@10 | valid NDCG@10 |\n|---|---|---|---|\n")
    for name in ("sasrec", "ease", "fusion"):
        hr = np.asarray([r["test_hr10"][name] for r in rows])
        nd = np.asarray([r["test_ndcg10"][name] for r in rows])
        va = np.asarray([r["valid_ndcg10"][name] for r in rows])
        out.write(f"| {name} | {hr.mean():.4f}{sd(hr)} | {nd.mean():.4f}{sd(nd)} | {va.mean():.4f}{sd(va)} |\n")
    out.write("\n| seed | alpha (SASRec) | fusion - SASRec (p t / p Wilcoxon) | fusion - EASE (p t / p Wilcoxon) |\n")
    out.write("|---|---|---|---|\n")
    for r in rows:
        cells = []
        for m in ("sasrec", "ease"):
            p = r["paired"][m]
            cells.append(f"{p['mean_diff']:+.4f} ({p['p_value_t']:.2g} / {p['p_value_wilcoxon']:.2g})")
        out.write(f"| {r['seed']} | {r['alpha_sasrec']:.2f} | {cells[0]} | {cells[1]} |\n")


if __name__ == "__main__":
    main()
