r"""Faithfulness of every explanation method of a model, against a random and a recency baseline.

For N users (seeded sample): recommend the top item r after the user's *training* history (never the test or
validation events), remove the 3 history items the method ranks highest for r, and compare the score drop of r
with removing 3 random items and the 3 most recent items (see ``attnrec.explain.faithfulness``). Prints one row
per method: the share of users where the explanation beats each baseline and both (strictly larger drop), the
ties, and the mean drops. The field methods (AutoInt's ``field-occlusion``, ``field-attention``) are measured by
fields instead: the 3 fields an explanation weighs most are read as missing, against 3 random fields and the 3
fields named most over all the measured users (``attnrec.explain.faithfulness.field_faithfulness``).

The model is either loaded (``--model-dir``: a run folder or a saved model folder) or trained here on the
training part of a leave-one-out split (``--data``, ``--format``, ``--model``, ``--set key=value``; validation
early-stops it when the model validates), and saved with ``--save-dir``. Examples (from the project root)::

    nice -n 5 .venv/bin/python benchmarks/explain_faithfulness.py --data ../shared/data/ml-100k/u.data \
        --format udata --set epochs=8 --users 300
    nice -n 5 .venv/bin/python benchmarks/explain_faithfulness.py --data ../shared/data/ml-1m/ml-1m.txt \
        --format sasrec --set epochs=4 --users 1000 --save-dir runs/faith-sasrec-ml1m
    nice -n 5 .venv/bin/python benchmarks/explain_faithfulness.py --model-dir runs/faith-sasrec-ml1m --users 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from attnrec.base import Recommender
from attnrec.config import coerce_value
from attnrec.data import leave_one_out
from attnrec.data.loaders import read_interactions
from attnrec.explain.faithfulness import faithfulness, field_faithfulness
from attnrec.explain.fields import FieldExplainer
from attnrec.explain.methods import METHODS, methods_for
from attnrec.registry import create_model
from attnrec.training.options import TrainingOptions

ML1M = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-1m" / "ml-1m.txt"


def _params(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value; got {pair!r}")
        out[key.strip()] = coerce_value(value.strip())
    return out


def load_or_train(args: argparse.Namespace) -> Recommender:
    if args.model_dir is not None:
        folder = args.model_dir / "model" if (args.model_dir / "model").is_dir() else args.model_dir
        return Recommender.load(folder)
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found: pass --data PATH or --model-dir DIR")
    split = leave_one_out(read_interactions(args.data, format=args.format))
    model = create_model(args.model, _params(args.set or []))
    start = time.perf_counter()
    model.fit(split.train, split.valid, options=TrainingOptions(seed=args.seed, threads=args.threads))
    print(f"trained {model.name} in {time.perf_counter() - start:.0f} s on {args.data}", file=sys.stderr)
    if args.save_dir is not None:
        model.save(args.save_dir)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="Run folder or saved model folder to load (no training).")
    parser.add_argument("--data", type=Path, default=ML1M, help="Interaction log to train on (default ML-1M).")
    parser.add_argument("--format", default=None, help="Log format (sasrec, udata, csv, ...; default: detected).")
    parser.add_argument("--model", default="sasrec", help="Model to train when no --model-dir is given.")
    parser.add_argument("--set", action="append", help="Hyperparameter of the trained model: key=value.")
    parser.add_argument("--save-dir", type=Path, help="Save the trained model here.")
    parser.add_argument("--users", type=int, default=1000, help="Users sampled (seeded).")
    parser.add_argument("--methods", default=None, help="Comma-separated methods (default: all the model has).")
    parser.add_argument("--removed", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="Also write the reports here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_or_train(args)
    methods = args.methods.split(",") if args.methods else methods_for(model)
    if not methods:
        raise SystemExit(f"model {model.name!r} does not explain its recommendations")
    rng = np.random.default_rng(args.seed)
    users = rng.choice(np.arange(1, model.num_users + 1), size=min(args.users, model.num_users), replace=False)
    histories = [model.history(int(u)) for u in users]
    reports = []
    print(
        f"{model.name}: {len(users)} users, remove {args.removed}; beats = strictly larger score drop of the "
        "recommended item"
    )
    header = ""
    for method in methods:
        if isinstance(METHODS.get(method), FieldExplainer):  # fields read as missing, against random / global fields
            if header != "fields":
                header = "fields"
                print(
                    "| method | users | fields | beats random | beats global | beats both | ties random / global | "
                    "same as global | mean drop explained / random / global | global fields | seconds |"
                )
                print("|---|---|---|---|---|---|---|---|---|---|---|")
            fields = field_faithfulness(model, users, histories, removed=args.removed, method=method, seed=args.seed)
            reports.append(fields.to_json() | {"model": model.name})
            print(
                f"| {method} | {fields.users} | {fields.fields} | {fields.beats_random:.1%} | "
                f"{fields.beats_global:.1%} | {fields.beats_both:.1%} | {fields.ties_random:.1%} / "
                f"{fields.ties_global:.1%} | {fields.same_as_global:.1%} | {fields.mean_drop_explained:.4f} / "
                f"{fields.mean_drop_random:.4f} / {fields.mean_drop_global:.4f} | {', '.join(fields.global_fields)} | "
                f"{fields.seconds:.1f} |",
                flush=True,
            )
            continue
        if header != "history":
            header = "history"
            print(
                "| method | users | beats random | beats recent | beats both | ties random / recent | "
                "same as recent | mean drop explained / random / recent | seconds |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
        report = faithfulness(model, histories, user_idx=users, removed=args.removed, method=method, seed=args.seed)
        reports.append(report.to_json() | {"model": model.name})
        print(
            f"| {method} | {report.users} | {report.beats_random:.1%} | {report.beats_recent:.1%} | "
            f"{report.beats_both:.1%} | {report.ties_random:.1%} / {report.ties_recent:.1%} | "
            f"{report.same_as_recent:.1%} | {report.mean_drop_explained:.3f} / {report.mean_drop_random:.3f} / "
            f"{report.mean_drop_recent:.3f} | {report.seconds:.1f} |",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
