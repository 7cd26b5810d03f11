"""Evaluation protocols: full ranking over every item and sampled ranking over random negatives.

The rules (all in ``docs/evaluation.md``):

* **Users.** Every user with at least one event in ``targets`` is evaluated. Their *targets* are the distinct
  items of those events; their *history* is their item sequence in ``history`` (what the model is given).
  Scores come from :meth:`Recommender.scores_with_fallback`; rows answered by the popularity fallback are counted
  (``num_fallback``) and evaluated like any other.
* **Seen items** (both protocols, as serving: ``Recommender.recommend(exclude_seen=True)``). With
  ``exclude_seen`` (default) *every* item of the user's history is removed from the candidates, targets
  included. A target that is also in the history is then **unreachable**: it stays in the user's targets (it
  counts in ``recall``'s and ``ndcg``'s denominators) but can never be hit, exactly like a target scored
  ``-inf``. Unreachable targets are counted (``unreachable``, ``unreachable_targets``,
  ``users_with_unreachable``) so that repeat-consumption data shows up in the report instead of silently
  inflating or deflating the metrics. With ``exclude_seen=False`` nothing is removed and nothing is unreachable.
* **Candidates, full protocol.** All items ``1..num_items`` (index 0 never), less the seen items above.
* **Candidates, sampled protocol** (``negatives=N``). The targets (less the unreachable ones) plus ``N``
  negatives drawn without replacement from the items the user has neither in the history nor in the targets,
  uniformly or proportionally to the item's event count in ``history`` (items with no events are drawn only once
  the others are exhausted). History items are never negatives, whatever ``exclude_seen`` says (a negative is an
  item the user did not consume). When fewer than ``N`` such items exist, all of them are used. Draws depend
  only on ``(seed, user index)``, not on the batch size. Labelled ``"sampled-N"`` (``"sampled-N-popularity"``).
* **Scores.** NaN scores count as ``-inf``; a candidate scored ``-inf`` is not ranked (never in a top-k list, so
  a target scored ``-inf`` is a miss).
* **Ties are pessimistic.** A target's position is ``1 +`` the number of candidates ranked ahead of it, where
  every non-target candidate with a score ``>=`` the target's is ahead of it; several targets with one score
  fill the last places of their tie block. For one target: ``position = #{candidates with score >= target}``.
* **Coverage lists.** ``coverage@k`` uses each user's top-k candidate list with ties broken by lower item index
  (as :meth:`Recommender.recommend`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attnrec.base import Recommender, top_k
from attnrec.data.interactions import Interactions
from attnrec.data.split import Split
from attnrec.errors import ConfigError
from attnrec.evaluation.metrics import mae, metric_names, ranking_metrics_from_positions, rmse
from attnrec.evaluation.stats import mean_confidence_interval
from attnrec.training.options import ProgressCallback

NEGATIVE_SAMPLING = ("uniform", "popularity")
_PROTOCOL_RE = re.compile(r"^sampled(?:-(\d+))?(?:-(uniform|popularity))?$")


@dataclass(frozen=True)
class EvaluationResult:
    """Per-user and mean metrics of one evaluation.

    Attributes:
        protocol: ``"full"``, ``"sampled-N"`` or ``"sampled-N-popularity"``.
        ks: the cut-offs.
        users: ``(n,)`` int64 indices of the evaluated users (ascending).
        per_user: metric name (``"ndcg@10"``) -> ``(n,)`` float64 values aligned with ``users``.
        summary: metric name -> mean over users, plus ``coverage@k`` (not a per-user metric).
        num_fallback: number of evaluated users answered by the popularity fallback.
        fallback: ``(n,)`` bool, true for those users.
        n_targets: ``(n,)`` number of distinct target items of each user.
        unreachable: ``(n,)`` number of each user's distinct targets that are also in the user's history and
            were therefore removed from the candidates (``exclude_seen=True``); always 0 with
            ``exclude_seen=False``. They count as misses.
    """

    protocol: str
    ks: tuple[int, ...]
    users: np.ndarray
    per_user: dict[str, np.ndarray]
    summary: dict[str, float]
    num_fallback: int = 0
    fallback: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    n_targets: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    unreachable: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def unreachable_targets(self) -> int:
        """Number of (user, target item) pairs that could not be hit because the item is in the user's history."""
        return int(self.unreachable.sum())

    @property
    def users_with_unreachable(self) -> int:
        """Number of evaluated users with at least one unreachable target."""
        return int((self.unreachable > 0).sum())

    def confidence_interval(self, metric: str, level: float = 0.95) -> tuple[float, float]:
        """Student-t interval of the mean of a per-user metric (``(nan, nan)`` for fewer than 2 users)."""
        if metric not in self.per_user:
            raise ConfigError(
                f"confidence_interval needs a per-user metric; got {metric!r} (available: {', '.join(self.per_user)})"
            )
        return mean_confidence_interval(self.per_user[metric], level)

    def to_json(self, level: float = 0.95) -> dict[str, Any]:
        """``{"protocol", "n_users", "num_fallback", "n_targets", "unreachable_targets", "users_with_unreachable",
        "ks", "summary": {...}, "ci_level", "ci": {metric: [low, high]}}`` (JSON-safe: NaN becomes ``None``;
        ``n_targets`` is the total number of distinct (user, target item) pairs)."""

        def safe(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "protocol": self.protocol,
            "n_users": self.n_users,
            "num_fallback": int(self.num_fallback),
            "n_targets": int(self.n_targets.sum()),
            "unreachable_targets": self.unreachable_targets,
            "users_with_unreachable": self.users_with_unreachable,
            "ks": list(self.ks),
            "summary": {k: safe(v) for k, v in self.summary.items()},
            "ci_level": level,
            "ci": {m: [safe(lo), safe(hi)] for m in self.per_user for lo, hi in [self.confidence_interval(m, level)]},
        }


