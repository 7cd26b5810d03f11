"""Faithfulness of SASRec's attention explanations on real data.

For N users: recommend the top item r after the full history, remove the 3 history items with the largest
explanation weight for r (or 3 random ones), re-score r, and compare the drops (see
``attnrec.explain.faithfulness``). Prints one row per explanation method.

    python benchmarks/explain_faithfulness.py --run runs/sasrec-ml1m --users 1000
    python benchmarks/explain_faithfulness.py --train-epochs 30 --users 1000   # trains a SASRec on ML-1M first
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from attnrec.base import Recommender
from attnrec.data import leave_one_out
from attnrec.data.loaders import read_interactions
from attnrec.explain.faithfulness import faithfulness
from attnrec.models.sasrec import SASRec
from attnrec.training.options import TrainingOptions

ML1M = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-1m" / "ml-1m.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="Run folder (or saved model folder) of a SASRec model.")
    parser.add_argument("--data", type=Path, default=ML1M)
    parser.add_argument("--train-epochs", type=int, default=30, help="Epochs when no --run is given.")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--removed", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="Also write the reports here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.run is not None:
        model = Recommender.load(args.run)
    else:
        if not args.data.exists():
            raise SystemExit(f"{args.data} not found: pass --data or --run")
        split = leave_one_out(read_interactions(args.data))
        model = SASRec(epochs=args.train_epochs).fit(
            split.train, split.valid, options=TrainingOptions(seed=args.seed, threads=args.threads)
        )
    if not isinstance(model, SASRec):
        raise SystemExit(f"{args.run} holds a {model.name!r} model; faithfulness needs an attention model")
    rng = np.random.default_rng(args.seed)
    users = rng.choice(np.arange(1, model.num_users + 1), size=min(args.users, model.num_users), replace=False)
    histories = [model.history(int(u)) for u in users]
    reports = []
    print(
        "| method | users | top-3 drop > random drop | mean drop top-3 | mean drop random | "
        "top-1 changed (top-3 / random) | seconds |"
    )
    print("|---|---|---|---|---|---|---|")
    for method in ("rollout", "rollout-grad"):
        start = time.perf_counter()
        report = faithfulness(model, histories, removed=args.removed, method=method, seed=args.seed)
        secs = time.perf_counter() - start
        reports.append(report.to_json() | {"seconds": secs})
        print(
            f"| {method} | {report.users} | {report.fraction_top_drop_larger:.1%} | {report.mean_drop_top:.3f} | "
            f"{report.mean_drop_random:.3f} | {report.fraction_top1_changed_top:.1%} / "
            f"{report.fraction_top1_changed_random:.1%} | {secs:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
