"""Metric definitions: top-k ranking metrics from target positions, rating errors and CTR metrics.

Every ranking metric here is computed from the *positions* (1-based ranks) of a user's distinct target items in
the ranked candidate list; ``docs/evaluation.md`` gives the definitions in full. With ``T`` the set of targets,
``hits@k`` the number of targets at position ``<= k`` and ``p_1 <= p_2 <= ...`` the sorted target positions:

* ``hr@k`` = 1 if ``hits@k > 0`` else 0
* ``recall@k`` = ``hits@k / |T|``
* ``precision@k`` = ``hits@k / k``
* ``ndcg@k`` = ``sum_{p_j <= k} 1 / log2(p_j + 1)`` divided by ``sum_{i = 1}^{min(|T|, k)} 1 / log2(i + 1)``
* ``mrr@k`` = ``1 / p_1`` if ``p_1 <= k`` else 0
* ``map@k`` = ``(1 / min(|T|, k)) * sum_{p_j <= k} j / p_j`` (``j / p_j`` is the precision at the j-th hit)

Unranked targets (scored ``-inf`` or NaN) have position ``inf`` and are never hits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from attnrec.errors import ConfigError

RANKING_METRICS = ("hr", "recall", "ndcg", "mrr", "precision", "map")
"""Per-user ranking metrics, in report order (``coverage`` is a summary-only metric)."""


def metric_names(ks: Sequence[int], *, coverage: bool = True) -> list[str]:
    """Metric keys in report order: ``hr@10, hr@20, recall@10, ...`` (then ``coverage@k``)."""
    names = [f"{m}@{k}" for m in RANKING_METRICS for k in ks]
    if coverage:
        names += [f"coverage@{k}" for k in ks]
    return names


def ranking_metrics_from_positions(
    positions: np.ndarray, n_targets: np.ndarray, ks: Sequence[int]
) -> dict[str, np.ndarray]:
    """Per-user ranking metrics from target positions.

    Args:
        positions: ``(users, m)`` float 1-based positions of each user's distinct targets, sorted ascending per
            row; ``inf`` for padding and for unranked targets.
        n_targets: ``(users,)`` number of distinct targets ``|T| >= 1`` of each user.
        ks: cut-offs (each ``>= 1``).

    Returns:
        ``{"hr@k": (users,), "recall@k": ..., "ndcg@k": ..., "mrr@k": ..., "precision@k": ..., "map@k": ...}``
        float64 arrays, in the order of :func:`metric_names` (without coverage).
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2:
        raise ConfigError(f"positions must be a 2-d (users, targets) array; got shape {positions.shape}")
    n_targets = np.asarray(n_targets, dtype=np.float64)
    n_users, m = positions.shape
    j = np.arange(1, m + 1, dtype=np.float64)  # hit ordinal of each sorted target position
    discount = 1.0 / np.log2(positions + 1.0)  # inf positions -> 0
    first = positions[:, 0] if m else np.full(n_users, np.inf)
    out: dict[str, dict[int, np.ndarray]] = {name: {} for name in RANKING_METRICS}
    for k in ks:
        if k < 1:
            raise ConfigError(f"every k must be >= 1; got {k}")
        hit = positions <= k
        hits = hit.sum(axis=1).astype(np.float64)
        out["hr"][k] = (hits > 0).astype(np.float64)
        out["recall"][k] = hits / n_targets
        out["precision"][k] = hits / k
        ideal_n = np.minimum(n_targets, k).astype(np.int64)
        ideal_table = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64)))])
        out["ndcg"][k] = np.where(hit, discount, 0.0).sum(axis=1) / ideal_table[ideal_n]
        out["mrr"][k] = np.where(first <= k, 1.0 / first, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            prec_at_hit = np.where(hit, j[None, :] / positions, 0.0)
        out["map"][k] = prec_at_hit.sum(axis=1) / np.minimum(n_targets, k)
    return {f"{name}@{k}": out[name][k] for name in RANKING_METRICS for k in ks}


# ---------------------------------------------------------------------------------------------- rating metrics
def mae(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute error."""
    truth, pred = _paired_floats(truth, pred, "truth", "pred")
    return float(np.mean(np.abs(truth - pred)))


def rmse(truth: np.ndarray, pred: np.ndarray) -> float:
    """Root mean squared error."""
    truth, pred = _paired_floats(truth, pred, "truth", "pred")
    return float(np.sqrt(np.mean((truth - pred) ** 2)))


# ---------------------------------------------------------------------------------------------- CTR metrics
def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive outranks a random negative (ties
    count one half), computed from average ranks (Mann-Whitney U).

    Args:
        labels: ``(n,)`` binary labels (0/1 or bool); both classes must be present.
        scores: ``(n,)`` real scores (higher = more likely positive); NaN is not allowed.
    """
    y, s = _paired_floats(labels, scores, "labels", "scores")
    _check_binary(y)
    if np.isnan(s).any():
        raise ConfigError("scores must not contain NaN (auc)")
    n_pos = float(y.sum())
    n_neg = float(len(y) - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ConfigError(
            f"auc needs both positive and negative labels; got {int(n_pos)} positives and {int(n_neg)} negatives"
        )
    ranks = rankdata(s, method="average")
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def logloss(labels: np.ndarray, probs: np.ndarray, *, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy ``-mean(y log p + (1 - y) log(1 - p))`` with ``p`` clipped to
    ``[eps, 1 - eps]``.

    Args:
        labels: ``(n,)`` binary labels (0/1 or bool).
        probs: ``(n,)`` predicted probabilities of the positive class, each in ``[0, 1]``.
    """
    y, p = _paired_floats(labels, probs, "labels", "probs")
    _check_binary(y)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        bad = p[np.isnan(p) | (p < 0) | (p > 1)][0]
        raise ConfigError(f"probs must lie in [0, 1] (logloss); got {bad}")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def _paired_floats(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ConfigError(f"'{name_a}' and '{name_b}' must have the same length; got {len(x)} and {len(y)}")
    if len(x) == 0:
        raise ConfigError(f"'{name_a}' must not be empty")
    return x, y


def _check_binary(y: np.ndarray) -> None:
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise ConfigError(f"labels must be 0 or 1; got {y[bad][0]}")
