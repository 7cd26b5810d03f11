"""DIN: conformance, click prediction from the history item that decides the click, its attention and explanation."""

from __future__ import annotations

import numpy as np
import pytest

from attnrec.data.features import ItemFeatures
from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.evaluation.ctr import evaluate_ctr
from attnrec.explain.methods import default_method, explain
from attnrec.models.din import DIN
from attnrec.registry import create_model
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions

TINY = {"embed_dim": 8, "attention_hidden": (16,), "hidden": (32, 16), "epochs": 30, "batch_size": 64, "lr": 3e-3}


def opts() -> TrainingOptions:
    return TrainingOptions(seed=0, threads=1, device="cpu")


class TestDIN(RecommenderConformance):
    def make_model(self) -> DIN:
        return DIN(TINY)


class TestDINSoftmaxPReLU(RecommenderConformance):
    planted_block = False  # the variant only needs the contract; the planted checks run on the default above

    def make_model(self) -> DIN:
        return DIN(TINY, attention_softmax=True, activation="prelu", epochs=5)


KEYS = 20
"""Items 1..KEYS are "key" items; item KEYS + j is a candidate clicked exactly by users who had key j."""


def planted(num_users: int = 600, seed: int = 0) -> Interactions:
    """Each user clicked 4 random key items (times 0..3); then, at time 10, saw 4 candidates: the 2 partners of
    keys of its history (label 1) and 2 partners of other keys (label 0). Only the partner key decides a click."""
    rng = np.random.default_rng(seed)
    users_v = IdVocabulary.from_ids([f"u{u}" for u in range(1, num_users + 1)], kind="user")
    items_v = IdVocabulary.from_ids([str(i) for i in range(1, 2 * KEYS + 1)], kind="item")
    u_, i_, t_, y_ = [], [], [], []
    for u in range(1, num_users + 1):
        keys = rng.choice(np.arange(1, KEYS + 1), size=4, replace=False)
        others = rng.choice(np.setdiff1d(np.arange(1, KEYS + 1), keys), size=2, replace=False)
        for t, k in enumerate(keys.tolist()):
            u_.append(u), i_.append(k), t_.append(t), y_.append(1)
        for k in keys[:2].tolist():
            u_.append(u), i_.append(KEYS + k), t_.append(10), y_.append(1)
        for k in others.tolist():
            u_.append(u), i_.append(KEYS + k), t_.append(10), y_.append(0)
    n = len(u_)
    return Interactions(
        users_v,
        items_v,
        np.asarray(u_, dtype=np.int64),
        np.asarray(i_, dtype=np.int64),
        np.asarray(t_, dtype=np.int64),
        None,
        np.arange(n, dtype=np.int64),
        np.asarray(y_, dtype=np.int8),
    ).sorted()


@pytest.fixture(scope="module")
def fitted_planted() -> tuple[DIN, Interactions, Interactions]:
    data = planted()
    test_users = data.user_idx > 500
    train, test = data.subset(~test_users), data.subset(test_users)
    model = DIN(TINY, epochs=40, max_seq_len=10).fit(train, options=opts())
    return model, train, test


def test_registered_as_a_click_model() -> None:
    model = create_model("din")
    assert isinstance(model, DIN)
    assert model.task == "ctr" and model.predicts_probabilities


def test_predicts_clicks_from_the_deciding_history_item(fitted_planted: tuple[DIN, Interactions, Interactions]) -> None:
    """Held-out users (history: their key clicks, which came first): the click depends only on whether the
    candidate's partner key is in the history; a model that ignored the history would sit at AUC 0.5 (every
    candidate is positive for some users and negative for others)."""
    model, _, test = fitted_planted
    candidates = test.subset(test.item_idx > KEYS)
    result = evaluate_ctr(model, candidates, history=test.subset(test.item_idx <= KEYS), n_boot=0)
    assert result.summary["auc"] > 0.9, result.summary
    assert result.summary["logloss"] < 0.5, result.summary


def test_attention_goes_to_the_partner_key(fitted_planted: tuple[DIN, Interactions, Interactions]) -> None:
    model, _, test = fitted_planted
    hits = total = 0
    for u in np.unique(test.user_idx).tolist():
        events = test.subset(test.user_idx == u)
        history = events.item_idx[(events.item_idx <= KEYS) & (events.label == 1)]
        weights = model.target_attention(history, KEYS + history)  # (4 candidates, 4 history keys)
        hits += int(np.sum(np.argmax(weights, axis=1) == np.arange(len(history))))
        total += len(history)
    assert hits / total > 0.9, f"the partner key got the largest activation weight in {hits}/{total} cases"


def test_explanation_names_the_partner_key(fitted_planted: tuple[DIN, Interactions, Interactions]) -> None:
    """Both the default method (occlusion-search: faithful on real data, docs/explanations.md) and the activation
    weights name the key that decides the click first."""
    model, _, _ = fitted_planted
    assert default_method(model) == "occlusion-search"
    history = np.asarray([3, 7, 12, 18], dtype=np.int64)
    for method in (None, "target-attention"):
        got = explain(model, history, np.asarray([KEYS + 7, KEYS + 18]), top=2, method=method)
        assert [e.attributions[0].index for e in got] == [7, 18], method
        assert all(e.attributions[0].kind == "history_item" for e in got)


