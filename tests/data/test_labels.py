"""Labelled impressions for click prediction, the random split and cold items in the catalogue."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from attnrec.data import Interactions
from attnrec.data.labels import label_ratings, label_sampled, make_impressions, split_impressions
from attnrec.data.split import prepare_split, random_split
from attnrec.errors import ConfigError, DataError


def log(rows: list[tuple[str, str, int, float]]) -> Interactions:
    frame = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp", "rating"], orient="row")
    return Interactions.from_frame(frame)


def grid(users: int = 10, items: int = 30, per_user: int = 5, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        for t, i in enumerate(rng.choice(items, per_user, replace=False).tolist()):
            rows.append((f"u{u}", f"i{i}", 100 * u + t, float(rng.integers(1, 6))))
    return log(rows)


def test_ratings_threshold_default_four() -> None:
    inter = log([("a", "x", 1, 5.0), ("a", "y", 2, 3.0), ("b", "x", 3, 4.0), ("b", "z", 4, 1.0)])
    imp = make_impressions(inter)
    assert imp.label is not None
    got = dict(
        zip(zip(imp.users.ids(imp.user_idx), imp.items.ids(imp.item_idx), strict=True), imp.label.tolist(), strict=True)
    )
    assert got == {("a", "x"): 1, ("a", "y"): 0, ("b", "x"): 1, ("b", "z"): 0}
    assert label_ratings(inter, threshold=3.0).label.tolist().count(1) == 3  # type: ignore[union-attr]
    with pytest.raises(DataError, match="needs both"):
        label_ratings(inter, threshold=6.0)


def test_sampled_negatives_are_unseen_seeded_and_k_per_positive() -> None:
    inter = grid()
    frame = inter.to_frame().drop("rating")
    implicit = Interactions.from_frame(frame)
    imp = label_sampled(implicit, negatives=3, seed=5)
    assert imp.label is not None
    assert int(imp.label.sum()) == len(implicit) and int((imp.label == 0).sum()) == 3 * len(implicit)
    seen = set(zip(implicit.user_idx.tolist(), implicit.item_idx.tolist(), strict=True))
    negs = [
        (u, i)
        for u, i, y in zip(imp.user_idx.tolist(), imp.item_idx.tolist(), imp.label.tolist(), strict=True)
        if y == 0
    ]
    assert not any(p in seen for p in negs), "a negative must be an item the user never interacted with"
    for u in np.unique(imp.user_idx):  # distinct within a user while unseen items last (25 unseen >= 15 drawn)
        items = [i for uu, i in negs if uu == u]
        assert len(items) == len(set(items))
    again = label_sampled(implicit, negatives=3, seed=5)
    assert np.array_equal(again.item_idx, imp.item_idx)
    assert not np.array_equal(label_sampled(implicit, negatives=3, seed=6).item_idx, imp.item_idx)
    assert make_impressions(implicit, negatives=3, seed=5).label is not None  # auto: no ratings -> sampled
    with pytest.raises(ConfigError, match="negatives"):
        label_sampled(implicit, negatives=0)


def test_random_and_temporal_splits_of_impressions() -> None:
    imp = make_impressions(grid(users=40, per_user=10))
    split = split_impressions(imp, "random", test_frac=0.2, valid_frac=0.1, seed=1)
    assert len(split.test) == round(0.2 * len(imp)) and len(split.valid) == round(0.1 * len(imp))
    assert len(split.train) + len(split.valid) + len(split.test) == len(imp)
    assert split.test.label is not None and split.train.label is not None
    again = random_split(imp, test_frac=0.2, valid_frac=0.1, seed=1)
    assert np.array_equal(again.test.order, split.test.order)  # type: ignore[arg-type]
    temporal = split_impressions(imp, "temporal", test_frac=0.2, valid_frac=0.1)
    assert temporal.train.timestamp.max() <= temporal.test.timestamp.min()  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="random, temporal"):
        split_impressions(imp, "leave-one-out")


def test_cold_items_get_indices_after_interacted_items() -> None:
    inter = grid()
    split, _ = prepare_split(inter, "leave-one-out", catalogue=["new1", "i3", "new2"])
    n = inter.num_items
    assert split.train.items.all_ids[n:] == ["new1", "new2"]  # i3 already known: unchanged
    assert split.train.items.index("i3") == inter.items.index("i3")
    assert split.test.items is split.train.items and split.valid.items is split.train.items
    assert split.train.item_counts()[n + 1 :].sum() == 0
    plain, _ = prepare_split(inter, "leave-one-out")
    assert plain.train.num_items == n  # no catalogue: nothing added


def test_temporal_split_keeps_test_events_of_catalogue_items() -> None:
    rows = [("a", "x", 1, 5.0), ("a", "y", 2, 5.0), ("b", "x", 3, 5.0), ("b", "y", 4, 5.0), ("a", "new", 9, 5.0)]
    inter = log(rows)
    split, _ = prepare_split(inter, "temporal", test_frac=0.2, valid_frac=0.0)
    assert len(split.test) == 0  # "new" has no training event: dropped, as before
    split, report = prepare_split(inter, "temporal", test_frac=0.2, valid_frac=0.0, catalogue=["new"])
    assert split.test.items.ids(split.test.item_idx).tolist() == ["new"]
    assert report.parts["test"].new_item_events == 0