# ---------------------------------------------------------------------------------------------- entry points
def evaluate(model: Recommender, split: Split, *, target: str = "test", **kwargs: Any) -> EvaluationResult:
    """Evaluate on ``split``'s ``target`` events ("valid" or "test") given the history before them."""
    if target not in ("valid", "test"):
        raise ConfigError(f"the 'target' parameter of evaluate must be 'valid' or 'test'; got {target!r}")
    return evaluate_interactions(model, split.history_for(target), split.targets(target), **kwargs)


def evaluate_interactions(
    model: Recommender,
    history: Interactions,
    targets: Interactions,
    *,
    ks: Sequence[int] = (10, 20),
    protocol: str = "full",
    exclude_seen: bool = True,
    negatives: int | None = None,
    negative_sampling: str = "uniform",
    seed: int = 0,
    batch_size: int = 1024,
    progress: ProgressCallback | None = None,
) -> EvaluationResult:
    """Rank each target user's candidates with ``model`` and compute top-k metrics (rules: module docstring).

    Args:
        model: a fitted recommender.
        history: events the model may see (each user's item sequence is passed to the model).
        targets: held-out events; every user with at least one is evaluated.
        ks: cut-offs, each ``>= 1``.
        protocol: ``"full"`` or ``"sampled"`` (``"sampled-N"`` / ``"sampled-N-popularity"`` also accepted).
        exclude_seen: remove every history item from the candidates, targets included (a target in the history
            is then unreachable: a miss, counted in ``EvaluationResult.unreachable``); ``False`` keeps them.
        negatives: number of sampled negatives; giving it selects the sampled protocol.
        negative_sampling: ``"uniform"`` or ``"popularity"``.
        seed: seed of the negative sampler.
        batch_size: users scored at once.
        progress: optional ``callback(description, completed, total)``.
    """
    ks_t = _check_ks(ks)
    if batch_size < 1:
        raise ConfigError(f"the 'batch_size' parameter must be >= 1; got {batch_size}")
    negatives, negative_sampling = _resolve_protocol(protocol, negatives, negative_sampling)
    label = (
        "full"
        if negatives is None
        else f"sampled-{negatives}" + ("-popularity" if negative_sampling == "popularity" else "")
    )
    num_items = model.num_items  # raises NotFittedError
    history = _aligned(history, model)
    targets = _aligned(targets, model)
    if len(targets) == 0:
        raise ConfigError("the 'targets' interactions are empty: there is nothing to evaluate")
    C = num_items + 1
    users = targets.active_users().astype(np.int64)
    h_off, h_items = history.sequence_offsets(), history.item_idx
    t_off, t_items = targets.sequence_offsets(), targets.item_idx
    weights = history.item_counts().astype(np.float64) if negative_sampling == "popularity" else None

    kmax = max(ks_t)
    positions_parts: list[np.ndarray] = []
    n_targets = np.zeros(len(users), dtype=np.int64)
    unreachable = np.zeros(len(users), dtype=np.int64)
    fallback = np.zeros(len(users), dtype=bool)
    covered = {k: np.zeros(C, dtype=bool) for k in ks_t}
    per_user_parts: list[dict[str, np.ndarray]] = []
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        B = len(chunk)
        hists = [h_items[h_off[u] : h_off[u + 1]] for u in chunk.tolist()]
        times = None
        if model.uses_time and history.timestamp is not None:  # event times for models with time inputs
            times = [history.timestamp[h_off[u] : h_off[u + 1]] for u in chunk.tolist()]
        scores, fb = model.scores_with_fallback(chunk, hists, times)
        if scores.shape != (B, C):
            raise ConfigError(f"{type(model).__name__}.score_indices must return shape ({B}, {C}); got {scores.shape}")
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        nan = np.isnan(scores)
        if nan.any():
            scores[nan] = -np.inf
        fallback[start : start + B] = fb
        t_rows, t_cols = _unique_ragged(t_off, t_items, chunk, C)
        h_rows, h_cols = _ragged(h_off, h_items, chunk)
        if exclude_seen and len(h_rows):
            seen_t = np.isin(t_rows * C + t_cols, h_rows * C + h_cols)
            unreachable[start : start + B] = np.bincount(t_rows[seen_t], minlength=B)
        if negatives is None:
            if exclude_seen and len(h_rows):
                scores[h_rows, h_cols] = -np.inf
        else:
            negs = sample_negatives(
                chunk,
                (h_rows, h_cols),
                (t_rows, t_cols),
                C,
                negatives,
                weights=weights,
                seed=seed,
            )
            keep = np.zeros((B, C), dtype=bool)
            keep[t_rows, t_cols] = True
            if exclude_seen:
                keep[h_rows, h_cols] = False  # a target in the history is unreachable, as in the full protocol
            keep[np.repeat(np.arange(B), negs.shape[1]), negs.ravel()] = True
            keep[:, 0] = False
            scores = np.where(keep, scores, np.float32(-np.inf))
        scores[:, 0] = -np.inf
        counts = np.bincount(t_rows, minlength=B)
        n_targets[start : start + B] = counts
        tcols = np.full((B, int(counts.max())), -1, dtype=np.int64)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        tcols[t_rows, np.arange(len(t_rows)) - first[t_rows]] = t_cols
        st = torch.from_numpy(scores)
        pos = target_positions(st, torch.from_numpy(tcols), n_targets=counts)
        positions_parts.append(pos)
        per_user_parts.append(ranking_metrics_from_positions(pos, counts, ks_t))
        lists = topk_lists(st, kmax)
        for k in ks_t:
            covered[k][lists[:, :k].ravel()] = True
        if progress is not None:
            progress("evaluate", float(start + B), float(len(users)))

    names = metric_names(ks_t, coverage=False)
    per_user = {name: np.concatenate([p[name] for p in per_user_parts]) for name in names}
    summary = {name: float(per_user[name].mean()) for name in names}
    for k in ks_t:
        summary[f"coverage@{k}"] = float(covered[k][1:].sum() / num_items)
    return EvaluationResult(
        protocol=label,
        ks=ks_t,
        users=users,
        per_user=per_user,
        summary=summary,
        num_fallback=int(fallback.sum()),
        fallback=fallback,
        n_targets=n_targets,
        unreachable=unreachable,
    )


