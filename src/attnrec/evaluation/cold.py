"""Cold-start protocols: held-out items that have features but no events, and held-out users that have
demographics but no history.

**Cold items** (:func:`cold_item_split`, :func:`evaluate_cold_items`): a seeded ``frac`` of the items that have
features is held out with *all* their events. The model is fitted on the other events; the held-out items stay in
the catalogue as cold items (indices after the interacted items, :meth:`Interactions.extend_items`) with their
features. A test user is a user with at least one event on a held-out item and at least one other event: the
history is the user's other events (time order), the targets are the distinct held-out items the user interacted
with. Every catalogue item the user has not seen in the history is a candidate (full ranking, warm and cold items
compete). Per user ``recall@k = hits / |targets|`` and ``ndcg@k = DCG / IDCG`` with binary gains and the ideal
DCG of ``min(|targets|, k)`` hits; the reported values are means over test users.

**Cold users** (:func:`cold_user_split`, :func:`evaluate_cold_users`): a seeded ``frac`` of the users that have
user features is held out with all their events. At test time a held-out user has *no history at all* (not even a
first event) and only the user features; the targets are the distinct items of the user's events that the
training log knows (items seen only by held-out users cannot be ranked by any answer and are counted as
``unreachable``). Two answers are compared: global popularity and the ``"demographic"`` fallback (popularity
within the user's demographic groups, :mod:`attnrec.data.demographics`), both over the full catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnrec.base import Recommender, top_k
from attnrec.data.features import ItemFeatures
from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.errors import ConfigError


@dataclass(frozen=True)
class ColdItemSplit:
    """A log split by held-out items.

    Attributes:
        train: the events not on held-out items, over a catalogue of the items with training events followed by
            the held-out (cold) items.
        cold_items: ``(c,)`` item indices (in ``train.items``) of the held-out items.
        test_users: ``(n,)`` user indices (in ``train.users``) of the test users.
        targets: per test user, the held-out item indices the user interacted with (distinct, sorted).
        held_out_events: events removed with the held-out items.
    """

    train: Interactions
    cold_items: np.ndarray
    test_users: np.ndarray
    targets: list[np.ndarray]
    held_out_events: int

    def histories(self) -> list[np.ndarray]:
        """The training history of each test user (time order)."""
        offsets = self.train.sequence_offsets()
        return [self.train.item_idx[offsets[u] : offsets[u + 1]] for u in self.test_users.tolist()]


@dataclass(frozen=True)
class ColdUserSplit:
    """A log split by held-out users.

    Attributes:
        train: the events of the other users.
        test_user_ids: external ids of the held-out users that have at least one reachable target.
        targets: per test user, the distinct item indices (in ``train.items``) of the user's events.
        unreachable: held-out events on items the training log does not know.
    """

    train: Interactions
    test_user_ids: list[str]
    targets: list[np.ndarray]
    unreachable: int


def _check(frac: float, inter: Interactions) -> None:
    if not 0.0 < frac < 1.0:
        raise ConfigError(f"the 'frac' parameter must be in (0, 1); got {frac}")
    if len(inter) == 0:
        raise ConfigError("cold-start protocols need a non-empty log")


def _hold_out(ids: Sequence[str], frac: float, seed: int, given: Sequence[str] | None, what: str) -> set[str]:
    if given is not None:
        chosen = {str(g) for g in given}
        unknown = sorted(chosen - set(ids))
        if unknown or not chosen:
            raise ConfigError(
                f"the 'held_out' parameter must name {what} of the log with features; got {unknown[:3] or 'none'}"
            )
        return chosen
    rng = np.random.default_rng(seed)
    n = max(1, round(frac * len(ids)))
    return {ids[j] for j in rng.choice(len(ids), size=n, replace=False).tolist()}


def cold_item_split(
    inter: Interactions,
    features: ItemFeatures,
    *,
    frac: float = 0.1,
    seed: int = 0,
    held_out: Sequence[str] | None = None,
) -> ColdItemSplit:
    """Hold out a seeded ``frac`` (at least one) of the log's items that have ``features``, with all their events
    (module doc); ``held_out`` names the items instead."""
    _check(frac, inter)
    inter = inter.positives()
    eligible = [i for i in inter.items.all_ids if i in features]
    if len(eligible) < 2:
        raise ConfigError(
            f"cold-item protocol: {len(eligible)} of the log's {inter.num_items} items have features; need >= 2 "
            "(do the feature file's ids match the log's?)"
        )
    cold = _hold_out(eligible, frac, seed, held_out, "items")
    is_cold = np.zeros(inter.num_items + 1, dtype=bool)
    is_cold[inter.items.indices(sorted(cold))] = True
    on_cold = is_cold[inter.item_idx]
    warm_events = inter.subset(~on_cold)
    users = IdVocabulary.from_ids(inter.users.ids(np.unique(warm_events.user_idx)).tolist(), kind="user")
    warm_ids = [i for i in inter.items.all_ids if i not in cold]
    warm_seen = set(inter.items.ids(np.unique(warm_events.item_idx)).tolist())
    cold_order = [i for i in inter.items.all_ids if i in cold]
    items = IdVocabulary([*(i for i in warm_ids if i in warm_seen), *cold_order], kind="item")
    train = warm_events.with_vocabularies(users, items)
    cold_events = inter.subset(on_cold)
    u = users.indices(inter.users.ids(cold_events.user_idx))
    i = items.indices(inter.items.ids(cold_events.item_idx))
    keep = u > 0  # users whose every event was on held-out items have no history: not evaluated
    pairs = np.unique(np.stack([u[keep], i[keep]], axis=1), axis=0) if keep.any() else np.zeros((0, 2), np.int64)
    test_users, starts = np.unique(pairs[:, 0], return_index=True)
    targets = np.split(pairs[:, 1], starts[1:]) if len(pairs) else []
    return ColdItemSplit(
        train,
        items.indices(cold_order),
        test_users.astype(np.int64),
        [t.astype(np.int64) for t in targets],
        int(on_cold.sum()),
    )


def cold_user_split(
    inter: Interactions,
    user_ids: Sequence[str],
    *,
    frac: float = 0.1,
    seed: int = 0,
    held_out: Sequence[str] | None = None,
) -> ColdUserSplit:
    """Hold out a seeded ``frac`` (at least one) of the log's users among ``user_ids`` (those with user
    features), with all their events (module doc); ``held_out`` names the users instead."""
    _check(frac, inter)
    inter = inter.positives()
    described = set(map(str, user_ids))
    eligible = [u for u in inter.users.all_ids if u in described]
    if len(eligible) < 2:
        raise ConfigError(
            f"cold-user protocol: {len(eligible)} of the log's {inter.num_users} users have features; need >= 2 "
            "(do the user file's ids match the log's?)"
        )
    cold = _hold_out(eligible, frac, seed, held_out, "users")
    is_cold = np.zeros(inter.num_users + 1, dtype=bool)
    is_cold[inter.users.indices(sorted(cold))] = True
    held = is_cold[inter.user_idx]
    train_events = inter.subset(~held)
    users = IdVocabulary.from_ids(inter.users.ids(np.unique(train_events.user_idx)).tolist(), kind="user")
    items = IdVocabulary.from_ids(inter.items.ids(np.unique(train_events.item_idx)).tolist(), kind="item")
    train = train_events.with_vocabularies(users, items)
    test = inter.subset(held)
    item_idx = items.indices(inter.items.ids(test.item_idx))
    ids, targets = [], []
    for u in np.unique(test.user_idx).tolist():
        mine = np.unique(item_idx[(test.user_idx == u) & (item_idx > 0)])
        if len(mine):
            ids.append(inter.users.id(int(u)))
            targets.append(mine.astype(np.int64))
    return ColdUserSplit(train, ids, targets, int((item_idx == 0).sum()))


def ranking_metrics(scores: np.ndarray, targets: Sequence[np.ndarray], k: int = 10) -> dict[str, np.ndarray]:
    """Per-row ``recall@k`` and ``ndcg@k`` of ``targets`` (item indices) in the rows of ``scores`` (``(n,
    num_items + 1)``; excluded items already ``-inf``; ties: lower index first). Returns arrays of shape ``(n,)``."""
    if k < 1:
        raise ConfigError(f"the 'k' parameter must be >= 1; got {k}")
    idx, vals = top_k(scores, k)
    idx = np.where(np.isfinite(vals), idx, 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    recall = np.zeros(len(targets))
    ndcg = np.zeros(len(targets))
    for r, t in enumerate(targets):
        hit = np.isin(idx[r], t) & (idx[r] > 0)
        recall[r] = hit.sum() / len(t)
        ndcg[r] = (discounts[: idx.shape[1]] * hit).sum() / discounts[: min(len(t), k)].sum()
    return {f"recall@{k}": recall, f"ndcg@{k}": ndcg}


def evaluate_cold_items(
    model: Recommender, split: ColdItemSplit, *, k: int = 10, batch_size: int = 512
) -> dict[str, Any]:
    """Means of ``recall@k`` / ``ndcg@k`` of the held-out items for a model fitted on ``split.train``, plus the
    share of the test users' top-k slots given to cold items and the number of test users."""
    histories = split.histories()
    per: dict[str, list[np.ndarray]] = {}
    cold_slots = 0
    is_cold = np.zeros(len(split.train.items) + 1, dtype=bool)
    is_cold[split.cold_items] = True
    for start in range(0, len(split.test_users), batch_size):
        users = split.test_users[start : start + batch_size]
        hists = histories[start : start + batch_size]
        scores, _ = model.scores_with_fallback(users, hists)
        for r, h in enumerate(hists):
            scores[r, h] = -np.inf
        for name, values in ranking_metrics(scores, split.targets[start : start + batch_size], k).items():
            per.setdefault(name, []).append(values)
        idx, vals = top_k(scores, k)
        cold_slots += int((is_cold[idx] & np.isfinite(vals)).sum())
    out: dict[str, Any] = {name: float(np.concatenate(v).mean()) for name, v in per.items()}
    out["users"] = len(split.test_users)
    out["cold_share_of_top"] = cold_slots / max(1, k * len(split.test_users))
    return out


