"""Labelled impressions for click prediction (task ``ctr``): (user, item, label 0/1, timestamp) rows.

An impression set is an :class:`~attnrec.data.interactions.Interactions` whose ``label`` array is set (1 = clicked /
liked, 0 = shown and not clicked). It is built from a log in one of two ways (rules also in ``docs/data.md``):

* **From explicit ratings** (:func:`label_ratings`): every rated (user, item) pair is one impression, labelled 1
  when ``rating >= threshold`` (default :data:`DEFAULT_THRESHOLD` = 4.0, the usual MovieLens convention: 4 and 5
  stars are positive, 1-3 negative) and 0 otherwise. Ratings are kept.
* **From an implicit log** (:func:`label_sampled`): every event is a positive; for each positive, ``negatives``
  (default :data:`DEFAULT_NEGATIVES` = 4) items the user never interacted with anywhere in the log are drawn
  uniformly at random as negatives, distinct within the user while the user's unseen items last (then drawn with
  replacement). A negative carries the timestamp and file position of its positive, so a time split keeps
  them together. Draws depend only on ``(seed, user index)``.

:func:`make_impressions` picks ratings when the log has them (``source="auto"``), else sampling. Splits of
impressions are :func:`~attnrec.data.split.random_split` (the default for click prediction) and
:func:`~attnrec.data.split.temporal_split` (one global time quantile cut); :func:`split_impressions` dispatches.
"""

from __future__ import annotations

import numpy as np

from attnrec.data.interactions import Interactions
from attnrec.data.split import Split, random_split, temporal_split
from attnrec.errors import ConfigError, DataError

DEFAULT_THRESHOLD = 4.0
"""Ratings ``>=`` this are positive impressions (:func:`label_ratings`)."""

DEFAULT_NEGATIVES = 4
"""Sampled negatives per positive event of an implicit log (:func:`label_sampled`)."""

LABEL_SOURCES = ("auto", "ratings", "sampled")
"""How :func:`make_impressions` labels a log."""

CTR_SPLITS = ("random", "temporal")
"""Splits of labelled impressions."""


def label_ratings(inter: Interactions, *, threshold: float = DEFAULT_THRESHOLD) -> Interactions:
    """Every rated event is an impression, positive when ``rating >= threshold``.

    Raises:
        ConfigError: the log has no ratings.
        DataError: no positive or no negative impression results (AUC would be undefined).
    """
    if inter.rating is None:
        raise ConfigError(
            "labels from ratings need a rating column, but the data has none (use sampled negatives: labels='sampled')"
        )
    label = (inter.rating >= threshold).astype(np.int8)
    out = _with_label(inter, label)
    _check_both(out, f"rating >= {threshold:g}")
    return out


def label_sampled(inter: Interactions, *, negatives: int = DEFAULT_NEGATIVES, seed: int = 0) -> Interactions:
    """Every event is a positive; ``negatives`` items the user never interacted with are sampled per positive.

    Args:
        inter: the log (ratings, if any, are kept on positives and NaN on negatives).
        negatives: negatives per positive (``>= 1``).
        seed: sampler seed; a user's draws depend only on ``(seed, user index)``.

    Raises:
        ConfigError: ``negatives < 1``.
        DataError: some user has interacted with every item (no negative can be drawn).
    """
    if isinstance(negatives, bool) or int(negatives) < 1:
        raise ConfigError(f"the 'negatives' parameter must be an integer >= 1; got {negatives!r}")
    inter = inter.sorted()
    n_items = inter.num_items
    offsets = inter.sequence_offsets()
    neg_items = np.empty(len(inter) * negatives, dtype=np.int64)
    for u in np.unique(inter.user_idx).tolist():
        lo, hi = int(offsets[u]), int(offsets[u + 1])
        seen = np.unique(inter.item_idx[lo:hi])
        unseen_count = n_items - len(seen)
        if unseen_count <= 0:
            raise DataError(
                f"user {inter.users.id(u)!r} interacted with every one of the {n_items} items: no negative can be "
                "sampled for it"
            )
        want = (hi - lo) * negatives
        rng = np.random.default_rng([int(seed), int(u)])
        if want <= unseen_count:
            chosen = _draw_distinct(rng, seen, n_items, want)
        else:  # fewer unseen items than negatives wanted: draw with replacement from them
            pool = np.setdiff1d(np.arange(1, n_items + 1), seen)
            chosen = rng.choice(pool, size=want, replace=True)
        neg_items[lo * negatives : hi * negatives] = chosen
    rep = np.repeat(np.arange(len(inter)), negatives)
    n_pos, n_neg = len(inter), len(neg_items)
    order = inter.order if inter.order is not None else np.arange(n_pos, dtype=np.int64)
    rating = None
    if inter.rating is not None:
        rating = np.concatenate([inter.rating, np.full(n_neg, np.nan)])
    out = Interactions(
        inter.users,
        inter.items,
        np.concatenate([inter.user_idx, inter.user_idx[rep]]),
        np.concatenate([inter.item_idx, neg_items]),
        None if inter.timestamp is None else np.concatenate([inter.timestamp, inter.timestamp[rep]]),
        rating,
        np.concatenate([order, order[rep]]),
        np.concatenate([np.ones(n_pos, dtype=np.int8), np.zeros(n_neg, dtype=np.int8)]),
    )
    return out.sorted()


