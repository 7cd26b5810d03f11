"""Models that cannot learn from the training data say why in one line (DataError), before assigning any state."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from attnrec.base import Recommender
from attnrec.data import leave_one_out
from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError, DataError
from attnrec.registry import create_model

FAST = {"sasrec": {"epochs": 1}, "mf": {"epochs": 1}, "bpr": {"iterations": 2}, "als": {"iterations": 2}}


def log(rows: list[tuple[str, str]], ratings: list[float] | None = None) -> Interactions:
    frame = {"user_id": [u for u, _ in rows], "item_id": [i for _, i in rows], "timestamp": list(range(len(rows)))}
    if ratings is not None:
        frame["rating"] = ratings  # type: ignore[assignment]
    return Interactions.from_frame(pl.DataFrame(frame))


def assert_refused(model: Recommender, train: Interactions, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        model.fit(train)
    assert "\n" not in str(info.value)
    assert model.items_ is None and model.users_ is None and model.popularity_ is None  # nothing assigned


def test_sasrec_readme_log_has_no_training_pair() -> None:
    # the README's three-row log: after leave-one-out, alice and bob have one training event each
    split = leave_one_out(log([("alice", "matrix"), ("alice", "inception"), ("bob", "matrix")]))
    assert_refused(
        create_model("sasrec", FAST["sasrec"]),
        split.train,
        r"^sasrec needs at least one user with 2 or more training events to learn next-item transitions; "
        r"the training split has 2 users with at most 1 event each$",
    )


def test_sasrec_trains_once_one_user_has_two_events() -> None:
    model = create_model("sasrec", {**FAST["sasrec"], "embed_dim": 8, "num_heads": 1})
    model.fit(log([("alice", "matrix"), ("alice", "inception"), ("bob", "matrix")]))
    assert model.items_ is not None


@pytest.mark.parametrize("name", ["sasrec", "mf", "bpr", "als"])
def test_empty_training_split(name: str) -> None:
    empty = log([("alice", "matrix")], [4.0]).subset(np.zeros(1, dtype=bool))
    assert_refused(create_model(name, FAST[name]), empty, rf"^{name} needs .*; the training split is empty$")


def test_mf_refuses_missing_ratings_before_assigning_state() -> None:
    model = create_model("mf", FAST["mf"])
    with pytest.raises(ConfigError, match="no 'rating' column"):
        model.fit(log([("a", "x"), ("b", "y")]))
    assert model.items_ is None
    train = log([("a", "x"), ("b", "y"), ("b", "x")], [4.0, float("nan"), 3.0])
    assert_refused(model, train, r"the training split has 1 missing or non-finite rating out of 3$")


def test_bpr_needs_a_negative_item() -> None:
    every_item = log([("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")])
    assert_refused(
        create_model("bpr", FAST["bpr"]),
        every_item,
        r"every one of the 2 training users has interacted with all 2 items$",
    )
    create_model("bpr", FAST["bpr"]).fit(log([("a", "x"), ("a", "y"), ("b", "x")]))  # b has a negative: fine
