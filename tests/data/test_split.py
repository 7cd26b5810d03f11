"""Splits and filters: hand-checked examples and Hypothesis properties."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnrec.data import Interactions, filter_interactions, leave_one_out, ratio_split, temporal_split
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
