r"""How faithful can any explanation of ``removed`` items (or fields) be? The best removal set, by exhaustive search.

The faithfulness measure (``attnrec.explain.faithfulness``) counts the users for whom removing the explained
items lowers the recommended item's score strictly more than removing the 3 most recent items (for field models:
the 3 fields named most often, the *global* set). For some users no set does: the most damaging set of 3 *is*
the recent (global) one, and every explanation can at best tie there. This script finds, per user, the most
damaging set by scoring every set of ``removed`` positions among a candidate pool (the ``pool`` positions with
the largest single-removal drop and the ``pool`` most recent ones; the whole history when it is no longer than the
pool), or every set of ``removed`` fields, and prints the share of users where that set strictly beats the
baseline: an upper bound on "beats recent" (or "beats global") for any explanation of that many items. The
users, the recommended item and the baselines are those of ``benchmarks/explain_faithfulness.py`` with the same
``--users`` and ``--seed``. Examples (from the project root)::

    nice -n 5 .venv/bin/python benchmarks/explain_bound.py \
        --model-dir runs/bench/sequential/cells/lastfm/sasrec/seed-0 --users 1000 --threads 1
    nice -n 5 .venv/bin/python benchmarks/explain_bound.py \
        --model-dir runs/bench/ctr/cells/ml-100k/autoint/seed-0 --users 1000 --threads 1
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnrec.base import Recommender
from attnrec.explain.base import read_part
from attnrec.explain.faithfulness import TIE_TOLERANCE, field_faithfulness
from attnrec.explain.occlusion import occlusion_drops

CHUNK = 512
"""Shortened histories scored per call."""


def _scores(model: Any, user: int, hists: list[np.ndarray], item: int) -> np.ndarray:
    out = [
        np.asarray(
            model.score_candidates(
                np.full(len(hists[i : i + CHUNK]), user, dtype=np.int64),
                hists[i : i + CHUNK],
                np.asarray([item], dtype=np.int64),
            ),
            dtype=np.float64,
        )[:, 0]
        for i in range(0, len(hists), CHUNK)
    ]
    return np.concatenate(out) if out else np.zeros(0)


def history_bound(model: Any, users: np.ndarray, removed: int, pool: int) -> dict[str, float]:
    """Share of users whose most damaging set (within the pool) strictly beats the ``removed`` newest items."""
    rows = [(u, read_part(model, model.history(int(u)))) for u in users.tolist()]
    rows = [(u, h) for u, h in rows if len(h) > removed]
    beats = exact = exact_ties = 0
    for u, h in rows:
        full = model.score_indices(np.asarray([u]), [h]).astype(np.float64)[0]
        full[h] = -np.inf
        full[0] = -np.inf
        item = int(full.argmax())
        n = len(h)
        single = occlusion_drops(model, h, np.asarray([item]), user_idx=u)[0]
        best = np.argsort(-single, kind="stable")[:pool]
        candidates = sorted(set(best.tolist()) | set(range(max(0, n - pool), n)))
        sets = list(itertools.combinations(candidates, removed))
        keep = np.ones((len(sets), n), dtype=bool)
        for row, s in enumerate(sets):
            keep[row, list(s)] = False
        scores = _scores(model, u, [h[k] for k in keep], item)
        recent = _scores(model, u, [h[: n - removed]], item)[0]
        base = _scores(model, u, [h], item)[0]
        tol = TIE_TOLERANCE * max(1.0, abs(base))
        wins = bool(recent - scores.min() > tol)  # a lower score after removal = a larger drop
        beats += wins
        whole = len(candidates) == n
        exact += whole
        exact_ties += whole and not wins
    return {
        "users": len(rows),
        "bound_beats_recent": beats / len(rows),
        "whole_history_searched": exact / len(rows),
        "recent_is_the_exact_optimum": exact_ties / len(rows),
    }


def field_bound(model: Any, users: np.ndarray, removed: int, seed: int) -> dict[str, Any]:
    """Share of users whose most damaging set of fields strictly beats the global set of the default method."""
    histories = [model.history(int(u)) for u in users]
    report = field_faithfulness(model, users, histories, removed=removed, seed=seed)
    names = list(model.field_names)
    m = len(names)
    sets = list(itertools.combinations(range(m), removed))
    global_set = tuple(sorted(names.index(f) for f in report.global_fields))
    full = model.score_indices(users, histories).astype(np.float64)
    for row, h in enumerate(histories):
        full[row, np.asarray(h, dtype=np.int64)] = -np.inf
    full[:, 0] = -np.inf
    dropped = np.zeros((len(sets) + 1, m), dtype=bool)  # row 0: nothing dropped
    for row, s in enumerate(sets, start=1):
        dropped[row, list(s)] = True
    beats = 0
    for u, item in zip(users.tolist(), full.argmax(axis=1).tolist(), strict=True):
        scores = model.score_without_fields(int(u), np.full(len(sets) + 1, item, dtype=np.int64), dropped)
        scores = np.asarray(scores, dtype=np.float64)
        tol = TIE_TOLERANCE * max(1.0, abs(scores[0]))
        beats += bool(scores[1 + sets.index(global_set)] - scores[1:].min() > tol)
    return {
        "users": len(users),
        "global_fields": report.global_fields,
        "method": report.method,
        "method_beats_global": report.beats_global,
        "method_beats_both": report.beats_both,
        "bound_beats_global": beats / len(users),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="Run folder or saved model folder.")
    parser.add_argument("--users", type=int, default=1000, help="Users sampled (seeded, as explain_faithfulness.py).")
    parser.add_argument("--removed", type=int, default=3)
    parser.add_argument("--pool", type=int, default=16, help="Best single drops and newest positions searched.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.model_dir / "model" if (args.model_dir / "model").is_dir() else args.model_dir
    model = Recommender.load(folder)
    rng = np.random.default_rng(args.seed)
    users = rng.choice(np.arange(1, model.num_users + 1), size=min(args.users, model.num_users), replace=False)
    start = time.perf_counter()
    if callable(getattr(model, "score_without_fields", None)):
        result: dict[str, Any] = field_bound(model, users, args.removed, args.seed)
    else:
        result = history_bound(model, users, args.removed, args.pool)
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(f"{model.name} ({args.model_dir}): {result}")


if __name__ == "__main__":
    main()