def evaluate_cold_users(model: Recommender, split: ColdUserSplit, *, k: int = 10) -> dict[str, dict[str, Any]]:
    """``{"popularity": {...}, "demographic": {...}}``: means of ``recall@k`` / ``ndcg@k`` of the held-out
    users' items for global popularity and for the model's demographic fallback (``model`` fitted on
    ``split.train`` with user features that describe the held-out users), plus the share of users the
    demographic groups answered (the others get global popularity in both rows)."""
    n = len(split.test_user_ids)
    empty = [np.zeros(0, dtype=np.int64)] * n
    zeros = np.zeros(n, dtype=np.int64)
    out: dict[str, dict[str, Any]] = {}
    groups = [model.demographic_groups(u) for u in split.test_user_ids]
    for name, demographics in (("popularity", [None] * n), ("demographic", groups)):
        scores, kinds = model.scores_and_fallbacks(zeros, empty, demographics=demographics)
        metrics: dict[str, Any] = {m: float(v.mean()) for m, v in ranking_metrics(scores, split.targets, k).items()}
        metrics["users"] = n
        metrics["answered_by_demographic"] = float((kinds == "demographic").mean()) if n else 0.0
        out[name] = metrics
    return out


__all__ = [
    "ColdItemSplit",
    "ColdUserSplit",
    "cold_item_split",
    "cold_user_split",
    "evaluate_cold_items",
    "evaluate_cold_users",
    "ranking_metrics",
]
