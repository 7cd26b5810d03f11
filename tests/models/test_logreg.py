"""Logistic regression: conformance, the score formula, planted per-field effects recovered, cold items by features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnrec.data.features import ItemFeatures, UserFeatures
from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.errors import ConfigError
from attnrec.evaluation.metrics import auc
from attnrec.models.logreg import LogisticRegression, LogRegNet
from attnrec.registry import create_model
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions

GENRE_EFFECT = {"A": 2.0, "B": 0.5, "C": -0.5, "D": -2.0}
GROUP_EFFECT = {"g0": -0.75, "g1": 0.75}


class TestLogRegConformance(RecommenderConformance):
    planted_block = False  # no user x item interaction: every user gets the same item order

    def make_model(self) -> LogisticRegression:
        return LogisticRegression(epochs=10, batch_size=512)


def opts() -> TrainingOptions:
    return TrainingOptions(seed=0, threads=1, device="cpu")


def planted(num_users: int = 80, num_items: int = 48, seed: int = 0) -> tuple[Interactions, UserFeatures, ItemFeatures]:
    """Every user sees every item once; p(click) = sigmoid(group effect + genre effect) (no id effect)."""
    rng = np.random.default_rng(seed)
    genres = list(GENRE_EFFECT)
    item_genre = {f"i{i}": genres[i % 4] for i in range(1, num_items + 1)}
    user_group = {f"u{u}": f"g{u % 2}" for u in range(1, num_users + 1)}
    u, i = np.meshgrid(np.arange(1, num_users + 1), np.arange(1, num_items + 1), indexing="ij")
    u, i = u.ravel().astype(np.int64), i.ravel().astype(np.int64)
    logit = np.asarray(
        [GROUP_EFFECT[user_group[f"u{a}"]] + GENRE_EFFECT[item_genre[f"i{b}"]] for a, b in zip(u, i, strict=True)]
    )
    label = (rng.random(len(u)) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    data = Interactions(
        IdVocabulary(list(user_group), kind="user"),
        IdVocabulary(list(item_genre), kind="item"),
        u,
        i,
        None,
        None,
        None,
        label,
    ).sorted()
    users = UserFeatures(attributes={k: [f"group={v}"] for k, v in user_group.items()}, fields=["group"])
    item_genre |= {"cold-A": "A", "cold-D": "D"}  # items with features and no impression
    items = ItemFeatures(attributes={k: [f"genre={v}"] for k, v in item_genre.items()}, fields=["genre"])
    return data, users, items


def test_score_is_the_sigmoid_of_bias_plus_field_weights() -> None:
    """Numeric oracle: p = sigmoid(b + w_user[u] + w_item[i] + w_group[u] + w_genre[i])."""
    data, users, items = planted(num_users=6, num_items=8)
    model = LogisticRegression(epochs=2).set_features(items=items, users=users).fit(data, options=opts())
    net = model.net_
    assert isinstance(net, LogRegNet)
    lin = net.linear
    assert lin.names == ["user.id", "user.group", "item.id", "item.genre"]
    u, i = 3, 5
    assert lin.user_id is not None and lin.item_id is not None and lin.user_bag and lin.item_bag
    want = (
        net.bias
        + lin.user_id.weight[u, 0]
        + lin.item_id.weight[i, 0]
        + lin.user_bag.embedding.weight[int(lin.user_bag.gids[u, 0]), 0]
        + lin.item_bag.embedding.weight[int(lin.item_bag.gids[i, 0]), 0]
    )
    got = model.score_pairs(np.array([u]), np.array([i]))[0]
    assert got == pytest.approx(float(torch.sigmoid(want.detach())), rel=1e-6)


def test_recovers_planted_field_effects_and_ranks_cold_items_by_features() -> None:
    data, users, items = planted()
    data = data.extend_items(["cold-A", "cold-D"])
    model = LogisticRegression(id_fields=False, weight_decay=0.0, epochs=40, batch_size=128, lr=0.05)
    model.set_features(items=items, users=users).fit(data, options=opts())
    net = model.net_
    assert isinstance(net, LogRegNet)
    # the items i1..i4 have the four genres and u1, u2 the two groups: logit differences recover the planted ones
    by_genre = {items.attributes[f"i{k}"][0].split("=")[1]: data.items.index(f"i{k}") for k in range(1, 5)}
    p = model.score_pairs(np.ones(4, dtype=np.int64), np.array([by_genre[g] for g in GENRE_EFFECT]))
    logits = np.log(p / (1 - p))
    planted_diff = np.diff(list(GENRE_EFFECT.values()))
    np.testing.assert_allclose(np.diff(logits), planted_diff, atol=0.35)
    p0, p1 = model.score_pairs(data.users.indices(["u2", "u1"]), np.array([1, 1]))  # groups g0, g1
    gap = np.log(p1 / (1 - p1)) - np.log(p0 / (1 - p0))
    assert gap == pytest.approx(GROUP_EFFECT["g1"] - GROUP_EFFECT["g0"], abs=0.3)
    # cold items are scored by their genre alone
    cold_a, cold_d = data.items.index("cold-A"), data.items.index("cold-D")
    pa, pd = model.score_pairs(np.array([1, 1]), np.array([cold_a, cold_d]))
    want = 1.0 / (1.0 + np.exp(-(GROUP_EFFECT["g1"] + np.array([GENRE_EFFECT["A"], GENRE_EFFECT["D"]]))))
    np.testing.assert_allclose([pa, pd], want, atol=0.08)  # u1 is in group g1


def test_id_weights_alone_rank_like_item_popularity_but_miss_cold_items() -> None:
    """Without features a cold item has only the global bias: ranked below the items that were clicked most."""
    data, _, _ = planted()
    data = data.extend_items(["cold-A"])
    model = LogisticRegression(epochs=20).fit(data, options=opts())
    assert data.label is not None
    rate = np.bincount(data.item_idx, weights=data.label, minlength=data.num_items + 1)[1:-1] / 80
    scores = model.score_pairs(np.ones(data.num_items - 1, dtype=np.int64), np.arange(1, data.num_items))
    assert auc(rate > np.median(rate), scores) > 0.95
    cold = model.score_pairs(np.array([1]), np.array([data.num_items]))[0]
    assert np.sort(scores)[-5] > cold


def test_held_out_auc_near_the_oracle() -> None:
    data, users, items = planted(num_users=120)
    rng = np.random.default_rng(1)
    held = rng.random(len(data)) < 0.2
    train, test = data.subset(~held), data.subset(held)
    model = LogisticRegression(epochs=30).set_features(items=items, users=users).fit(train, options=opts())
    assert test.label is not None
    group = np.asarray([GROUP_EFFECT[users.attributes[data.users.id(int(u))][0][6:]] for u in test.user_idx])
    genre = np.asarray([GENRE_EFFECT[items.attributes[data.items.id(int(i))][0][6:]] for i in test.item_idx])
    oracle = auc(test.label, group + genre)
    got = auc(test.label, model.score_pairs(test.user_idx, test.item_idx))
    assert got > oracle - 0.03, f"lr AUC {got:.3f} vs the planted model's {oracle:.3f}"


def test_registered_with_task_ctr_and_probabilities() -> None:
    model = create_model("lr")
    assert isinstance(model, LogisticRegression)
    assert model.task == "ctr" and model.predicts_probabilities and not model.uses_history


def test_no_field_at_all_is_a_one_line_config_error() -> None:
    data, _, _ = planted(num_users=4, num_items=4)
    with pytest.raises(ConfigError, match="needs at least one field: set id_fields=true"):
        LogisticRegression(id_fields=False).fit(data, options=opts())