def evaluate_ratings(model: Recommender, targets: Interactions, *, batch_size: int = 65536) -> dict[str, float]:
    """``{"mae", "rmse"}`` of ``model.predict_ratings`` against the ratings of ``targets``."""
    if not model.predicts_ratings:
        raise ConfigError(f"model {type(model).__name__} does not predict ratings (predicts_ratings is false)")
    if targets.rating is None:
        raise ConfigError("the 'targets' interactions have no rating column; mae/rmse need ratings")
    targets = _aligned(targets, model)
    if len(targets) == 0 or targets.rating is None:
        raise ConfigError("the 'targets' interactions are empty: there is nothing to evaluate")
    preds = np.concatenate(
        [
            np.asarray(
                model.predict_ratings(targets.user_idx[s : s + batch_size], targets.item_idx[s : s + batch_size]),
                dtype=np.float64,
            ).ravel()
            for s in range(0, len(targets), batch_size)
        ]
    )
    return {"mae": mae(targets.rating, preds), "rmse": rmse(targets.rating, preds)}


# ---------------------------------------------------------------------------------------------- ranking core
def target_positions(scores: torch.Tensor, tcols: torch.Tensor, *, n_targets: np.ndarray | None = None) -> np.ndarray:
    """Pessimistic 1-based positions of each row's targets among that row's candidates.

    Args:
        scores: ``(B, C)`` float scores without NaN; ``-inf`` marks a non-candidate.
        tcols: ``(B, m)`` int64 distinct target columns per row, ``-1`` = padding.
        n_targets: optional ``(B,)`` number of real targets per row (computed when omitted).

    Returns:
        ``(B, m)`` float64 positions sorted ascending per row; ``inf`` for padding and targets scored ``-inf``.
    """
    B, m = tcols.shape
    out = np.full((B, m), np.inf)
    if m == 0 or B == 0:
        return out
    if n_targets is None:
        n_targets = (tcols >= 0).sum(1).numpy()
    single = np.flatnonzero(n_targets == 1)
    multi = np.flatnonzero(n_targets > 1)
    neg_inf = torch.tensor(-math.inf, dtype=scores.dtype)
    if len(single):  # numpy: its comparison + row sum is much faster than torch's bool sum
        s_np, c_np = scores.numpy(), tcols.numpy()
        s1 = s_np if len(single) == B else s_np[single]
        ts1 = np.take_along_axis(s1, c_np[single, :1], axis=1)
        ge1 = (s1 >= ts1).sum(axis=1).astype(np.float64)
        out[single, 0] = np.where(ts1[:, 0] > -np.inf, ge1, np.inf)
    if len(multi):
        rows = torch.from_numpy(multi)
        s = scores[rows]
        c = tcols[rows]
        valid = c >= 0
        ts = torch.gather(s, 1, c.clamp(min=0))
        ts = torch.where(valid & (ts > neg_inf), ts, neg_inf)
        ts_desc = torch.sort(ts, dim=1, descending=True).values.contiguous()
        ranked = ts_desc > neg_inf
        srt = torch.sort(s, dim=1).values.contiguous()
        ge = s.shape[1] - torch.searchsorted(srt, ts_desc, right=False)  # candidates with score >= v
        asc = ts_desc.flip(1).contiguous()
        tge = m - torch.searchsorted(asc, ts_desc, right=False)  # targets with score >= v
        i = torch.arange(1, m + 1, dtype=torch.int64)
        pos = (i + ge - tge).to(torch.float64)
        pos = torch.where(ranked, pos, torch.tensor(math.inf, dtype=torch.float64))
        out[multi] = pos.numpy()
    return out


