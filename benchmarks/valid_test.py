r"""Are two models apart on validation *and* on test? Paired t-tests over users on both held-out positions.

A leave-one-out benchmark chooses on the second-last event (validation) and reports the last (test). On a file with
few users the two can disagree (LastFM, 1,090 users: SASRec ahead of EASE on validation, behind on test). This
script trains each model at its defaults for each seed (``attnrec.runs.train_run``, the run folder of
``attnrec train``; an existing folder is reused), ranks the validation and the test events of every user (full
ranking, history excluded, as ``attnrec train`` does), averages each user's NDCG@k over the seeds, and prints
the paired t-test of every model against the first one on each target: the benchmark report's statistic, on
validation too. It also prints how alike the two targets are (the training count of the validation and test
items), to tell noise from a shift. Example (from the project root)::

    nice -n 5 .venv/bin/python benchmarks/valid_test.py --data ../shared/data/lastfm/LastFM.txt \
        --format sequence --models sasrec ease --seeds 0,1,2 --threads 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from attnrec.evaluation import evaluate
from attnrec.runs import DataSpec, RunConfig, load_data, load_run, train_run


def target_likeness(data: object) -> str:
    """Median training count and the share in the top 1% of items, of the validation and of the test targets."""
    split = data.split  # type: ignore[attr-defined]
    counts = np.bincount(split.train.item_idx, minlength=split.train.num_items + 1)
    top = np.argsort(-counts)[: max(1, split.train.num_items // 100)]
    parts = []
    for target in ("valid", "test"):
        items = split.targets(target).item_idx
        parts.append(
            f"{target}: median training count {np.median(counts[items]):.0f}, "
            f"{np.isin(items, top).mean():.1%} in the top 1% of items"
        )
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--format", default=None)
    parser.add_argument("--models", nargs="+", required=True, help="the first is the reference of the tests")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/valid_test"))
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    metric = f"ndcg@{args.k}"
    per_user: dict[tuple[str, str], list[np.ndarray]] = {}
    data = None
    for model in args.models:
        for seed in seeds:
            folder = args.out / f"{Path(args.data).stem}-{model}-s{seed}"
            if not (folder / "model.json").is_file():
                spec = DataSpec(path=str(Path(args.data).resolve()), format=args.format)
                train_run(RunConfig(model=model, data=spec, seed=seed, threads=args.threads), folder)
            fitted, config = load_run(folder)
            assert config is not None
            data = load_data(config)
            line = []
            for target in ("valid", "test"):
                result = evaluate(fitted, data.split, target=target, ks=(args.k,))
                order = np.argsort(result.users)
                per_user.setdefault((model, target), []).append(np.asarray(result.per_user[metric])[order])
                line.append(f"{target} {per_user[(model, target)][-1].mean():.4f}")
            print(f"{model} seed {seed}: {metric} " + ", ".join(line), flush=True)
    assert data is not None
    print(target_likeness(data))
    reference = args.models[0]
    for target in ("valid", "test"):
        ref = np.mean(per_user[(reference, target)], axis=0)
        for model in args.models[1:]:
            other = np.mean(per_user[(model, target)], axis=0)
            test = stats.ttest_rel(ref, other)
            print(
                f"{target}: {reference} {ref.mean():.4f}, {model} {other.mean():.4f}, "
                f"difference {ref.mean() - other.mean():+.4f}, paired t-test p = {test.pvalue:.4f} "
                f"({len(ref):,} users, {metric} averaged over seeds {args.seeds})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