def _draw_distinct(rng: np.random.Generator, seen: np.ndarray, n_items: int, want: int) -> np.ndarray:
    """``want`` distinct items of ``1..n_items`` outside ``seen`` (sorted unique), by rejection."""
    chosen: list[np.ndarray] = []
    taken = np.zeros(n_items + 1, dtype=bool)
    taken[0] = True
    taken[seen] = True
    left = want
    while left > 0:
        draw = rng.integers(1, n_items + 1, size=max(2 * left, 16))
        draw = draw[~taken[draw]]
        draw = draw[np.sort(np.unique(draw, return_index=True)[1])][:left]
        taken[draw] = True
        chosen.append(draw)
        left -= len(draw)
    return np.concatenate(chosen)


def make_impressions(
    inter: Interactions,
    *,
    source: str = "auto",
    threshold: float = DEFAULT_THRESHOLD,
    negatives: int = DEFAULT_NEGATIVES,
    seed: int = 0,
) -> Interactions:
    """Labelled impressions from a log: ``source="ratings"`` (:func:`label_ratings`), ``"sampled"``
    (:func:`label_sampled`) or ``"auto"`` (ratings when the log has them, else sampled negatives)."""
    if source not in LABEL_SOURCES:
        raise ConfigError(f"the 'labels' parameter must be one of {', '.join(LABEL_SOURCES)}; got {source!r}")
    if inter.label is not None:
        return inter
    if source == "ratings" or (source == "auto" and inter.rating is not None):
        return label_ratings(inter, threshold=threshold)
    return label_sampled(inter, negatives=negatives, seed=seed)


def split_impressions(
    impressions: Interactions,
    method: str = "random",
    *,
    test_frac: float = 0.1,
    valid_frac: float = 0.1,
    seed: int = 42,
) -> Split:
    """Split labelled impressions: ``"random"`` (seeded, per impression) or ``"temporal"`` (global time cuts at the
    ``1 - test_frac - valid_frac`` and ``1 - test_frac`` quantiles of the impressions in time order).

    Every part keeps the vocabularies of ``impressions`` (users and items seen only in test are not dropped: a
    click model answers them from features or its fallback)."""
    if impressions.label is None:
        raise ConfigError("split_impressions needs labelled impressions (make_impressions builds them)")
    if method == "random":
        return random_split(impressions, test_frac=test_frac, valid_frac=valid_frac, seed=seed)
    if method == "temporal":
        return temporal_split(impressions, test_frac=test_frac, valid_frac=valid_frac)
    raise ConfigError(f"the split of task 'ctr' must be one of {', '.join(CTR_SPLITS)}; got {method!r}")


def _with_label(inter: Interactions, label: np.ndarray) -> Interactions:
    return Interactions(
        inter.users,
        inter.items,
        inter.user_idx,
        inter.item_idx,
        inter.timestamp,
        inter.rating,
        inter.order,
        label,
    )


def _check_both(inter: Interactions, rule: str) -> None:
    assert inter.label is not None
    pos = int(inter.label.sum())
    if pos == 0 or pos == len(inter):
        raise DataError(
            f"labels ({rule}) give {pos} positive and {len(inter) - pos} negative impressions; click prediction "
            "needs both (change the threshold)"
        )
