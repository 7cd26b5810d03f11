"""EASE's l2 on validation: a grid against the data rule ``15 x sqrt(training events per item)`` (validation only).

Fits EASE on the training part of each dataset's leave-one-out split for every ``l2`` of a grid and for the rule's
value, and prints the validation NDCG@10 of each (test is never evaluated): the measurement behind EASE's
default (``docs/models/classic.md``).

    python benchmarks/ease_l2.py --datasets ml-100k ml-1m lastfm
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from attnrec.evaluation import evaluate
from attnrec.models.ease import l2_rule
from attnrec.registry import create_model
from attnrec.runs import DataSpec, RunConfig, load_data
from attnrec.training.options import TrainingOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))

from classic import DATASETS

GRID = (25.0, 50.0, 100.0, 200.0, 500.0, 1000.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m", "lastfm"], choices=sorted(DATASETS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # --threads for the evaluations after each fit too
    print("| dataset | training events per item | rule | best of the grid (valid NDCG@10) | rule's | l2=500's |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets:
        path, fmt = DATASETS[name]
        data = load_data(RunConfig(model="ease", params={}, data=DataSpec(path=str(path), format=fmt)).resolved())
        train = data.split.train
        rule, _ = l2_rule(train)
        scores = {}
        for l2 in sorted({rule, *GRID}):
            model = create_model("ease", {"l2": l2}).fit(train, options=TrainingOptions(threads=args.threads))
            scores[l2] = float(evaluate(model, data.split, target="valid", ks=(10,)).summary["ndcg@10"])
        best = max(GRID, key=lambda v: scores[v])
        print(json.dumps({"dataset": name, "valid_ndcg@10": scores}), flush=True)
        print(
            f"| {name} | {len(train) / train.num_items:.1f} | {rule:g} | {best:g} ({scores[best]:.4f}) | "
            f"{scores[rule]:.4f} | {scores[500.0]:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
