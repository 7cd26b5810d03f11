"""Pointwise evaluation of click prediction: AUC, GAUC and logloss on labelled impressions, with bootstrap CIs.

Rules (also in ``docs/evaluation.md``):

* Every impression of ``targets`` (labelled :class:`~attnrec.data.interactions.Interactions`) is scored with
  :meth:`Recommender.score_pairs`, the user's history being the positive events of ``history``. NaN scores
  (items the model does not know) count as the lowest score.
* ``auc``: over all impressions (Mann-Whitney, ties one half).
* ``gauc``: per-user AUC averaged over the users that have both a positive and a negative impression, each
  weighted by its number of impressions (Zhou et al., DIN, KDD 2018, eq. 1, with impressions as weights).
  ``gauc_users`` says how many users it covers.
* ``logloss``: only for models whose scores are probabilities (``predicts_probabilities``); models with raw
  scores get no logloss (a sigmoid of an arbitrary score scale would not be a calibrated probability).
* 95% confidence intervals: percentile bootstrap over users (``n_boot`` resamples of the users with replacement,
  seeded; each resample recomputes auc over the chosen users' impressions, gauc and logloss likewise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import rankdata

from attnrec.base import Recommender
from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError
from attnrec.evaluation.metrics import auc, logloss

CTR_METRICS = ("auc", "gauc", "logloss")
"""Metrics of task ``ctr``, in report order."""


@dataclass(frozen=True)
class CTRResult:
    """Metrics of one pointwise evaluation.

    Attributes:
        summary: ``{"auc", "gauc"[, "logloss"]}`` (``gauc`` NaN when no user has both classes).
        ci: metric -> ``(low, high)`` bootstrap interval at ``ci_level``.
        ci_level: the confidence level.
        n_impressions: impressions evaluated.
        n_users: distinct users among them.
        gauc_users: users with both classes (those GAUC averages over).
        scores: ``(n_impressions,)`` the scores, aligned with the targets' rows.
    """

    summary: dict[str, float]
    ci: dict[str, tuple[float, float]]
    ci_level: float
    n_impressions: int
    n_users: int
    gauc_users: int
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def to_json(self) -> dict[str, Any]:
        def safe(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "summary": {k: safe(v) for k, v in self.summary.items()},
            "ci_level": self.ci_level,
            "ci": {k: [safe(lo), safe(hi)] for k, (lo, hi) in self.ci.items()},
            "n_impressions": self.n_impressions,
            "n_users": self.n_users,
            "gauc_users": self.gauc_users,
        }


def evaluate_ctr(
    model: Recommender,
    targets: Interactions,
    *,
    history: Interactions | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> CTRResult:
    """Score every impression of ``targets`` and compute AUC, GAUC and (probabilistic models) logloss.

    Args:
        model: a fitted recommender.
        targets: labelled impressions (``label`` set); rows with ids the model does not know are scored as
            unknown (NaN -> lowest score), not dropped.
        history: events the users' histories come from (positives only); ``None``: the model's stored histories.
        n_boot: bootstrap resamples of users for the intervals (0: no intervals, NaN).
        level: confidence level.
        seed: bootstrap seed.
    """
    if targets.label is None:
        raise ConfigError("evaluate_ctr needs labelled impressions (targets.label is None)")
    if len(targets) == 0:
        raise ConfigError("the 'targets' impressions are empty: there is nothing to evaluate")
    if n_boot < 0:
        raise ConfigError(f"the 'n_boot' parameter must be >= 0; got {n_boot}")
    users_vocab, items_vocab = model.users_, model.items_
    model._check_fitted()
    assert users_vocab is not None and items_vocab is not None
    if targets.users == users_vocab and targets.items == items_vocab:
        uidx, iidx = targets.user_idx, targets.item_idx
    else:
        uidx = users_vocab.indices(targets.users.ids(targets.user_idx))
        iidx = items_vocab.indices(targets.items.ids(targets.item_idx))
    raw = model.score_pairs(uidx, iidx, history=history)
    labels = targets.label.astype(np.float64)
    scores = np.where(np.isnan(raw), -np.inf, raw)
    groups = targets.user_idx
    summary, gauc_users = _metrics(labels, scores, groups, probabilistic=model.predicts_probabilities, raw=raw)
    ci = bootstrap_ctr(
        labels, scores, groups, probabilistic=model.predicts_probabilities, n_boot=n_boot, level=level, seed=seed
    )
    return CTRResult(summary, ci, level, len(targets), len(np.unique(groups)), gauc_users, raw)


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """Impression-weighted mean of per-group AUC over the groups with both classes: ``(gauc, n_groups)``
    (NaN and 0 when no group has both)."""
    per, weight = _per_group_auc(np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64), groups)
    if len(per) == 0:
        return math.nan, 0
    return float(np.sum(per * weight) / np.sum(weight)), len(per)


def _per_group_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(groups, kind="stable")
    g, y, s = groups[order], labels[order], scores[order]
    _, starts, counts = np.unique(g, return_index=True, return_counts=True)
    pos = np.add.reduceat(y, starts)
    both = (pos > 0) & (pos < counts)
    per: list[float] = []
    weight: list[float] = []
    for st, n in zip(starts[both].tolist(), counts[both].tolist(), strict=True):
        per.append(auc(y[st : st + n], s[st : st + n]))
        weight.append(float(n))
    return np.asarray(per), np.asarray(weight)


def _metrics(
    labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, *, probabilistic: bool, raw: np.ndarray
) -> tuple[dict[str, float], int]:
    pos = labels.sum()
    out: dict[str, float] = {"auc": auc(labels, scores) if 0 < pos < len(labels) else math.nan}
    out["gauc"], n_groups = gauc(labels, scores, groups)
    if probabilistic:
        probs = np.where(np.isnan(raw), 0.5, raw)
        out["logloss"] = logloss(labels, np.clip(probs, 0.0, 1.0))
    return out, n_groups


def bootstrap_ctr(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    *,
    probabilistic: bool,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of auc, gauc (and logloss) resampling users with replacement.

    A resample gives each impression the weight of its user's multiplicity; AUC is the weighted Mann-Whitney
    statistic, GAUC the weighted mean of the per-user AUCs, logloss the weighted mean loss."""
    names = list(CTR_METRICS if probabilistic else CTR_METRICS[:2])
    if n_boot == 0:
        return {m: (math.nan, math.nan) for m in names}
    draws = ctr_replicates(
        labels, scores, groups, user_multiplicities(groups, n_boot, seed), probabilistic=probabilistic
    )
    alpha = (1.0 - level) / 2.0
    out: dict[str, tuple[float, float]] = {}
    for m in names:
        vals = draws[m][~np.isnan(draws[m])]
        out[m] = (
            (float(np.quantile(vals, alpha)), float(np.quantile(vals, 1 - alpha)))
            if len(vals)
            else (math.nan, math.nan)
        )
    return out


