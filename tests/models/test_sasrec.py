"""SASRec: conformance, shapes, causality, padding invariance, planted next item, losses, persistence."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from attnrec.base import Recommender
from attnrec.data.synthetic import planted_sequences
from attnrec.errors import ConfigError, ModelFitError
from attnrec.models.sasrec import SASRec, SASRecConfig, SASRecNet
from attnrec.nn.transformer import fast_dropout
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.losses import make_loss
from attnrec.training.options import TrainingOptions
from attnrec.training.sequences import next_item_loss, shape_bucket, training_windows, window_batches

TINY = {
    "embed_dim": 16,
    "num_layers": 1,
    "num_heads": 1,
    "max_seq_len": 12,
    "dropout": 0.0,
    "batch_size": 16,
    "lr": 5e-3,
    "epochs": 25,
    "warmup_steps": 0,
    "cosine": False,
    "eval_every": 1,
}


def opts(**kw: object) -> TrainingOptions:
    return TrainingOptions(**{"seed": 0, "threads": 1, "device": "cpu", **kw})  # type: ignore[arg-type]


class TestSASRec(RecommenderConformance):
    sequential = True
    planted_block = True

    def make_model(self) -> SASRec:
        # dropout keeps the model from memorising exact orders on the checkerboard data; no weight decay: the
        # planted logs are sparse (the rule would give 1.0), and at this fixture's lr (5x the default's) that
        # shrinks the embeddings of its 20-epoch fit faster than the planted order is learned
        return SASRec(TINY, epochs=20, batch_size=8, lr=1e-2, dropout=0.4, weight_decay=0.0)


PLANTED = {**TINY, "weight_decay": 0.0}
"""The planted fixture's settings (sparse planted logs: no weight decay, see ``TestSASRec.make_model``)."""


@pytest.fixture(scope="module")
def planted() -> tuple[SASRec, object]:
    data = planted_sequences(80, 30, length=8, seed=1)  # sparse (21 events per item): no weight decay, see above
    return SASRec(PLANTED).fit(data, options=opts()), data


def net(**kw: object) -> SASRecNet:
    torch.manual_seed(0)
    module = SASRecNet(20, SASRecConfig(**{**TINY, "num_layers": 2, "num_heads": 2, **kw}))
    return module.eval()


def test_shapes() -> None:
    module = net()
    x = torch.tensor([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]])
    assert module(x).shape == (2, 5, 16)
    assert module.scores(module(x)[:, -1]).shape == (2, 21)


def test_causality_later_items_do_not_change_earlier_outputs() -> None:
    module = net()
    a = torch.tensor([[3, 4, 5, 6, 7]])
    b = torch.tensor([[3, 4, 5, 9, 1]])
    ha, hb = module(a), module(b)
    torch.testing.assert_close(ha[:, :3], hb[:, :3])
    assert not torch.allclose(ha[:, 3:], hb[:, 3:])  # the check can fail: later outputs do change


@pytest.mark.parametrize("norm_first", [True, False])
def test_padding_invariance(norm_first: bool) -> None:
    module = net(norm_first=norm_first)
    seq = torch.tensor([[7, 3, 9]])
    right = torch.tensor([[7, 3, 9, 0, 0, 0]])
    left = torch.tensor([[0, 0, 0, 7, 3, 9]])
    alone = module(seq)[:, -1]
    torch.testing.assert_close(module(right)[:, 2], alone)
    torch.testing.assert_close(module(left, right_padded=False)[:, -1], alone)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_last_position_path_equals_the_full_forward(norm_first: bool, num_layers: int) -> None:
    module = net(norm_first=norm_first, num_layers=num_layers)
    x = torch.tensor([[7, 0, 0, 0, 0], [3, 4, 5, 0, 0], [1, 2, 3, 4, 5], [9, 8, 0, 0, 0]])
    full = module(x)[torch.arange(4), (x > 0).sum(1) - 1]
    torch.testing.assert_close(module.last(x), full)