def topk_lists(scores: torch.Tensor, k: int) -> np.ndarray:
    """``(B, k)`` item indices of each row's top-k candidates (ties: lower index first), 0 where fewer than
    ``k`` candidates have a score above ``-inf``. Agrees exactly with :func:`attnrec.base.top_k`."""
    k = min(k, scores.shape[1])
    vals_t, idx_t = torch.topk(scores, k, dim=1, largest=True, sorted=True)
    kth = vals_t[:, -1:]
    boundary_tie = (scores.numpy() >= kth.numpy()).sum(axis=1) > k
    vals, idx = vals_t.numpy(), idx_t.numpy().astype(np.int64)
    order = np.lexsort((idx, -vals), axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    if boundary_tie.any():
        rows = np.flatnonzero(boundary_tie)
        idx[rows], vals[rows] = top_k(scores.numpy()[rows], k)
    return np.where(vals > -np.inf, idx, 0)


# ---------------------------------------------------------------------------------------------- sampling
def sample_negatives(
    users: np.ndarray,
    history: tuple[np.ndarray, np.ndarray],
    targets: tuple[np.ndarray, np.ndarray],
    num_columns: int,
    n: int,
    *,
    weights: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Per user, ``n`` distinct negative items outside the user's history and targets.

    Args:
        users: ``(B,)`` user indices (each row's draws depend only on ``(seed, user)``).
        history, targets: ``(rows, items)`` pairs: the items of row ``rows[j]`` are excluded.
        num_columns: ``num_items + 1``.
        n: negatives per user.
        weights: ``(num_columns,)`` non-negative sampling weights (``None`` = uniform). Sampling is without
            replacement (Efraimidis-Spirakis keys); zero-weight items come only after all weighted ones.
        seed: sampler seed.

    Returns:
        ``(B, n)`` int64 item indices, ascending within a row, 0-padded at the front when fewer than ``n``
        items are available.
    """
    B = len(users)
    keys = np.empty((B, num_columns), dtype=np.float64)
    for r, u in enumerate(np.asarray(users).tolist()):
        keys[r] = np.random.default_rng([int(seed), int(u)]).random(num_columns)
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        logu = np.log1p(-keys)  # in [-36.8, 0]
        with np.errstate(divide="ignore"):
            keys = np.where(w[None, :] > 0, logu / np.where(w > 0, w, 1.0)[None, :], -1e3 + logu)
    keys[:, 0] = -np.inf
    keys[history[0], history[1]] = -np.inf
    keys[targets[0], targets[1]] = -np.inf
    take = min(n, num_columns - 1)
    part = np.argpartition(-keys, take - 1, axis=1)[:, :take]
    chosen = np.where(np.isfinite(np.take_along_axis(keys, part, axis=1)), part, 0)
    return np.sort(chosen, axis=1).astype(np.int64)


# ---------------------------------------------------------------------------------------------- helpers
def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    if isinstance(ks, int):
        ks = (ks,)
    out = tuple(int(k) for k in ks)
    if not out or any(k < 1 for k in out) or any(int(k) != k for k in ks):
        raise ConfigError(f"the 'ks' parameter must be a non-empty list of integers >= 1; got {list(ks)}")
    return tuple(dict.fromkeys(out))


def _resolve_protocol(protocol: str, negatives: int | None, sampling: str) -> tuple[int | None, str]:
    if sampling not in NEGATIVE_SAMPLING:
        raise ConfigError(f"the 'negative_sampling' parameter must be 'uniform' or 'popularity'; got {sampling!r}")
    if protocol == "full":
        pass
    else:
        match = _PROTOCOL_RE.match(protocol)
        if match is None:
            raise ConfigError(
                f"the 'protocol' parameter must be 'full', 'sampled' or 'sampled-N[-popularity]'; got {protocol!r}"
            )
        if match.group(1) is not None:
            n = int(match.group(1))
            if negatives is not None and negatives != n:
                raise ConfigError(f"protocol {protocol!r} contradicts negatives={negatives}")
            negatives = n
        if match.group(2) is not None:
            sampling = match.group(2)
        if negatives is None:
            raise ConfigError("the sampled protocol needs 'negatives' (the number of sampled negatives); got None")
    if negatives is not None and (isinstance(negatives, bool) or int(negatives) < 1):
        raise ConfigError(f"the 'negatives' parameter must be an integer >= 1; got {negatives!r}")
    return (None if negatives is None else int(negatives)), sampling


def _aligned(inter: Interactions, model: Recommender) -> Interactions:
    """``inter`` over the model's vocabularies (events with ids the model does not know are dropped)."""
    users, items = model.users_, model.items_
    assert users is not None and items is not None
    if (inter.users is users or inter.users == users) and (inter.items is items or inter.items == items):
        return inter
    return inter.with_vocabularies(users, items)


def _ragged(offsets: np.ndarray, values: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, values)`` of the events of each user in ``users`` (row = position in ``users``)."""
    starts, ends = offsets[users], offsets[users + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    rows = np.repeat(np.arange(len(users), dtype=np.int64), lengths)
    out_start = np.cumsum(lengths) - lengths
    idx = np.arange(total, dtype=np.int64) - np.repeat(out_start - starts, lengths)
    return rows, values[idx]


def _unique_ragged(
    offsets: np.ndarray, values: np.ndarray, users: np.ndarray, num_columns: int
) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`_ragged` with duplicate (row, value) pairs removed, sorted by row then value."""
    rows, vals = _ragged(offsets, values, users)
    key = np.unique(rows * num_columns + vals)
    return key // num_columns, key % num_columns
