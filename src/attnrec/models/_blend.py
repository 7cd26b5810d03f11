"""Score normalisation, blending, the weight grid and its search on validation for
:class:`attnrec.models.fusion.Fusion` (numpy, plus the evaluation protocol's ranking rules for the validation
metric of a blend)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from math import comb
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata

from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError

NORMALISATIONS = ("rank", "zscore", "minmax", "rrf")


def normalise(scores: np.ndarray, how: str, rrf_k: float = 60.0) -> np.ndarray:
    """Per-row normalisation of ``(B, num_items + 1)`` scores (column 0 is padding and stays 0).

    Returns ``(B, num_items + 1)`` float64 values; non-finite scores get the row's lowest normalised value.
    """
    if how not in NORMALISATIONS:
        raise ConfigError(f"the 'normalisation' parameter must be one of {', '.join(NORMALISATIONS)}; got {how!r}")
    s = np.asarray(scores, dtype=np.float64)[:, 1:]
    finite = np.isfinite(s)
    out = np.zeros((s.shape[0], s.shape[1] + 1), dtype=np.float64)
    if s.shape[1] == 0:
        return out
    if how in ("rank", "rrf"):
        ranks = rankdata(-np.where(finite, s, -np.inf), axis=1, method="average")  # 1 = best
        n = s.shape[1]
        if how == "rank":
            body = (n - ranks) / max(n - 1, 1)
            body = np.where(finite, body, 0.0)
        else:
            body = np.where(finite, 1.0 / (rrf_k + ranks), 0.0)
    else:
        count = finite.sum(axis=1, keepdims=True)
        filled = np.where(finite, s, 0.0)
        if how == "zscore":
            mean = filled.sum(axis=1, keepdims=True) / np.maximum(count, 1)
            var = (np.where(finite, s - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / np.maximum(count, 1)
            sd = np.sqrt(var)
            body = np.where(sd > 0, (filled - mean) / np.where(sd > 0, sd, 1.0), 0.0)
        else:
            lo = np.where(finite, s, np.inf).min(axis=1, keepdims=True)
            hi = np.where(finite, s, -np.inf).max(axis=1, keepdims=True)
            span = hi - lo
            ok = np.isfinite(span) & (span > 0)
            body = np.where(ok, (filled - np.where(ok, lo, 0.0)) / np.where(ok, span, 1.0), 0.0)
        lowest = np.where(finite, body, np.inf).min(axis=1, keepdims=True)
        body = np.where(finite, body, np.where(np.isfinite(lowest), lowest, 0.0))
    out[:, 1:] = body
    return out


def blend(normalised: Sequence[np.ndarray], ok: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_i w_i ok_i n_i / sum_i w_i ok_i`` per row (``ok``: ``(members, B)`` bool). Rows whose members that
    can score them all have weight 0 use equal weights over those members; rows no member scores are 0."""
    w = ok.astype(np.float64) * np.asarray(weights, dtype=np.float64)[:, None]  # (m, B)
    total = w.sum(axis=0)
    equal = ok.astype(np.float64) / np.maximum(ok.sum(axis=0), 1)
    w = np.where(total > 0, w / np.where(total > 0, total, 1.0), equal)
    out = np.zeros_like(normalised[0])
    for wi, ni in zip(w, normalised, strict=True):
        out += wi[:, None] * ni
    return out


def weight_grid(members: int, points: int, max_candidates: int) -> np.ndarray:
    """Weight vectors tried on validation: ``(K, members)``, each summing to 1.

    Two members: ``alpha`` on ``points`` even steps of [0, 1] (``(alpha, 1 - alpha)``). More: every vector of the
    simplex grid with step ``1 / s``, ``s`` the largest ``<= points - 1`` giving at most ``max_candidates``.
    """
    if members == 1:
        return np.ones((1, 1))
    steps = points - 1
    if members > 2:
        while steps > 1 and comb(steps + members - 1, members - 1) > max_candidates:
            steps -= 1
    rows = [c for c in itertools.product(range(steps + 1), repeat=members - 1) if sum(c) <= steps]
    grid = np.asarray([[*c, steps - sum(c)] for c in rows], dtype=np.float64) / steps
    return grid[np.lexsort(grid.T[::-1])]