def user_multiplicities(groups: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_users)`` how often each distinct user of ``groups`` (sorted ids) is drawn in each of
    ``n_boot`` resamples of the users with replacement (seeded: the same users and seed give the same draws,
    which pairs two models' resamples on the same impressions)."""
    n_users = len(np.unique(groups))
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, n_users), dtype=np.float64)
    for b in range(n_boot):
        out[b] = np.bincount(rng.integers(0, n_users, n_users), minlength=n_users)
    return out


def ctr_replicates(
    labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, multiplicities: np.ndarray, *, probabilistic: bool
) -> dict[str, np.ndarray]:
    """auc, gauc (and logloss) of each resample of the users: metric -> ``(n_boot,)`` values.

    ``scores``: NaN counts as the lowest score for auc/gauc, and a non-finite score as 0.5 for logloss (as
    :func:`evaluate_ctr`);
    ``multiplicities``: rows of :func:`user_multiplicities` for these ``groups``."""
    labels = np.asarray(labels, dtype=np.float64)
    raw = np.asarray(scores, dtype=np.float64)
    scores = np.where(np.isnan(raw), -np.inf, raw)
    ug, inv = np.unique(groups, return_inverse=True)
    n_users = len(ug)
    if multiplicities.shape[1] != n_users:
        raise ConfigError(
            f"the 'multiplicities' need one column per distinct user ({n_users}); got {multiplicities.shape[1]}"
        )
    ranks = rankdata(scores, method="dense").astype(np.int64)
    n_ranks = int(ranks.max()) + 1
    y = labels.astype(bool)
    per, weight = _per_group_auc(labels, scores, groups)
    pos_counts = np.bincount(inv, weights=labels, minlength=n_users)
    user_counts = np.bincount(inv, minlength=n_users)
    both = (pos_counts > 0) & (pos_counts < user_counts)
    loss_sum = None
    if probabilistic:
        p = np.clip(np.where(np.isfinite(raw), raw, 0.5), 1e-15, 1 - 1e-15)
        loss_sum = np.bincount(inv, weights=-(labels * np.log(p) + (1 - labels) * np.log1p(-p)), minlength=n_users)
    draws: dict[str, list[float]] = {m: [] for m in (CTR_METRICS if probabilistic else CTR_METRICS[:2])}
    for mult in multiplicities:
        draws["auc"].append(_weighted_auc(ranks, y, mult[inv], n_ranks))
        wb = mult[both] * weight
        draws["gauc"].append(float(np.sum(per * wb) / np.sum(wb)) if wb.sum() > 0 else math.nan)
        if loss_sum is not None:
            draws["logloss"].append(float(np.sum(mult * loss_sum) / np.sum(mult * user_counts)))
    return {m: np.asarray(v, dtype=np.float64) for m, v in draws.items()}


def _weighted_auc(ranks: np.ndarray, positive: np.ndarray, weights: np.ndarray, n_ranks: int) -> float:
    """AUC with impression weights: sum over positive-negative pairs of ``w_p w_n [s_p > s_n] (+ 1/2 if tied)``
    divided by ``W_pos W_neg``; ``ranks`` are dense score ranks."""
    wpos = np.bincount(ranks[positive], weights=weights[positive], minlength=n_ranks)
    wneg = np.bincount(ranks[~positive], weights=weights[~positive], minlength=n_ranks)
    below = np.cumsum(wneg) - wneg
    total_pos, total_neg = wpos.sum(), wneg.sum()
    if total_pos == 0 or total_neg == 0:
        return math.nan
    return float(np.sum(wpos * (below + 0.5 * wneg)) / (total_pos * total_neg))
