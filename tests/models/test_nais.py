"""NAIS: conformance, the score formula, the target left out of its own history, attention on the planted item."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.explain.methods import explain, methods_for
from attnrec.models.nais import NAIS, NAISConfig, NAISNet
from attnrec.registry import create_model
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions

TINY = {"embed_dim": 16, "attention_dim": 16, "epochs": 20, "batch_size": 256, "lr": 1e-2, "patience": 0}


def opts() -> TrainingOptions:
    return TrainingOptions(seed=0, threads=1, device="cpu")


class TestNAIS(RecommenderConformance):
    def make_model(self) -> NAIS:
        return NAIS(TINY)


class TestNAISConcat(RecommenderConformance):
    def make_model(self) -> NAIS:
        return NAIS(TINY, attention="concat")


def paired(num_users: int = 120, num_pairs: int = 10, per_user: int = 3, seed: int = 0) -> Interactions:
    """Items come in pairs (2k - 1, 2k): a user who has one item of a pair always has the other."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(1, num_users + 1):
        for k in rng.choice(num_pairs, size=per_user, replace=False):
            for i in (2 * k + 1, 2 * k + 2):
                users.append(u)
                items.append(i)
    n = 2 * num_pairs
    return Interactions(
        IdVocabulary([f"u{u}" for u in range(1, num_users + 1)], kind="user"),
        IdVocabulary([f"i{i}" for i in range(1, n + 1)], kind="item"),
        np.asarray(users, dtype=np.int64),
        np.asarray(items, dtype=np.int64),
        None,
        None,
        None,
        None,
    ).sorted()


def test_score_is_the_smoothed_attention_sum_of_similarities() -> None:
    """Numeric oracle: y_ui = b_i + sum_{j != i} exp(f_ij) / (sum_{j' != i} exp(f_ij'))^beta * p_j . q_i."""
    torch.manual_seed(0)
    cfg = NAISConfig(embed_dim=6, attention_dim=4, beta=0.5, init_std=0.5)
    net = NAISNet(9, cfg).eval()
    with torch.no_grad():
        net.bias.weight.normal_()
    history = torch.tensor([[3, 5, 7, 0]])
    targets = torch.tensor([[5, 8]])
    with torch.no_grad():
        scores, weights = net(history, targets)
    p, q, b = net.p.weight.detach(), net.q.weight.detach(), net.bias.weight[:, 0].detach()
    for t, i in enumerate([5, 8]):
        js = [j for j in (3, 5, 7) if j != i]  # the target is left out of its own history
        with torch.no_grad():
            f = torch.stack([net.h(torch.relu(net.w(p[j] * q[i]))).squeeze() for j in js])
        a = torch.exp(f) / torch.exp(f).sum() ** 0.5
        expected = b[i] + sum(a[n] * (p[j] @ q[i]) for n, j in enumerate(js))
        assert torch.allclose(scores[0, t], expected, atol=1e-5)
        assert float(weights[0, t, 1 if i == 5 else 3]) == 0.0  # own occurrence / padding weigh nothing
    assert float(weights[0, 0, 1]) == 0.0 and float(weights[0, 1, 3]) == 0.0


def test_beta_one_is_a_softmax_over_the_other_items() -> None:
    torch.manual_seed(0)
    net = NAISNet(9, NAISConfig(embed_dim=4, attention_dim=4, beta=1.0, init_std=0.5)).eval()
    _, weights = net(torch.tensor([[1, 2, 3, 4]]), torch.tensor([[2, 9]]))
    assert torch.allclose(weights.sum(-1), torch.ones(1, 2), atol=1e-6)


def test_attention_of_an_item_concentrates_on_its_planted_partner() -> None:
    data = paired()
    model = NAIS(TINY, epochs=30).fit(data, options=opts())
    idx = data.items.indices
    # history: one item of four different pairs; each partner must be explained by its own pair's item
    history = idx(["i1", "i5", "i9", "i13"])
    partners = idx(["i2", "i6", "i10", "i14"])
    weights = model.target_attention(history, partners)
    assert weights.shape == (4, 4)
    assert np.argmax(weights, axis=1).tolist() == [0, 1, 2, 3], weights.round(3)
    recs = model.recommend_indices(np.zeros(1, dtype=np.int64), [history], k=4)
    assert set(recs.item_idx[0].tolist()) == set(partners.tolist())
    for method in ("target-attention", "contribution"):
        explanations = explain(model, history, partners, top=1, method=method)
        assert [e.method for e in explanations] == [method] * 4
        assert [e.attributions[0].index for e in explanations] == history.tolist()
    assert explain(model, history, partners[:1])[0].method == "contribution"  # the default
    assert methods_for(model)[0] == "contribution"


