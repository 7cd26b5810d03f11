"""Splits and filters: hand-checked examples and Hypothesis properties."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnrec.data import (
    Interactions,
    filter_interactions,
    leave_one_out,
    prepare_split,
    ratio_split,
    temporal_split,
)
from attnrec.errors import ConfigError, DataError


def frame(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows], "timestamp": [r[2] for r in rows]}
    )


logs = st.lists(
    st.tuples(st.sampled_from("abcdefg"), st.sampled_from([f"i{k}" for k in range(12)]), st.integers(0, 20)),
    min_size=1,
    max_size=80,
)


def ids_of(inter: Interactions, user: str) -> list[str]:
    return inter.items.ids(inter.sequence(inter.users.index(user))).tolist() if user in inter.users else []


def test_leave_one_out_by_time_then_file_order() -> None:
    # user a: timestamps out of file order, a tie between x and y at t=2 (file order: y before x)
    inter = Interactions.from_frame(frame([("a", "z", 3), ("a", "y", 2), ("a", "x", 2), ("a", "w", 1), ("b", "x", 1)]))
    split = leave_one_out(inter)
    assert ids_of(split.train, "a") == ["w", "y"]
    assert ids_of(split.valid, "a") == ["x"]
    assert ids_of(split.test, "a") == ["z"]
    # a single-event user stays in training only
    assert ids_of(split.train, "b") == ["x"] and ids_of(split.test, "b") == []


def test_leave_one_out_two_events_gives_no_validation() -> None:
    split = leave_one_out(Interactions.from_frame(frame([("a", "x", 1), ("a", "y", 2)])))
    assert ids_of(split.train, "a") == ["x"] and ids_of(split.valid, "a") == [] and ids_of(split.test, "a") == ["y"]


def test_history_for_test_includes_validation() -> None:
    split = leave_one_out(Interactions.from_frame(frame([("a", "x", 1), ("a", "y", 2), ("a", "z", 3), ("a", "v", 4)])))
    assert ids_of(split.history_for("test"), "a") == ["x", "y", "z"]
    assert ids_of(split.history_for("valid"), "a") == ["x", "y"]


@settings(max_examples=60, deadline=None)
@given(logs)
def test_leave_one_out_properties(rows: list[tuple[str, str, int]]) -> None:
    inter = Interactions.from_frame(frame(rows))
    split = leave_one_out(inter)
    assert len(split.train) + len(split.valid) + len(split.test) == len(inter)
    for user in set(r[0] for r in rows):
        full = ids_of(inter, user)
        # each user's order is kept: train + valid + test is the full chronological sequence
        assert ids_of(split.train, user) + ids_of(split.valid, user) + ids_of(split.test, user) == full
        assert len(ids_of(split.test, user)) == (1 if len(full) >= 2 else 0)
        # the test event comes last in time
        if len(full) >= 2:
            ts = [r[2] for r in rows if r[0] == user]
            u = split.test.users.index(user)
            assert split.test.timestamp[split.test.user_idx == u][0] == max(ts)


@settings(max_examples=60, deadline=None)
@given(logs, st.floats(0.05, 0.5), st.floats(0.0, 0.4))
def test_temporal_split_has_no_future_in_training(
    rows: list[tuple[str, str, int]], test_frac: float, valid_frac: float
) -> None:
    if test_frac + valid_frac >= 1:
        return
    inter = Interactions.from_frame(frame(rows))
    split = temporal_split(inter, test_frac=test_frac, valid_frac=valid_frac)
    assert len(split.train) + len(split.valid) + len(split.test) == len(inter)
    if len(split.test) and len(split.train):
        assert split.train.timestamp.max() <= split.test.timestamp.min()
    if len(split.valid) and len(split.train):
        assert split.train.timestamp.max() <= split.valid.timestamp.min()
    # no test *event* is in training (same user, item and time, counted with multiplicity)
    train_events = set(
        zip(split.train.user_idx.tolist(), split.train.item_idx.tolist(), split.train.order.tolist(), strict=True)
    )
    test_events = set(
        zip(split.test.user_idx.tolist(), split.test.item_idx.tolist(), split.test.order.tolist(), strict=True)
    )
    assert not train_events & test_events


@settings(max_examples=60, deadline=None)
@given(logs, st.floats(0.1, 0.5), st.floats(0.0, 0.3))
def test_ratio_split_properties(rows: list[tuple[str, str, int]], test_frac: float, valid_frac: float) -> None:
    inter = Interactions.from_frame(frame(rows))
    split = ratio_split(inter, test_frac=test_frac, valid_frac=valid_frac)
    for user in set(r[0] for r in rows):
        full = ids_of(inter, user)
        train, valid, test = ids_of(split.train, user), ids_of(split.valid, user), ids_of(split.test, user)
        assert train + valid + test == full
        assert len(train) >= 1
        if len(full) >= 2:
            assert len(test) >= 1


@settings(max_examples=80, deadline=None)
@given(logs, st.integers(0, 4), st.integers(0, 4))
def test_k_core_fixpoint(rows: list[tuple[str, str, int]], min_u: int, min_i: int) -> None:
    inter = Interactions.from_frame(frame(rows))
    try:
        core = filter_interactions(inter, min_user_interactions=min_u, min_item_interactions=min_i)
    except DataError:
        # nothing survives: then no non-empty subset can satisfy both thresholds; check the trivial case
        assert min_u > 0 or min_i > 0
        return
    u_counts = np.bincount(core.user_idx, minlength=core.num_users + 1)[1:]
    i_counts = np.bincount(core.item_idx, minlength=core.num_items + 1)[1:]
    assert (u_counts >= min_u).all() and (i_counts >= min_i).all()
    # compact vocabularies: every id has at least one event
    assert (u_counts > 0).all() and (i_counts > 0).all()
    # the core is the largest such subset: no removed event could be restored on its own
    assert len(core) <= len(inter)


def test_k_core_iterates() -> None:
    # d has 1 event -> removed; then z has 1 event -> removed; then c has 1 event -> removed.
    # A single pass over the original counts would keep c and z (2 events each).
    rows = [("a", "x", 1), ("a", "y", 2), ("b", "x", 1), ("b", "y", 2), ("c", "y", 1), ("c", "z", 2), ("d", "z", 1)]
    core = filter_interactions(Interactions.from_frame(frame(rows)), min_user_interactions=2, min_item_interactions=2)
    assert sorted(core.users.all_ids) == ["a", "b"]
    assert sorted(core.items.all_ids) == ["x", "y"]
    assert len(core) == 4


def test_k_core_that_empties_everything_is_an_error() -> None:
    rows = [("a", "x", 1), ("a", "y", 2), ("b", "x", 1), ("b", "z", 1), ("c", "y", 1), ("c", "w", 1)]
    with pytest.raises(DataError, match="no interactions left"):
        filter_interactions(Interactions.from_frame(frame(rows)), min_user_interactions=2, min_item_interactions=2)


def test_min_rating_needs_ratings() -> None:
    with pytest.raises(ConfigError, match="min_rating"):
        filter_interactions(Interactions.from_frame(frame([("a", "x", 1)])), min_rating=4)


def test_temporal_needs_timestamps() -> None:
    inter = Interactions.from_frame(pl.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"]}))
    with pytest.raises(ConfigError, match="timestamp"):
        temporal_split(inter)


# ---------------------------------------------------------------------------------------------- prepare_split
def rated_frame(rows: list[tuple[str, str, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "timestamp": [r[2] for r in rows],
            "rating": [r[3] for r in rows],
        }
    )


def test_temporal_k_core_does_not_see_the_future() -> None:
    # 'hit' is watched once before the cut and by everyone after it: only the future makes it popular.
    past = [(u, i, t) for t, (u, i) in enumerate([(u, i) for u in "abcd" for i in ("x", "y", "z")])]
    past += [("a", "hit", 20)]
    future = [(u, "hit", 100 + k) for k, u in enumerate("bcd")] + [("a", "x", 104), ("b", "y", 105)]
    inter = Interactions.from_frame(frame(past + future))  # 13 past + 5 future events
    test_frac = 5 / 18
    # the old way: k-core on the whole log, then the split: 'hit' has 4 events and survives
    old = temporal_split(filter_interactions(inter, min_item_interactions=3), test_frac=test_frac, valid_frac=0.0)
    assert "hit" in old.train.items and "hit" in ids_of(old.test, "b")
    # the new way: the k-core counts training events only: 'hit' has 1 and goes, with its test events
    split, report = prepare_split(inter, "temporal", test_frac=test_frac, valid_frac=0.0, min_item_interactions=3)
    assert "hit" not in split.train.items and "hit" not in split.test.items
    assert sorted(split.train.items.all_ids) == ["x", "y", "z"]
    assert ids_of(split.test, "a") == ["x"] and ids_of(split.test, "b") == ["y"] and ids_of(split.test, "c") == []
    assert split.train.items is split.test.items is split.valid.items  # one vocabulary, from training
    assert report.filtered_on == "train"
    assert report.parts["train"].events_removed == 1 and report.parts["train"].items_removed == 1
    assert report.parts["test"].events_before == 5 and report.parts["test"].events_after == 2
    assert report.parts["test"].users_after == 2 and report.parts["test"].items_after == 2
    assert report.events_removed == 4
    assert report.to_json()["parts"]["test"]["events_after"] == 2
    assert report.lines()[0].startswith("train: 13 -> 12 events")


def test_temporal_drops_cold_users_and_future_only_items_without_any_threshold() -> None:
    rows = [("a", "x", 1), ("a", "y", 2), ("b", "x", 3), ("b", "y", 4), ("a", "new", 10), ("c", "x", 11)]
    split, report = prepare_split(Interactions.from_frame(frame(rows)), "temporal", test_frac=2 / 6, valid_frac=0.0)
    # 'new' appears only in the test period; 'c' has no training event (cold): neither is in the split
    assert sorted(split.train.items.all_ids) == ["x", "y"] and sorted(split.train.users.all_ids) == ["a", "b"]
    assert len(split.test) == 0 and report.parts["test"].events_removed == 2
    assert report.parts["test"].users_before == 2 and report.parts["test"].users_after == 0
    assert report.parts["test"].cold_user_events == 1 and report.parts["test"].new_item_events == 1
    assert "1 events of users without training events, 1 of items without" in report.lines()[2]


def test_temporal_rating_threshold_applies_to_every_part() -> None:
    rows = [("a", "x", 1, 5.0), ("a", "y", 2, 1.0), ("b", "x", 3, 4.0), ("b", "y", 4, 5.0)]
    rows += [("a", "y", 10, 2.0), ("b", "x", 11, 5.0)]
    split, report = prepare_split(
        Interactions.from_frame(rated_frame(rows)), "temporal", test_frac=2 / 6, valid_frac=0.0, min_rating=4
    )
    assert ids_of(split.train, "a") == ["x"] and ids_of(split.test, "a") == [] and ids_of(split.test, "b") == ["x"]
    assert report.parts["train"].events_removed == 1 and report.parts["test"].events_removed == 1


def test_temporal_filter_that_empties_training_names_the_training_part() -> None:
    rows = [("a", "x", 1), ("b", "y", 2), ("a", "x", 3), ("b", "y", 4)]
    with pytest.raises(DataError, match="training"):
        prepare_split(Interactions.from_frame(frame(rows)), "temporal", test_frac=0.5, min_user_interactions=2)


def test_prepare_split_errors_name_the_parameter() -> None:
    inter = Interactions.from_frame(frame([("a", "x", 1), ("a", "y", 2)]))
    with pytest.raises(ConfigError, match="split"):
        prepare_split(inter, "shuffled")
    with pytest.raises(ConfigError, match="min_rating"):
        prepare_split(inter, "temporal", min_rating=3.0)
    with pytest.raises(ConfigError, match="test_frac"):
        prepare_split(inter, "ratio", test_frac=1.5)


@settings(max_examples=60, deadline=None)
@given(logs, st.floats(0.05, 0.5), st.floats(0.0, 0.3), st.integers(0, 3), st.integers(0, 3))
def test_prepare_temporal_properties(
    rows: list[tuple[str, str, int]], test_frac: float, valid_frac: float, min_u: int, min_i: int
) -> None:
    inter = Interactions.from_frame(frame(rows))
    try:
        split, report = prepare_split(
            inter,
            "temporal",
            test_frac=test_frac,
            valid_frac=valid_frac,
            min_user_interactions=min_u,
            min_item_interactions=min_i,
        )
    except DataError:
        return
    raw = temporal_split(inter, test_frac=test_frac, valid_frac=valid_frac)
    # training is the k-core of the raw training part, with compact vocabularies
    u_counts = np.bincount(split.train.user_idx, minlength=split.train.num_users + 1)[1:]
    i_counts = np.bincount(split.train.item_idx, minlength=split.train.num_items + 1)[1:]
    assert (u_counts >= max(min_u, 1)).all() and (i_counts >= max(min_i, 1)).all()
    assert len(split.train) == len(
        filter_interactions(raw.train, min_user_interactions=min_u, min_item_interactions=min_i)
    )
    # validation/test: exactly the raw events whose user and item survived in training
    for part, raw_part in ((split.valid, raw.valid), (split.test, raw.test)):
        assert part.users is split.train.users and part.items is split.train.items
        expected = [
            (u, i)
            for u, i in zip(raw_part.users.ids(raw_part.user_idx), raw_part.items.ids(raw_part.item_idx), strict=True)
            if u in split.train.users and i in split.train.items
        ]
        assert sorted(zip(part.users.ids(part.user_idx), part.items.ids(part.item_idx), strict=True)) == sorted(
            expected
        )
    for name, part, raw_part in (
        ("train", split.train, raw.train),
        ("valid", split.valid, raw.valid),
        ("test", split.test, raw.test),
    ):
        counts = report.parts[name]
        assert counts.events_before == len(raw_part) and counts.events_after == len(part)
        if name != "train":  # no rating threshold here: every removed event went with a cold user or a new item
            assert counts.cold_user_events + counts.new_item_events == counts.events_removed


@settings(max_examples=40, deadline=None)
@given(logs, st.sampled_from(["leave-one-out", "ratio"]), st.integers(0, 3), st.integers(0, 3))
def test_prepare_per_user_splits_filter_the_whole_log_first(
    rows: list[tuple[str, str, int]], method: str, min_u: int, min_i: int
) -> None:
    # the published convention for per-user splits: k-core on the full log, then the split
    inter = Interactions.from_frame(frame(rows))
    try:
        core = filter_interactions(inter, min_user_interactions=min_u, min_item_interactions=min_i)
    except DataError:
        with pytest.raises(DataError):
            prepare_split(inter, method, min_user_interactions=min_u, min_item_interactions=min_i)
        return
    split, report = prepare_split(
        inter, method, test_frac=0.2, valid_frac=0.1, min_user_interactions=min_u, min_item_interactions=min_i
    )
    expected = leave_one_out(core) if method == "leave-one-out" else ratio_split(core, test_frac=0.2, valid_frac=0.1)
    for part, exp in ((split.train, expected.train), (split.valid, expected.valid), (split.test, expected.test)):
        assert part.users.all_ids == exp.users.all_ids and part.items.all_ids == exp.items.all_ids
        np.testing.assert_array_equal(part.user_idx, exp.user_idx)
        np.testing.assert_array_equal(part.item_idx, exp.item_idx)
    assert report.filtered_on == "log" and list(report.parts) == ["log"]
    assert report.parts["log"].events_before == len(inter) and report.parts["log"].events_after == len(core)
