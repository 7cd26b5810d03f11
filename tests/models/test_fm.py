"""Factorization machine: conformance, the O(kn) sum-square trick against the explicit pairwise sum, and a planted
user-attribute x item-attribute interaction that FM learns and logistic regression cannot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnrec.data.features import ItemFeatures, UserFeatures
from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.evaluation.metrics import auc
from attnrec.models.fm import FactorizationMachine, FMConfig, FMNet
from attnrec.models.logreg import LogisticRegression
from attnrec.registry import create_model
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions


class TestFMConformance(RecommenderConformance):
    def make_model(self) -> FactorizationMachine:
        return FactorizationMachine(embed_dim=8, lr=0.02, epochs=20, batch_size=64, init_std=0.1, weight_decay=1.0)


def opts() -> TrainingOptions:
    return TrainingOptions(seed=0, threads=1, device="cpu")


def crossed(
    num_users: int = 100, num_items: int = 40, seed: int = 0
) -> tuple[Interactions, UserFeatures, ItemFeatures]:
    """Users of side L click kind-x items, side R users kind-y items (p 0.92 vs 0.08); no main effect at all."""
    rng = np.random.default_rng(seed)
    side = {f"u{u}": "LR"[u % 2] for u in range(1, num_users + 1)}
    kind = {f"i{i}": "xy"[i % 2] for i in range(1, num_items + 1)}
    u, i = np.meshgrid(np.arange(1, num_users + 1), np.arange(1, num_items + 1), indexing="ij")
    u, i = u.ravel().astype(np.int64), i.ravel().astype(np.int64)
    match = (u % 2) == (i % 2)
    label = (rng.random(len(u)) < np.where(match, 0.92, 0.08)).astype(np.int8)
    data = Interactions(
        IdVocabulary(list(side), kind="user"), IdVocabulary(list(kind), kind="item"), u, i, None, None, None, label
    ).sorted()
    users = UserFeatures(attributes={k: [f"side={v}"] for k, v in side.items()}, fields=["side"])
    items = ItemFeatures(attributes={k: [f"kind={v}"] for k, v in kind.items()}, fields=["kind"])
    return data, users, items


def test_sum_square_trick_equals_the_explicit_pairwise_sum() -> None:
    """Numeric oracle (Rendle eq. 1): b + sum_f w_f + sum_{f<g} <v_f, v_g> over the four fields of each pair."""
    data, users, items = crossed(num_users=6, num_items=5)
    torch.manual_seed(0)
    tables = items.table(data.items), users.table(data.users)
    net = FMNet(data.num_users, data.num_items, tables[0], tables[1], FMConfig(embed_dim=5, init_std=0.5), 0.3)
    with torch.no_grad():
        for p in net.linear.parameters():
            p.normal_()
    user, item = torch.tensor([1, 4, 6, 0]), torch.tensor([2, 5, 1, 3])
    got = net(user, item)
    w = net.linear(user, item)[..., 0]  # (B, F)
    v = net.factors(user, item)  # (B, F, k)
    assert v.shape == (4, 4, 5)
    pairs = sum((v[:, f] * v[:, g]).sum(-1) for f in range(4) for g in range(f + 1, 4))
    want = net.bias + w.sum(-1) + pairs
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the whole-catalogue path (one matrix product) gives the same logits
    every = net.item_terms(torch.arange(data.num_items + 1))
    torch.testing.assert_close(net.all_items(user, every)[torch.arange(4), item], want, rtol=1e-5, atol=1e-5)


def test_learns_a_crossed_interaction_that_logistic_regression_cannot() -> None:
    """Measured AUC gap on held-out impressions: FM near the planted AUC, LR at chance (no main effects)."""
    data, users, items = crossed()
    held = np.random.default_rng(1).random(len(data)) < 0.25
    train, test = data.subset(~held), data.subset(held)
    assert test.label is not None
    fm = FactorizationMachine(embed_dim=4, lr=0.02, epochs=25, batch_size=128, init_std=0.1)
    fm.set_features(items=items, users=users).fit(train, options=opts())
    lr = LogisticRegression(lr=0.02, epochs=25, batch_size=128)
    lr.set_features(items=items, users=users).fit(train, options=opts())
    fm_auc = auc(test.label, fm.score_pairs(test.user_idx, test.item_idx))
    lr_auc = auc(test.label, lr.score_pairs(test.user_idx, test.item_idx))
    oracle = auc(test.label, (test.user_idx % 2 == test.item_idx % 2).astype(float))
    assert fm_auc > oracle - 0.03, f"fm AUC {fm_auc:.3f} vs planted {oracle:.3f}"
    assert lr_auc < 0.6, f"lr AUC {lr_auc:.3f}: it cannot see a crossed effect"
    assert fm_auc - lr_auc > 0.25


def test_interaction_comes_from_the_attribute_fields() -> None:
    """Without id fields the factors of side=R and kind=y (a clicked pair) agree, those of side=R and kind=x not."""
    data, users, items = crossed()
    fm = FactorizationMachine(embed_dim=4, lr=0.02, epochs=25, batch_size=128, init_std=0.1, id_fields=False)
    fm.set_features(items=items, users=users).fit(data, options=opts())
    net = fm.net_
    assert isinstance(net, FMNet)
    right, y, x = data.users.index("u1"), data.items.index("i1"), data.items.index("i2")
    assert users.attributes["u1"] == ["side=R"] and items.attributes["i1"] == ["kind=y"]
    with torch.no_grad():
        v_r = net.factors.user_side(torch.tensor([right]))[0, 0]
        v_y, v_x = net.factors.item_side(torch.tensor([y, x]))[:, 0]
    assert float(v_r @ v_y) > 1.0 > -1.0 > float(v_r @ v_x)


def test_registered_and_embed_dim_recorded() -> None:
    model = create_model("fm", {"embed_dim": 8})
    assert isinstance(model, FactorizationMachine)
    assert model.task == "ctr" and model.predicts_probabilities
    assert FMConfig().embed_dim == 64
    with pytest.raises(Exception, match="embed_dim"):
        create_model("fm", {"embed_dim": 0})