def metric_sum(
    fused: np.ndarray,
    seen: tuple[np.ndarray, np.ndarray],
    tcols: torch.Tensor,
    counts: np.ndarray,
    metric: str,
    k: int,
) -> float:
    """Sum over the rows of a per-user ranking metric of ``fused`` scores, with the evaluation protocol's rules
    (seen items removed, pessimistic ties: :func:`attnrec.evaluation.protocol.target_positions`)."""
    from attnrec.evaluation.metrics import ranking_metrics_from_positions
    from attnrec.evaluation.protocol import target_positions

    scores = fused.astype(np.float32)
    scores[seen] = -np.inf
    scores[:, 0] = -np.inf
    pos = target_positions(torch.from_numpy(scores), tcols, n_targets=counts)
    return float(ranking_metrics_from_positions(pos, counts, (k,))[metric].sum())


def search_weights(
    member_rows: Callable[..., tuple[list[np.ndarray], np.ndarray]],
    grid: np.ndarray,
    train: Interactions,
    valid: Interactions,
    *,
    metric: str,
    num_items: int,
    uses_time: bool,
    progress: Callable[[str, float, float | None], None] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The weight vector of ``grid`` with the best mean ``metric`` (``ndcg@10``...) over the users of ``valid``,
    histories from ``train`` (events before the targets), and what the search saw. ``member_rows(users,
    histories, times)`` gives each member's normalised score rows and which rows it can score. Ties go to the
    weights nearest to uniform."""
    k = int(metric.split("@")[1])
    members = grid.shape[1]
    users = valid.active_users().astype(np.int64)
    h_off, h_items = train.sequence_offsets(), train.item_idx
    h_times = train.timestamp if uses_time else None
    v_off, v_items = valid.sequence_offsets(), valid.item_idx
    totals = np.zeros(len(grid))
    member_totals = np.zeros(members)
    batch = max(1, min(1024, (1 << 22) // (num_items + 1)))
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        hists = [h_items[h_off[u] : h_off[u + 1]] for u in chunk.tolist()]
        times = None if h_times is None else [h_times[h_off[u] : h_off[u + 1]] for u in chunk.tolist()]
        normed, ok = member_rows(chunk, hists, times)
        seen_rows = np.repeat(np.arange(len(chunk)), [len(h) for h in hists])
        seen_cols = np.concatenate(hists) if hists else np.zeros(0, dtype=np.int64)
        targets = [np.unique(v_items[v_off[u] : v_off[u + 1]]) for u in chunk.tolist()]
        counts = np.asarray([len(t) for t in targets])
        tcols = np.full((len(chunk), int(counts.max())), -1, dtype=np.int64)
        for row, t in enumerate(targets):
            tcols[row, : len(t)] = t
        tcols_t = torch.from_numpy(tcols)

        seen = (seen_rows, seen_cols)
        for c, w in enumerate(grid):
            totals[c] += metric_sum(blend(normed, ok, w), seen, tcols_t, counts, metric, k)
        for i in range(members):
            member_totals[i] += metric_sum(normed[i], seen, tcols_t, counts, metric, k)
        if progress is not None:
            progress("fusion weights", float(start + len(chunk)), float(len(users)))
    means = totals / max(len(users), 1)
    uniform = np.full(members, 1.0 / members)
    best = max(range(len(grid)), key=lambda c: (round(float(means[c]), 12), -float(np.abs(grid[c] - uniform).sum())))
    return grid[best].copy(), {
        "tuned": True,
        "metric": metric,
        "valid_users": len(users),
        "grid": grid.round(6).tolist(),
        "valid_scores": [round(float(v), 6) for v in means],
        "member_valid_scores": [round(float(v), 6) for v in member_totals / max(len(users), 1)],
        "best_valid_score": round(float(means[best]), 6),
    }


__all__ = ["NORMALISATIONS", "blend", "metric_sum", "normalise", "search_weights", "weight_grid"]
