"""Faithfulness of attention explanations: does removing what the explanation points at change the score?

For each user, the model recommends its top item ``r`` after the full history ``h``. We remove from ``h`` the 3
history items with the largest explanation weight for ``r`` and, separately, 3 history items chosen uniformly at
random (same count, seeded), re-score ``r`` on both shortened histories and compare the drops
``score(r | h) - score(r | h')``. An explanation is faithful when the top-3 removal lowers the score more than
the random removal, for most users and on average.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from attnrec.explain.attention import Method, position_weights


@dataclass(frozen=True)
class FaithfulnessReport:
    method: str
    users: int
    removed: int
    fraction_top_drop_larger: float
    mean_drop_top: float
    mean_drop_random: float
    median_drop_top: float
    median_drop_random: float
    fraction_top1_changed_top: float
    fraction_top1_changed_random: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def faithfulness(
    model: Any,
    histories: list[np.ndarray],
    *,
    removed: int = 3,
    method: Method = "rollout",
    seed: int = 0,
) -> FaithfulnessReport:
    """Measure faithfulness over ``histories`` (those with more than ``removed`` items are used)."""
    rng = np.random.default_rng(seed)
    usable = [np.asarray(h, dtype=np.int64)[-model.config.max_seq_len :] for h in histories if len(h) > removed]
    if not usable:
        raise ValueError(f"faithfulness needs histories longer than removed={removed}")
    full_scores = model.score_indices(np.zeros(len(usable), dtype=np.int64), usable)
    for row, h in enumerate(usable):
        full_scores[row, h] = -np.inf
    top_items = full_scores.argmax(axis=1)
    top_hist, rand_hist = [], []
    for h, r in zip(usable, top_items.tolist(), strict=True):
        w = position_weights(model, h, np.asarray([r]), method=method)[0]
        order = np.argsort(-w, kind="stable")[:removed]
        keep = np.ones(len(h), dtype=bool)
        keep[order] = False
        top_hist.append(h[keep])
        keep = np.ones(len(h), dtype=bool)
        keep[rng.choice(len(h), size=removed, replace=False)] = False
        rand_hist.append(h[keep])
    rows = np.arange(len(usable))
    base = full_scores[rows, top_items]
    s_top = model.score_indices(np.zeros(len(usable), dtype=np.int64), top_hist)
    s_rand = model.score_indices(np.zeros(len(usable), dtype=np.int64), rand_hist)
    drop_top = base - s_top[rows, top_items]
    drop_rand = base - s_rand[rows, top_items]

    def still_top(scores: np.ndarray, hists: list[np.ndarray]) -> np.ndarray:
        scores = scores.copy()
        for row, h in enumerate(usable):  # exclude the original history, as the recommendation did
            scores[row, h] = -np.inf
        return scores.argmax(axis=1) == top_items

    return FaithfulnessReport(
        method=method,
        users=len(usable),
        removed=removed,
        fraction_top_drop_larger=float(np.mean(drop_top > drop_rand)),
        mean_drop_top=float(drop_top.mean()),
        mean_drop_random=float(drop_rand.mean()),
        median_drop_top=float(np.median(drop_top)),
        median_drop_random=float(np.median(drop_rand)),
        fraction_top1_changed_top=float(np.mean(~still_top(s_top, top_hist))),
        fraction_top1_changed_random=float(np.mean(~still_top(s_rand, rand_hist))),
    )
