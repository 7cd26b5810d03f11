"""The neural-model base: shared hyperparameter names, state only after a successful fit, devices, tied weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from attnrec.base import Recommender
from attnrec.data.synthetic import planted_sequences
from attnrec.errors import ConfigError, DataError, ModelFitError
from attnrec.models.sasrec import SASRec
from attnrec.registry import available_models, get_model_class
from attnrec.training.neural import NeuralConfig, NeuralRecommender, tied_names
from attnrec.training.options import TrainingOptions
from attnrec.training.trainer import BatchFn, LossFn

TINY = {"embed_dim": 16, "num_layers": 1, "num_heads": 1, "max_seq_len": 8, "epochs": 2, "batch_size": 16}


class _Exploding(NeuralRecommender):
    """A model whose loss becomes NaN in its second epoch."""

    name = "exploding"

    def build_net(self, train: Any) -> nn.Module:
        return nn.Linear(2, 1)

    def training_batches(self, train: Any) -> tuple[BatchFn, int]:
        def batches(epoch: int, gen: torch.Generator) -> Iterator[Tensor]:
            yield torch.full((4, 2), float(epoch))

        return batches, 1

    def training_loss(self, net: nn.Module, train: Any) -> LossFn:
        def loss_fn(batch: Tensor, gen: torch.Generator) -> Tensor:
            out = net(batch).mean()
            return out * float("nan") if float(batch[0, 0]) > 1 else out

        return loss_fn  # type: ignore[return-value]

    def score_indices(self, user_idx: np.ndarray, histories: Any) -> np.ndarray:
        return np.zeros((len(user_idx), self.num_items + 1), dtype=np.float32)


def test_a_failed_fit_leaves_an_unfitted_model_unfitted() -> None:
    data = planted_sequences(num_users=20, num_items=10, length=6, seed=0)
    model = _Exploding({"epochs": 3})
    with pytest.raises(ModelFitError, match="training loss became nan at epoch 2"):
        model.fit(data, options=TrainingOptions(seed=0, threads=1))
    assert not model.is_fitted
    assert model.net_ is None and model.users_ is None and model.history_ == []


def test_a_failed_refit_keeps_the_previous_model() -> None:
    data = planted_sequences(num_users=30, num_items=12, length=8, seed=0)
    model = SASRec(TINY).fit(data, options=TrainingOptions(seed=0, threads=1))
    before = model.score_indices(np.array([1]), [data.sequence(1)])
    net, users = model.net_, model.users_
    bad = data.subset(np.zeros(len(data), dtype=bool))  # empty: fit refuses before any state changes
    with pytest.raises(DataError):
        model.fit(bad)
    with pytest.raises(ModelFitError):  # now a failure inside training (lr so large the loss overflows)
        model.config = model.config.with_updates(lr=1e30, grad_clip=None, epochs=2)
        model.fit(data, options=TrainingOptions(seed=0, threads=1))
    assert model.net_ is net and model.users_ is users
    np.testing.assert_array_equal(model.score_indices(np.array([1]), [data.sequence(1)]), before)


def test_every_neural_model_shares_the_training_parameter_names() -> None:
    shared = set(NeuralConfig.model_fields)
    neural = [n for n in available_models() if issubclass(get_model_class(n), NeuralRecommender)]
    assert {"sasrec", "mf"} <= set(neural)
    for name in neural:
        fields = get_model_class(name).config_class.model_fields
        assert shared <= set(fields), f"{name} lacks {sorted(shared - set(fields))}"
        for key in shared:  # same meaning: same type annotation everywhere, or "| None" for a data rule
            ann = NeuralConfig.model_fields[key].annotation
            if fields[key].annotation != ann:
                assert fields[key].annotation == ann | None, (name, key)
                assert "None: a rule from the data" in (fields[key].description or ""), (name, key)


def test_devices_are_validated_and_cpu_inference_matches(tmp_path: Path) -> None:
    data = planted_sequences(num_users=30, num_items=12, length=8, seed=0)
    model = SASRec(TINY).fit(data, options=TrainingOptions(seed=0, threads=1, device="cpu"))
    assert model.train_info_["device"] == "cpu"
    scores = model.score_indices(np.array([1]), [data.sequence(1)])
    assert model.to("auto") is model  # auto: the GPU where there is one, else the CPU
    moved = model.score_indices(np.array([1]), [data.sequence(1)])
    if torch.cuda.is_available():  # another device sums in another order
        assert model.device_.type == "cuda"
        np.testing.assert_allclose(moved, scores, rtol=1e-3, atol=1e-4)
    else:
        assert model.device_.type == "cpu"
        np.testing.assert_array_equal(moved, scores)
    assert model.to("cpu") is model
    np.testing.assert_array_equal(model.score_indices(np.array([1]), [data.sequence(1)]), scores)
    for bad, rule in [("tpu", "must be 'auto', 'cpu', 'cuda' or 'cuda:N'"), ("cuda:7", "cuda")]:
        if bad.startswith("cuda") and torch.cuda.device_count() > 7:
            continue
        with pytest.raises(ConfigError, match=rule):
            model.to(bad)
    with pytest.raises(ConfigError, match="'device' option"):
        SASRec(TINY).fit(data, options=TrainingOptions(seed=0, threads=1, device="gpu0"))


def test_tied_item_weights_are_saved_once_and_tied_again_on_load(tmp_path: Path) -> None:
    data = planted_sequences(num_users=30, num_items=12, length=8, seed=0)
    model = SASRec(TINY).fit(data, options=TrainingOptions(seed=0, threads=1))
    assert tied_names(model._net()) == {"head.weight": "item_emb.weight"}
    assert "head.weight" not in model._get_state()
    loaded = Recommender.load(model.save(tmp_path / "m"))
    assert isinstance(loaded, SASRec)
    net = loaded._net()
    assert net.head.weight is net.item_emb.weight  # type: ignore[union-attr]
    hist = [data.sequence(2)]
    np.testing.assert_allclose(loaded.score_indices(np.array([2]), hist), model.score_indices(np.array([2]), hist))


def test_data_rules_fill_the_fields_left_at_none_and_are_recorded(tmp_path: Path) -> None:
    from attnrec.models.sequential import DENSE_DROPOUT, SPARSE_DROPOUT

    sparse = planted_sequences(num_users=30, num_items=40, length=6, seed=0)  # 180 events / 40 items = 4.5
    dense = planted_sequences(num_users=200, num_items=12, length=8, seed=0)  # 1,600 events / 12 items = 133
    for data, expected in ((sparse, SPARSE_DROPOUT), (dense, DENSE_DROPOUT)):
        model = SASRec(TINY).fit(data, options=TrainingOptions(seed=0, threads=1))
        assert model.requested_config_.dropout is None
        assert model.config.dropout == expected
        assert model.train_info_["data_rules"]["dropout"]["value"] == expected
        assert "events per item" in model.train_info_["data_rules"]["dropout"]["why"]
        assert model.net_.drop.p == expected  # type: ignore[union-attr]
    loaded = Recommender.load(model.save(tmp_path / "m"))  # the saved config holds the value used
    assert loaded.config.dropout == DENSE_DROPOUT
    refit = model.fit(sparse, options=TrainingOptions(seed=0, threads=1))  # a refit derives it again
    assert refit.config.dropout == SPARSE_DROPOUT
    given = SASRec({**TINY, "dropout": 0.1, "weight_decay": 0.0}).fit(
        sparse, options=TrainingOptions(seed=0, threads=1)
    )
    assert given.config.dropout == 0.1 and given.train_info_["data_rules"] == {}


def test_weight_decay_rule_decays_sparse_catalogues_and_reaches_the_optimizer() -> None:
    from attnrec.models.bert4rec import BERT4Rec
    from attnrec.models.narm import NARM
    from attnrec.models.sequential import DENSE_WEIGHT_DECAY, SPARSE_WEIGHT_DECAY

    sparse = planted_sequences(num_users=30, num_items=40, length=6, seed=0)  # 4.5 events per item
    dense = planted_sequences(num_users=200, num_items=12, length=8, seed=0)  # 133 events per item
    assert SASRec().config.weight_decay is None and BERT4Rec().config.weight_decay is None  # BERT4Rec: its own rule
    assert NARM().config.weight_decay == 0.0  # the rule was measured for SASRec
    seen: list[float] = []
    decayed: list[list[torch.Tensor]] = []
    real = torch.optim.AdamW

    def adamw(groups: Any, **kwargs: Any) -> torch.optim.Optimizer:
        seen.append(groups[0]["weight_decay"])  # the decayed group (weights and embeddings)
        decayed.append(list(groups[0]["params"]))
        return real(groups, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim, "AdamW", adamw)
        for data, expected in ((sparse, SPARSE_WEIGHT_DECAY), (dense, DENSE_WEIGHT_DECAY)):
            model = SASRec(TINY).fit(data, options=TrainingOptions(seed=0, threads=1))
            assert model.requested_config_.weight_decay is None and model.config.weight_decay == expected
            assert model.train_info_["data_rules"]["weight_decay"]["value"] == expected
            assert "events per item" in model.train_info_["data_rules"]["weight_decay"]["why"]
            assert seen[-1] == expected
            item_table = model.net_.item_emb.weight  # type: ignore[union-attr]
            assert any(p is item_table for p in decayed[-1])  # the item embeddings are decayed
        given = SASRec({**TINY, "weight_decay": 0.3}).fit(sparse, options=TrainingOptions(seed=0, threads=1))
        assert given.config.weight_decay == 0.3 and seen[-1] == 0.3
        assert "weight_decay" not in given.train_info_["data_rules"]


def test_batch_size_rule_keeps_enough_steps_per_epoch_on_small_logs(tmp_path: Path) -> None:
    import math

    from attnrec.models.bert4rec import BERT4Rec
    from attnrec.models.narm import NARM
    from attnrec.models.sequential import MIN_RULE_BATCH, MIN_STEPS_PER_EPOCH, small_data_batch_size

    for windows in (7_068, 22_363):  # ML-1M, Amazon Beauty: the base batch stays
        assert small_data_batch_size(windows, 64)[0] == 64
    assert small_data_batch_size(22_363, 128)[0] == 128
    for windows, base in ((1_100, 64), (1_100, 128), (960, 64), (7_068, 128)):  # LastFM, ML-100K, ...
        size, why = small_data_batch_size(windows, base)
        assert size < base and (math.ceil(windows / size) >= MIN_STEPS_PER_EPOCH or size == MIN_RULE_BATCH)
        assert math.ceil(windows / (2 * size)) < MIN_STEPS_PER_EPOCH  # the largest batch that gives enough steps
        assert f"{windows:,} training windows" in why and f"at {size}" in why
    assert small_data_batch_size(10, 64) == (MIN_RULE_BATCH, small_data_batch_size(10, 64)[1])  # never below 16
    assert SASRec.config_class.base_batch_size == NARM.config_class.base_batch_size == 64
    assert SASRec().config.batch_size is None and NARM().config.batch_size is None
    assert BERT4Rec().config.batch_size is None  # its small-log rule: tests/models/test_bert4rec.py

    data = planted_sequences(num_users=120, num_items=12, length=8, seed=0)  # 120 windows of 8 items
    rows: list[dict[str, object]] = []
    auto = {k: v for k, v in TINY.items() if k != "batch_size"}
    model = SASRec(auto).fit(data, options=TrainingOptions(seed=0, threads=1, log=rows.append))
    assert model.requested_config_.batch_size is None and model.config.batch_size == MIN_RULE_BATCH
    assert model.train_info_["data_rules"]["batch_size"]["value"] == MIN_RULE_BATCH
    assert "120 training windows" in model.train_info_["data_rules"]["batch_size"]["why"]
    assert Recommender.load(model.save(tmp_path / "m")).config.batch_size == MIN_RULE_BATCH
    given = SASRec(TINY).fit(data, options=TrainingOptions(seed=0, threads=1))
    assert given.config.batch_size == 16 and "batch_size" not in given.train_info_.get("data_rules", {})


def test_every_neural_model_takes_the_weight_average_and_saves_it(tmp_path: Path) -> None:
    data = planted_sequences(num_users=30, num_items=12, length=8, seed=0)
    plain = SASRec(TINY).fit(data, options=TrainingOptions(seed=0, threads=1))
    averaged = SASRec({**TINY, "ema_decay": 0.9}).fit(data, options=TrainingOptions(seed=0, threads=1))
    hist = [data.sequence(2)]
    assert not np.allclose(averaged.score_indices(np.array([2]), hist), plain.score_indices(np.array([2]), hist))
    net = averaged._net()
    assert net.head.weight is net.item_emb.weight  # type: ignore[union-attr]  # still tied after the average
    loaded = Recommender.load(averaged.save(tmp_path / "m"))
    assert loaded.config.ema_decay == 0.9  # type: ignore[attr-defined]
    np.testing.assert_array_equal(
        loaded.score_indices(np.array([2]), hist), averaged.score_indices(np.array([2]), hist)
    )
    for bad in (1.0, 0.0, -0.5):
        with pytest.raises(ConfigError, match="ema_decay"):
            SASRec({**TINY, "ema_decay": bad})
