"""Click prediction (task ctr): models x datasets x seeds through `attnrec train --task ctr`, one Markdown table.

Every run is a plain CLI call (the commands are printed), so a row can be reproduced by hand. The split, the
labels (ratings >= 4 positive) and the features are the CLI's defaults for task ctr; no per-dataset settings.

    python benchmarks/ctr.py --data ml-100k --models din,autoint --seeds 0,1,2 --out /work/bench/ctr/runs

Datasets: ``ml-100k`` (u.data with u.user and u.item) and ``ml-1m-partial`` (the ML-1M ratings of users 1-2999,
``ml-1m/extra/ratings_partial_users1-2999.dat``, with users.dat and movies.dat), both under ``--root``.
Table: test AUC / GAUC / logloss, mean over seeds with the 95% t-interval across seeds in brackets, the mean
half-width of the per-seed user-bootstrap 95% intervals, epochs and seconds per epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

DATASETS = {
    "ml-100k": ["--data", "{root}/ml-100k/u.data", "--format", "udata", "--items", "{root}/ml-100k/u.item",
                "--users", "{root}/ml-100k/u.user"],
    "ml-1m-partial": ["--data", "{root}/ml-1m/extra/ratings_partial_users1-2999.dat", "--format", "movielens",
                      "--items", "{root}/ml-1m/movies.dat", "--users", "{root}/ml-1m/users.dat"],
}  # fmt: skip

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}


def run(model: str, data: str, seed: int, args: argparse.Namespace) -> dict[str, object]:
    out = Path(args.out) / f"{data}-{model}-s{seed}"
    metrics = out / "metrics.json"
    cmd = [args.attnrec, "train", "--model", model, "--task", "ctr", "--split", args.split, "--seed", str(seed)]
    cmd += [a.format(root=args.root) for a in DATASETS[data]]
    cmd += ["--threads", str(args.threads), "--quiet", "--out", str(out)]
    for s in args.set:
        cmd += ["--set", s]
    print("$", shlex.join(cmd), file=sys.stderr, flush=True)
    if not metrics.exists() or args.force:
        if out.exists():
            subprocess.run(["rm", "-rf", str(out)], check=True)
        subprocess.run(cmd, check=True, stdout=sys.stderr)  # the CLI's own tables stay out of the Markdown
    return dict(json.loads(metrics.read_text()))


def summarise(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.4f}"
    half = T975.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return f"{mean:.4f} [{mean - half:.4f}, {mean + half:.4f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ml-100k", help=f"comma-separated: {', '.join(DATASETS)}")
    parser.add_argument("--models", default="din,autoint")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--split", default="random", choices=("random", "temporal"))
    parser.add_argument("--root", default="/work/shared/data")
    parser.add_argument("--out", default="runs/ctr")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="key=value passed to every model")
    parser.add_argument("--attnrec", default=str(Path(sys.executable).with_name("attnrec")))
    parser.add_argument("--force", action="store_true", help="rerun runs whose metrics.json exists")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"split: {args.split}; seeds {args.seeds}; test metrics, mean [95% t-interval over seeds]\n")
    print("| data | model | AUC | GAUC | logloss | bootstrap ±(AUC) | epochs | s/epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for data in args.data.split(","):
        for model in args.models.split(","):
            runs = [run(model, data, s, args) for s in seeds]
            test = [r["test"] for r in runs]
            boot = [(r["ci95"]["test"]["auc"][1] - r["ci95"]["test"]["auc"][0]) / 2 for r in runs]  # type: ignore[index]
            epochs = [int(r["epochs"]) for r in runs]  # type: ignore[call-overload]
            per_epoch = [float(r["train_seconds"]) / max(1, e) for r, e in zip(runs, epochs, strict=True)]  # type: ignore[arg-type]
            print(
                f"| {data} | {model} | {summarise([t['auc'] for t in test])} | "  # type: ignore[index]
                f"{summarise([t['gauc'] for t in test])} | {summarise([t.get('logloss') for t in test])} | "  # type: ignore[index,attr-defined]
                f"{statistics.fmean(boot):.4f} | {'/'.join(map(str, epochs))} | {statistics.fmean(per_epoch):.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