def test_bf16_autocast_forward_is_close_to_float32() -> None:
    module = net()
    x = torch.tensor([[3, 4, 5, 6, 7], [1, 2, 0, 0, 0]])
    ref = module(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = module(x)
    assert low.dtype == torch.float32  # the final LayerNorm runs in float32 under autocast
    torch.testing.assert_close(low, ref, rtol=0.05, atol=0.05)


def test_scores_use_only_the_last_max_seq_len_items(planted: tuple[SASRec, object]) -> None:
    model, _ = planted
    long = np.arange(1, 20, dtype=np.int64)
    same = model.score_indices(np.zeros(2, dtype=np.int64), [long, long[-model.config.max_seq_len :]])
    np.testing.assert_array_equal(same[0], same[1])
    assert same[0, 0] == -np.inf


def test_planted_next_item_and_new_events_change_results(planted: tuple[SASRec, object]) -> None:
    model, _ = planted
    hists = [np.arange(max(1, i - 3), i + 1, dtype=np.int64) for i in range(1, 29)]
    recs = model.recommend_indices(np.zeros(len(hists), dtype=np.int64), hists, k=1)
    assert float(np.mean(recs.item_idx[:, 0] == np.arange(2, 30))) >= 0.9
    # an unknown user's history is personalised without retraining, and one more event moves the top item
    r = model.recommend(histories=[["4", "5"], ["4", "5", "6"]], k=1)
    assert r.items[:, 0].tolist() == ["6", "7"] and not r.fallback.any()


def test_attention_maps(planted: tuple[SASRec, object]) -> None:
    model, _ = planted
    maps = model.attention_maps([np.array([1, 2, 3, 4]), np.array([5, 6])])
    assert len(maps) == 1 and maps[0].shape == (2, 1, 4, 4)
    m = maps[0]
    torch.testing.assert_close(m.sum(-1), torch.ones(2, 1, 4))
    assert float(m[0, 0].triu(1).abs().sum()) == 0.0  # causal
    assert float(m[1, 0, -1, :2].sum()) == 0.0  # padding columns of the short history get no weight


@pytest.mark.parametrize("loss", ["ce", "ce-exclude", "sampled", "sampled-exclude", "bce", "gbce"])
def test_each_loss_decreases_and_learns_the_planted_order(loss: str) -> None:
    data = planted_sequences(60, 20, length=8, seed=2)
    exclude = loss.endswith("-exclude")
    model = SASRec(
        TINY, loss=loss.removesuffix("-exclude"), exclude_window_items=exclude, num_negatives=8, epochs=20, gbce_t=0.2
    )
    model.fit(data, options=opts())
    losses = [row["loss"] for row in model.history_]
    assert losses[-1] < 0.6 * losses[0], losses
    hists = [np.array([i - 1, i]) for i in range(2, 20)]
    recs = model.recommend_indices(np.zeros(len(hists), dtype=np.int64), hists, k=3)
    assert float(np.mean((recs.item_idx == np.arange(3, 21)[:, None]).any(1))) >= 0.8


def test_nan_raises_model_fit_error_with_epoch_and_step() -> None:
    data = planted_sequences(40, 20, length=8, seed=2)
    with pytest.raises(ModelFitError, match=r"epoch 1, step 2 "):
        SASRec(TINY, lr=1e30, epochs=3, grad_clip=None).fit(data, options=opts())  # type: ignore[arg-type]


def test_training_windows_every_position_and_sliding() -> None:
    x, y = training_windows([np.array([1, 2, 3, 4, 5, 6, 7]), np.array([8]), np.array([9, 10])], 3)
    np.testing.assert_array_equal(x, [[4, 5, 6], [9, 0, 0]])
    np.testing.assert_array_equal(y, [[5, 6, 7], [10, 0, 0]])
    x, _ = training_windows([np.arange(1, 12)], 3, step=2)
    np.testing.assert_array_equal(x, [[8, 9, 10], [6, 7, 8], [4, 5, 6], [2, 3, 4]])


@pytest.mark.parametrize(
    ("overrides", "step", "exclude"),
    [
        ({}, 3, True),
        ({"sliding_window_step": 0, "loss": "sampled"}, 0, True),
        ({"loss": "gbce"}, 3, False),
        ({"exclude_window_items": False}, 3, False),
    ],
)
def test_default_windows_and_exclusion_are_resolved(overrides: dict[str, object], step: int, exclude: bool) -> None:
    data = planted_sequences(10, 30, length=12, seed=0)  # 12 events, max_seq_len 3: several windows each
    model = SASRec(TINY, max_seq_len=3, epochs=1, **overrides).fit(data, options=opts())
    x, _ = training_windows(data.sequences()[1:], 3, step)
    assert model.train_info_["train_windows"] == len(x) == (10 if step == 0 else 30)
    assert model.train_info_["exclude_window_items"] is exclude


def test_save_load_and_seeds(planted: tuple[SASRec, object], tmp_path: Path) -> None:
    model, data = planted
    loaded = Recommender.load(model.save(tmp_path / "m"))
    h = [np.array([3, 4, 5]), np.array([10])]
    u = np.zeros(2, dtype=np.int64)
    np.testing.assert_array_equal(model.score_indices(u, h), loaded.score_indices(u, h))
    assert loaded.history_ == model.history_  # type: ignore[attr-defined]
    again = SASRec(PLANTED).fit(data, options=opts())  # type: ignore[arg-type]
    np.testing.assert_array_equal(model.score_indices(u, h), again.score_indices(u, h))
    other = SASRec(PLANTED).fit(data, options=TrainingOptions(seed=1, threads=1))  # type: ignore[arg-type]
    assert not np.array_equal(model.score_indices(u, h), other.score_indices(u, h))


def test_validation_early_stopping_and_history(tmp_path: Path) -> None:
    from attnrec.data import leave_one_out

    split = leave_one_out(planted_sequences(60, 20, length=8, seed=4))
    rows: list[dict[str, object]] = []
    model = SASRec(TINY, epochs=6, patience=2).fit(split.train, split.valid, options=opts(log=rows.append))
    assert rows == model.history_ and "valid_ndcg@10" in rows[0]
    best = max(float(r["valid_ndcg@10"]) for r in rows)  # type: ignore[arg-type]
    assert model.train_info_["best_metric"] == pytest.approx(best)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="num_heads"):
        SASRec(embed_dim=10, num_heads=3)
    with pytest.raises(ConfigError, match="loss"):
        SASRec(loss="hinge")
    with pytest.raises(ConfigError, match=r"'exclude_window_items'.*needs loss 'ce' or 'sampled'; got loss='bce'"):
        SASRec(loss="bce", exclude_window_items=True)


