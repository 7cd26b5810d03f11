"""NARM: conformance, causality of the training states, attention weights, planted next item, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from attnrec.base import Recommender
from attnrec.data.synthetic import planted_sequences
from attnrec.errors import ConfigError
from attnrec.models import narm as narm_module
from attnrec.models.narm import NARM, NARMConfig, NARMNet
from attnrec.registry import create_model
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions

TINY = {
    "embed_dim": 16,
    "max_seq_len": 12,
    "dropout": 0.0,
    "output_dropout": 0.0,
    "batch_size": 16,
    "lr": 1e-2,
    "epochs": 25,
    "patience": 0,
    # in planted walks the other items of a window are exactly the wrong next items: keep them as negatives
    "exclude_window_items": False,
}


def opts(**kw: object) -> TrainingOptions:
    return TrainingOptions(**{"seed": 0, "threads": 1, "device": "cpu", **kw})  # type: ignore[arg-type]


class TestNARM(RecommenderConformance):
    sequential = True
    planted_block = True

    def make_model(self) -> NARM:
        # dropout keeps the model from memorising exact orders on the checkerboard data
        return NARM(TINY, epochs=20, batch_size=8, dropout=0.4, output_dropout=0.5)


def net(**kw: object) -> NARMNet:
    torch.manual_seed(0)
    return NARMNet(20, NARMConfig(**{**TINY, **kw})).eval()


KINDS = [(rnn, att) for rnn in ("gru", "lstm") for att in ("additive", "dot")]


@pytest.mark.parametrize(("rnn", "attention"), KINDS)
def test_training_state_t_does_not_depend_on_later_items(rnn: str, attention: str) -> None:
    module = net(rnn=rnn, attention=attention, num_layers=2)
    a = torch.tensor([[3, 4, 5, 6, 7]])
    b = torch.tensor([[3, 4, 5, 9, 1]])
    ha, hb = module(a), module(b)
    assert ha.shape == (1, 5, 16)
    torch.testing.assert_close(ha[:, :3], hb[:, :3])
    assert not torch.allclose(ha[:, 3:], hb[:, 3:])  # the check can fail: later states do change


@pytest.mark.parametrize(("rnn", "attention"), KINDS)
def test_last_equals_the_training_state_and_ignores_padding(rnn: str, attention: str) -> None:
    module = net(rnn=rnn, attention=attention)
    x = torch.tensor([[7, 0, 0, 0, 0], [3, 4, 5, 0, 0], [1, 2, 3, 4, 5], [9, 8, 0, 0, 0]])
    full = module(x)[torch.arange(4), (x > 0).sum(1) - 1]
    torch.testing.assert_close(module.last(x), full)
    torch.testing.assert_close(module.last(x[1:2, :3]), full[1:2])  # no padding at all: the same state


def test_additive_chunks_give_the_unchunked_states_and_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.tensor([[3, 4, 5, 6, 7, 8, 2], [1, 2, 3, 0, 0, 0, 0]])

    def run() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        module = net(attention="additive").train()
        out = module(x)
        (out**2).sum().backward()
        return out.detach(), {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}

    whole, grads_whole = run()
    monkeypatch.setattr(narm_module, "ADDITIVE_CHUNK_ELEMENTS", 2 * 7 * 16 * 2)  # chunks of 2 query positions
    chunked, grads_chunked = run()
    torch.testing.assert_close(chunked, whole)
    for k in grads_whole:
        torch.testing.assert_close(grads_chunked[k], grads_whole[k], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def planted() -> tuple[NARM, object]:
    data = planted_sequences(80, 30, length=8, seed=1)
    return NARM(TINY).fit(data, options=opts()), data


@pytest.mark.parametrize(("rnn", "attention"), [("gru", "dot"), ("lstm", "additive")])
def test_both_scorings_and_both_cells_learn_the_planted_next_item(rnn: str, attention: str) -> None:
    data = planted_sequences(80, 30, length=8, seed=1)
    model = NARM(TINY, rnn=rnn, attention=attention).fit(data, options=opts())
    losses = [row["loss"] for row in model.history_]
    assert losses[-1] < 0.5 * losses[0], losses
    hists = [np.arange(max(1, i - 3), i + 1, dtype=np.int64) for i in range(1, 29)]
    recs = model.recommend_indices(np.zeros(len(hists), dtype=np.int64), hists, k=1)
    assert float(np.mean(recs.item_idx[:, 0] == np.arange(2, 30))) >= 0.9


def test_planted_additive_gru_and_new_events_change_results(planted: tuple[NARM, object]) -> None:
    model, _ = planted
    hists = [np.arange(max(1, i - 3), i + 1, dtype=np.int64) for i in range(1, 29)]
    recs = model.recommend_indices(np.zeros(len(hists), dtype=np.int64), hists, k=1)
    assert float(np.mean(recs.item_idx[:, 0] == np.arange(2, 30))) >= 0.9
    r = model.recommend(histories=[["4", "5"], ["4", "5", "6"]], k=1)
    assert r.items[:, 0].tolist() == ["6", "7"] and not r.fallback.any()


def test_attention_weights_sum_to_one_over_the_items_read(planted: tuple[NARM, object]) -> None:
    model, _ = planted
    long = np.arange(1, 20, dtype=np.int64)  # longer than max_seq_len = 12
    hists = [np.array([1, 2, 3, 4]), np.array([5, 6]), np.array([], dtype=np.int64), long]
    weights = model.attention_weights(hists)
    assert [len(w) for w in weights] == [4, 2, 0, 12]
    for w in (weights[0], weights[1], weights[3]):
        assert w.dtype == np.float32 and np.all(w >= 0)
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-5)
    # a short history next to a long one (so padded on the right) has the weights it has alone
    np.testing.assert_allclose(model.attention_weights([hists[1]])[0], weights[1], rtol=1e-5, atol=1e-6)


def test_attention_weights_are_zero_on_padding() -> None:
    module = net(attention="additive")
    with torch.no_grad():
        _, weights = module.attend_last(torch.tensor([[5, 6, 0, 0], [1, 2, 3, 4]]))
    assert float(weights[0, 2:].abs().sum()) == 0.0
    torch.testing.assert_close(weights.sum(1), torch.ones(2))


def test_explain_indices_aggregates_repeated_items(planted: tuple[NARM, object]) -> None:
    model, _ = planted
    history = np.array([3, 7, 3, 8], dtype=np.int64)
    weights = model.attention_weights([history])[0]
    pairs = model.explain_indices(history, np.array([9, 10]), top=5, method="attention")
    assert len(pairs) == 2 and pairs[0] == pairs[1]  # the local attention is the same for every item
    expected = {3: float(weights[0] + weights[2]), 7: float(weights[1]), 8: float(weights[3])}
    assert [i for i, _ in pairs[0]] == sorted(expected, key=lambda i: -expected[i])
    for item, weight in pairs[0]:
        assert weight == pytest.approx(expected[item], rel=1e-5)
    assert len(model.explain_indices(history, np.array([9]), top=1, method="attention")[0]) == 1


def test_save_load_round_trip_and_seeds(planted: tuple[NARM, object], tmp_path: Path) -> None:
    model, data = planted
    loaded = Recommender.load(model.save(tmp_path / "m"))
    assert isinstance(loaded, NARM) and loaded.config == model.config
    h = [np.array([3, 4, 5]), np.array([10])]
    u = np.zeros(2, dtype=np.int64)
    np.testing.assert_array_equal(model.score_indices(u, h), loaded.score_indices(u, h))
    for a, b in zip(model.attention_weights(h), loaded.attention_weights(h), strict=True):
        np.testing.assert_array_equal(a, b)
    other = NARM(TINY).fit(data, options=TrainingOptions(seed=1, threads=1))  # type: ignore[arg-type]
    assert not np.array_equal(model.score_indices(u, h), other.score_indices(u, h))


def test_scores_are_the_projected_state_against_the_tied_item_embeddings(planted: tuple[NARM, object]) -> None:
    model, _ = planted
    assert model.net_ is not None
    history = np.array([2, 3, 4], dtype=np.int64)
    with torch.no_grad():
        state = model.net_.last(torch.from_numpy(history)[None])[0]
        expected = (model.net_.item_emb.weight @ state).numpy()
    got = model.score_indices(np.zeros(1, dtype=np.int64), [history])[0]
    np.testing.assert_allclose(got[1:], expected[1:], rtol=1e-5, atol=1e-5)
    assert got[0] == -np.inf


def test_registry_defaults_and_config_errors() -> None:
    model = create_model("narm")
    assert isinstance(model, NARM)
    c = model.config
    assert (c.rnn, c.attention, c.dropout, c.output_dropout, c.lr) == ("gru", "dot", 0.25, 0.5, 2e-3)
    assert c.patience > 0, "early stopping on validation is on by default"
    with pytest.raises(ConfigError, match="rnn"):
        NARM(rnn="transformer")
    with pytest.raises(ConfigError, match="attention"):
        NARM(attention="multiplicative")