def test_contributions_are_the_terms_of_the_score() -> None:
    data = paired(num_users=60)
    model = NAIS(TINY, epochs=3).fit(data, options=opts())
    history = np.asarray([1, 3, 5, 7, 3], dtype=np.int64)  # item 3 twice
    items = np.asarray([2, 3, 8], dtype=np.int64)
    terms = model.target_contributions(history, items)
    assert terms.shape == (3, 5)
    assert (terms[1, [1, 4]] == 0).all()  # an item's own occurrences carry no term
    net = model.net_
    assert net is not None
    bias = net.bias.weight.detach()[items, 0].numpy()
    scores = model.score_indices(np.zeros(1, dtype=np.int64), [history])[0, items]
    np.testing.assert_allclose(bias + terms.sum(axis=1), scores, rtol=1e-4, atol=1e-5)
    attention = model.target_attention(history, items)
    assert not np.allclose(terms, attention)  # the terms weigh the attention by the similarities p_j . q_i


def test_fism_pretraining_epochs_train_and_are_recorded() -> None:
    data = paired(num_users=60)
    model = create_model("nais", {**TINY, "epochs": 4, "pretrain_epochs": 2}).fit(data, options=opts())
    assert len(model.history_) == 4
    assert model.config.pretrain_epochs == 2  # type: ignore[attr-defined]


def test_only_the_last_max_history_items_are_read() -> None:
    data = paired(num_users=60)
    model = NAIS(TINY, epochs=2, max_history=2).fit(data, options=opts())
    long = np.asarray([1, 3, 5, 7], dtype=np.int64)
    np.testing.assert_allclose(
        model.score_indices(np.zeros(1, dtype=np.int64), [long]),
        model.score_indices(np.zeros(1, dtype=np.int64), [long[-2:]]),
    )
    assert model.target_attention(long, np.asarray([2])).shape == (1, 2)


@pytest.mark.parametrize("bad", [{"beta": 0.0}, {"beta": 1.5}, {"attention": "sum"}, {"num_negatives": 0}])
def test_invalid_config_is_a_one_line_error(bad: dict[str, object]) -> None:
    from attnrec.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        NAIS(bad)
    assert "\n" not in str(info.value) and next(iter(bad)) in str(info.value)


def test_batch_shapes_come_from_few_sizes_and_the_padding_adds_no_loss() -> None:
    """Rows, history length and target width are rounded up to training.sequences.shape_bucket sizes (a bounded
    set of kernel shapes); the zero padding changes neither the loss nor its gradient."""
    from attnrec.training.sequences import shape_bucket

    model = NAIS(TINY).fit(paired(), options=opts())
    net = model.net_
    assert net is not None
    rng = np.random.default_rng(0)
    hists = [np.arange(1, n + 1, dtype=np.int64) for n in (3, 7, 13)]
    batch = model._batch(hists, model.num_items, rng, fism=False)
    rows, length = batch["history"].shape
    assert (rows, length) == (shape_bucket(3), shape_bucket(13)) == (3, 13)
    hists = ([np.arange(1, n + 1, dtype=np.int64) % 19 + 1 for n in (5, 17, 18, 19, 33)] * 4)[:17]
    batch = model._batch(hists, model.num_items, np.random.default_rng(1), fism=False)
    rows, length = batch["history"].shape
    width = batch["targets"].shape[1]
    assert rows == shape_bucket(17) == 20 and length == shape_bucket(33) == 40
    assert not batch["history"][17:].any() and not batch["targets"][17:].any()
    assert width == shape_bucket(min(33, NAISConfig(**TINY).max_targets) * 5) == 192
    assert not batch["history"][:, 33:].any() and not batch["targets"][:, 165:].any()

    def loss_and_grad(b: dict[str, torch.Tensor]) -> tuple[float, torch.Tensor]:
        net.zero_grad()
        scores, _ = net(b["history"], b["targets"])
        real = b["targets"] > 0
        loss = torch.nn.functional.binary_cross_entropy_with_logits(scores[real], b["labels"][real])
        loss.backward()
        return float(loss), net.p.weight.grad.clone()  # type: ignore[union-attr]

    trimmed = {
        "history": batch["history"][:17, :33],
        "targets": batch["targets"][:17, :165],
        "labels": batch["labels"][:17, :165],
    }
    padded_loss, padded_grad = loss_and_grad(batch)
    trimmed_loss, trimmed_grad = loss_and_grad(trimmed)
    assert padded_loss == pytest.approx(trimmed_loss, rel=1e-5)
    torch.testing.assert_close(padded_grad, trimmed_grad, rtol=1e-4, atol=1e-7)