def test_fast_dropout_keeps_expectation() -> None:
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = fast_dropout(x, 0.25, True)
    assert abs(float((y == 0).float().mean()) - 0.25) < 0.01
    assert abs(float(y.mean()) - 1.0) < 0.01
    assert fast_dropout(x, 0.25, False) is x


@pytest.mark.parametrize("exclude_window", [True, False])
def test_trimmed_batch_has_the_loss_and_gradients_of_the_padded_one(exclude_window: bool) -> None:
    # oracle for the short-sequence speed path: a batch cut to its longest real window (what `_batches` yields)
    # gives the same loss, target count and gradients as the same windows padded to max_seq_len
    from attnrec.training.losses import make_loss
    from attnrec.training.sequences import next_item_loss

    seqs = [np.array([3, 4, 5, 6]), np.array([7, 8]), np.array([9, 2, 11]), np.array([1, 5])]
    x, y = (torch.from_numpy(a) for a in training_windows(seqs, 12))
    width = int((x > 0).sum(1).max())
    assert width == 3 and x.shape[1] == 12

    def run(xb: torch.Tensor, yb: torch.Tensor) -> tuple[float, int, dict[str, torch.Tensor]]:
        module = net(dropout=0.0)
        module.train()
        loss_fn = next_item_loss(module, module.item_emb.weight, make_loss("ce", 19), exclude_window=exclude_window)
        loss, n = loss_fn((xb, yb), torch.Generator().manual_seed(0))
        loss.backward()
        return float(loss.detach()), n, {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}

    loss_full, n_full, grads_full = run(x, y)
    loss_cut, n_cut, grads_cut = run(x[:, :width], y[:, :width])
    assert n_full == n_cut == 7  # every real target, and nothing else, is in the loss
    assert loss_cut == pytest.approx(loss_full, rel=1e-6)
    assert grads_full.keys() == grads_cut.keys()
    for k in grads_full:
        torch.testing.assert_close(grads_cut[k], grads_full[k], rtol=1e-5, atol=1e-7)


