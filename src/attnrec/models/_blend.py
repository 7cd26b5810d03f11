"""Score normalisation, blending and the weight grid of :class:`attnrec.models.fusion.Fusion` (pure numpy, plus
the evaluation protocol's ranking rules for the validation metric of a blend)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from math import comb

import numpy as np
import torch
from scipy.stats import rankdata

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


__all__ = ["NORMALISATIONS", "blend", "metric_sum", "normalise", "weight_grid"]