def test_item_features_reach_the_candidate_embedding() -> None:
    """Cold items (no event) are scored from their features: a genre that is always clicked lifts a cold item of
    that genre above a cold item of a never-clicked genre."""
    users_v = IdVocabulary.from_ids([f"u{u}" for u in range(1, 61)], kind="user")
    items_v = IdVocabulary.from_ids([f"i{i}" for i in range(1, 23)], kind="item")
    genre = {f"i{i}": ["genre=good" if i % 2 else "genre=bad"] for i in range(1, 23)}
    features = ItemFeatures(attributes=genre, fields=["genre"], kinds={"genre": "categorical"})
    rng = np.random.default_rng(1)
    u_, i_, y_ = [], [], []
    for u in range(1, 61):
        for i in rng.choice(np.arange(1, 21), size=8, replace=False).tolist():
            u_.append(u), i_.append(i), y_.append(i % 2)
    data = Interactions(
        users_v, items_v, np.asarray(u_), np.asarray(i_), None, None, np.arange(len(u_)), np.asarray(y_, np.int8)
    ).sorted()
    model = DIN(TINY).set_features(items=features).fit(data, options=opts())
    probs = model.score_pairs(np.asarray([1, 1]), np.asarray([21, 22]))  # i21 good, i22 bad, both cold
    assert probs[0] > probs[1] + 0.2, probs


def test_score_pairs_matches_score_rows(fitted_planted: tuple[DIN, Interactions, Interactions]) -> None:
    model, _, _ = fitted_planted
    users = np.asarray([1, 2, 3], dtype=np.int64)
    rows, _ = model.scores_with_fallback(users, [model.history(int(u)) for u in users])
    items = np.asarray([KEYS + 1, KEYS + 5, 2], dtype=np.int64)
    pairs = model.score_pairs(users, items)
    np.testing.assert_allclose(pairs, rows[np.arange(3), items], rtol=1e-5, atol=1e-6)


def test_occlusion_scores_only_the_candidates(
    fitted_planted: tuple[DIN, Interactions, Interactions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The occlusion methods score each shortened history against the explained items alone
    (``score_candidates``), never a catalogue row per history, and find the partner key: removing it is what
    lowers the candidate's click probability."""
    model, _, _ = fitted_planted

    def no_catalogue(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("occlusion scored the whole catalogue")

    monkeypatch.setattr(model, "score_indices", no_catalogue)
    history = np.asarray([3, 7, 12, 18], dtype=np.int64)
    for method in ("occlusion", "occlusion-search"):
        got = explain(model, history, np.asarray([KEYS + 7, KEYS + 18]), top=1, method=method)
        assert [e.attributions[0].index for e in got] == [7, 18], method


def test_table_gather_equals_per_slot_embedding() -> None:
    """A training batch embeds the whole item table once and gathers its rows (:meth:`DINNet.embed_many`): the
    vectors, the logits and every gradient equal those of embedding each history slot on its own."""
    import torch

    from attnrec.models._ctr import encode_features
    from attnrec.models.din import DINNet

    num_items = 30
    users_v = IdVocabulary.from_ids([f"u{u}" for u in range(1, 9)], kind="user")
    items_v = IdVocabulary.from_ids([f"i{i}" for i in range(1, num_items + 1)], kind="item")
    genres = {f"i{i}": [f"genre=g{i % 3}", f"genre=g{i % 5 + 3}"] for i in range(1, num_items + 1)}
    features = ItemFeatures(attributes=genres, fields=["genre"], kinds={"genre": "multi"})
    data = Interactions(users_v, items_v, np.arange(1, 9), np.arange(1, 9), None, None, np.arange(8), None).sorted()
    items_table, _ = encode_features(DIN(TINY).set_features(items=features), data)
    assert items_table is not None

    gen = torch.Generator().manual_seed(0)
    history = torch.randint(0, num_items + 1, (6, 12), generator=gen)  # 72 slots > 31 rows: the table path
    candidates = torch.randint(1, num_items + 1, (6, 2), generator=gen)
    user = torch.arange(1, 7)
    grads = []
    outputs = []
    for table_path in (True, False):
        torch.manual_seed(1)
        net = DINNet(8, num_items, items_table, None, DIN(TINY).config)
        assert net.item_fields is not None
        if not table_path:
            net.embed_many = lambda *idx, n=net: tuple(n.embed_items(i) for i in idx)  # type: ignore[method-assign]
        logits, weights = net(user, history, candidates)
        (logits.square().sum() + weights.sum()).backward()
        outputs.append(logits.detach())
        grads.append({n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None})
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)
    assert grads[0].keys() == grads[1].keys() and "item_fields.embedding.weight" in grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6, msg=name)