def test_training_batches_are_cut_to_their_longest_real_window() -> None:
    seqs = [np.arange(1, n + 2) for n in (1, 2, 3, 5, 8, 13, 1, 2, 2, 3)]
    x, y = (torch.from_numpy(a) for a in training_windows(seqs, 20))
    lengths = (x > 0).sum(1)
    batches = list(window_batches(x, y, lengths, batch_size=3)(1, torch.Generator().manual_seed(0)))
    assert sum(int((yb > 0).sum()) for _, yb in batches) == int(lengths.sum())
    for xb, yb in batches:
        assert xb.shape[1] == int((xb > 0).sum(1).max()) == yb.shape[1] < 20  # widths up to 16 are exact


def test_shape_buckets_are_few_and_cost_at_most_a_quarter() -> None:
    widths = [shape_bucket(w) for w in range(1, 1025)]
    assert all(b == w for w, b in zip(range(1, 17), widths, strict=False))
    assert all(w <= b <= w * 1.25 for w, b in zip(range(1, 1025), widths, strict=True))
    assert widths == sorted(widths)
    assert len(set(widths[:200])) == 31 and len(set(widths)) == 40  # 1-16, then four per doubling


def test_long_windows_are_padded_to_a_bucket_and_the_padding_changes_no_loss() -> None:
    """Batch widths come from the bucket set (capped at the windows' width); the right padding this adds carries
    no target and, the model being causal, does not change the loss or its gradients."""
    seqs = [np.arange(1, n + 2) for n in (17, 23, 29, 41, 50, 3, 5, 37)]
    x, y = (torch.from_numpy(a) for a in training_windows(seqs, 48))
    lengths = (x > 0).sum(1)
    batches = list(window_batches(x, y, lengths, batch_size=2, length_bucketing=False)(1, torch.Generator()))
    assert sum(int((yb > 0).sum()) for _, yb in batches) == int(lengths.sum())
    widths = {xb.shape[1] for xb, _ in batches}
    assert widths <= {*range(1, 17), 20, 24, 28, 32, 40, 48}
    assert any(xb.shape[1] > int((xb > 0).sum(1).max()) for xb, _ in batches)  # some batches were padded
    cfg = SASRecConfig(**{**TINY, "max_seq_len": 48})
    torch.manual_seed(0)
    net = SASRecNet(60, cfg).eval()
    loss_fn = next_item_loss(
        net, net.item_emb.weight, make_loss("ce", 60, chunk_size=cfg.ce_chunk_size), exclude_window=True
    )
    for xb, yb in batches:
        exact = int((xb > 0).sum(1).max())
        values = []
        for width in (exact, xb.shape[1]):
            net.zero_grad()
            loss, n = loss_fn((xb[:, :width], yb[:, :width]), torch.Generator())
            loss.backward()
            values.append((float(loss), n, net.item_emb.weight.grad.clone()))  # type: ignore[union-attr]
        (l1, n1, g1), (l2, n2, g2) = values
        assert n1 == n2 and l1 == pytest.approx(l2, rel=1e-5)
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_batch_tokens_fills_steps_with_short_windows() -> None:
    seqs = [np.arange(1, n + 2) for n in (1, 2, 3, 5, 8, 13, 1, 2, 2, 3) * 6]
    x, y = (torch.from_numpy(a) for a in training_windows(seqs, 20))
    lengths = (x > 0).sum(1)
    make = window_batches(x, y, lengths, batch_size=4, batch_tokens=30)
    batches = list(make(1, torch.Generator().manual_seed(0)))
    targets = [int((yb > 0).sum()) for _, yb in batches]
    assert sum(targets) == int(lengths.sum())  # every target once
    longest = int(lengths.max())  # 13: a step misses the budget by less than one window (but the last step)
    assert sum(abs(t - 30) < longest for t in targets) >= len(targets) - 1
    assert len(batches) < math.ceil(len(x) / 4)  # fewer steps than batch_size windows would need
    model = SASRec(TINY, epochs=2, batch_tokens=30).fit(planted_sequences(40, 20, length=6, seed=2), options=opts())
    assert model.history_[-1]["epoch"] == 2
