"""Cold-start protocols: what is held out, and numbers on tiny planted logs computed by hand."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from attnrec.data.features import ItemFeatures, UserFeatures
from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError
from attnrec.evaluation.cold import (
    cold_item_split,
    cold_user_split,
    evaluate_cold_items,
    evaluate_cold_users,
    ranking_metrics,
)
from attnrec.models.content import ContentRecommender
from attnrec.registry import create_model


def log(rows: list[tuple[str, str]]) -> Interactions:
    frame = pl.DataFrame(
        {"user_id": [u for u, _ in rows], "item_id": [i for _, i in rows], "timestamp": list(range(len(rows)))}
    )
    return Interactions.from_frame(frame)


def genres(ids: list[str]) -> ItemFeatures:
    return ItemFeatures(attributes={i: [f"genre={i[0]}"] for i in ids}, fields=["genre"])


def small_log() -> Interactions:
    # u1: a x b y (history a b; targets x y) / u2: c x (history c; target x) / u3: y only (no history: not a
    # test user) / u4: a d (no held-out item: not a test user). Item order of first appearance: a x b y c d.
    return log(
        [
            *[("u1", "a"), ("u1", "x"), ("u1", "b"), ("u1", "y"), ("u2", "c"), ("u2", "x")],
            ("u3", "y"),
            *[("u4", "a"), ("u4", "d")],
        ]
    )


def test_cold_item_split_holds_out_every_event_of_the_items_and_keeps_them_in_the_catalogue() -> None:
    split = cold_item_split(small_log(), genres(list("abcdxy")), held_out=["x", "y"])
    assert split.train.items.all_ids == ["a", "b", "c", "d", "x", "y"]  # cold items after the interacted ones
    assert split.train.items.ids(split.cold_items).tolist() == ["x", "y"]
    assert not np.isin(split.train.item_idx, split.cold_items).any()
    assert split.held_out_events == 4
    assert split.train.users.ids(split.test_users).tolist() == ["u1", "u2"]
    assert [split.train.items.ids(t).tolist() for t in split.targets] == [["x", "y"], ["x"]]
    assert [split.train.items.ids(h).tolist() for h in split.histories()] == [["a", "b"], ["c"]]


def test_popularity_on_the_cold_item_protocol_matches_a_hand_computation() -> None:
    split = cold_item_split(small_log(), genres(list("abcdxy")), held_out=["x", "y"])
    model = create_model("popularity").fit(split.train)
    out = evaluate_cold_items(model, split, k=3)
    # counts a=2, b=c=d=1, x=y=0 (ties: lower index first)
    # u1 (a, b seen): c d x -> x at rank 3 of targets {x, y}: recall 1/2, ndcg (1/log2 4) / (1 + 1/log2 3)
    # u2 (c seen): a b d -> no hit
    ndcg_u1 = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert out["recall@3"] == pytest.approx((0.5 + 0.0) / 2)
    assert out["ndcg@3"] == pytest.approx((ndcg_u1 + 0.0) / 2)
    assert out["users"] == 2
    assert out["cold_share_of_top"] == pytest.approx(1 / 6)


def test_content_model_finds_held_out_items_of_the_liked_genre() -> None:
    # fans of genre c watch c-items; the held-out c-item must come first for them, popularity cannot find it
    rows = [(f"f{n}", f"c{j}") for n in range(5) for j in range(3)] + [(f"f{n}", "cnew") for n in range(5)]
    rows += [(f"o{n}", f"d{j}") for n in range(8) for j in range(4)]
    inter = log(rows)
    features = genres(["c0", "c1", "c2", "cnew", "d0", "d1", "d2", "d3"])
    split = cold_item_split(inter, features, held_out=["cnew"])
    content = ContentRecommender(item_features=features).fit(split.train)
    assert evaluate_cold_items(content, split, k=1)["recall@1"] == pytest.approx(1.0)
    assert evaluate_cold_items(create_model("popularity").fit(split.train), split, k=1)["recall@1"] == 0.0


def test_seeded_hold_out_is_ten_percent_and_reproducible() -> None:
    rows = [(f"u{n}", f"i{(n * 7 + j) % 50}") for n in range(40) for j in range(10)]
    inter = log(rows)
    features = genres([f"i{j}" for j in range(50)])
    one = cold_item_split(inter, features, seed=3)
    assert len(one.cold_items) == 5 and len(one.train.items) == 50
    again = cold_item_split(inter, features, seed=3)
    other = cold_item_split(inter, features, seed=4)
    names = one.train.items.ids(one.cold_items).tolist()
    assert names == again.train.items.ids(again.cold_items).tolist()
    assert names != other.train.items.ids(other.cold_items).tolist()
    with pytest.raises(ConfigError, match="frac"):
        cold_item_split(inter, features, frac=1.5)
    with pytest.raises(ConfigError, match="held_out"):
        cold_item_split(inter, features, held_out=["nope"])


def test_cold_user_protocol_matches_a_hand_computation() -> None:
    # 21 women watch A then C, 22 men watch B then C; held out: a woman who watched A, a man who watched B and Z
    # (Z is watched by nobody else: unreachable). Item order: A C B Z.
    rows = [(f"w{n}", i) for n in range(21) for i in ("A", "C")] + [(f"m{n}", i) for n in range(22) for i in "BC"]
    rows += [("w-held", "A"), ("m-held", "B"), ("m-held", "Z")]
    inter = log(rows)
    attributes = {f"w{n}": ["gender=F", f"zip={n}"] for n in range(21)}
    attributes |= {f"m{n}": ["gender=M", f"zip={100 + n}"] for n in range(22)}
    attributes |= {"w-held": ["gender=F", "zip=999"], "m-held": ["gender=M", "zip=998"]}
    users = UserFeatures(attributes=attributes, fields=["gender", "zip"])
    split = cold_user_split(inter, users.ids, held_out=["w-held", "m-held"])
    assert split.test_user_ids == ["w-held", "m-held"] and split.unreachable == 1
    model = create_model("itemknn").set_features(users=users).fit(split.train)
    out = evaluate_cold_users(model, split, k=2)
    # popularity: C (43) B (22) for both -> w-held misses A; m-held finds B at rank 2
    assert out["popularity"]["recall@2"] == pytest.approx(0.5)
    assert out["popularity"]["ndcg@2"] == pytest.approx((1 / math.log2(3)) / 2)
    assert out["popularity"]["answered_by_demographic"] == 0.0
    # demographic: women A=C=1/2 (tie: A has the lower index) -> A first; men B=C=1/2 -> C, B
    assert out["demographic"]["recall@2"] == pytest.approx(1.0)
    assert out["demographic"]["ndcg@2"] == pytest.approx((1.0 + 1 / math.log2(3)) / 2)
    assert out["demographic"]["answered_by_demographic"] == 1.0


def test_ranking_metrics_recall_over_all_targets_and_ideal_dcg_capped_at_k() -> None:
    scores = np.array([[-np.inf, 5.0, 4.0, 3.0, 2.0]])
    out = ranking_metrics(scores, [np.array([2, 3, 4])], k=2)
    assert out["recall@2"][0] == pytest.approx(1 / 3)  # one of three targets in the top 2 (item 2 at rank 2)
    assert out["ndcg@2"][0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
