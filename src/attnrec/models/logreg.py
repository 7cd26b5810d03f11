"""Logistic regression for click prediction: one weight per user id, item id and value of every feature field.

The classic click-prediction baseline (e.g. McMahan et al., "Ad Click Prediction: a View from the Trenches",
KDD 2013): the click probability of user ``u`` and item ``i`` is

    p(u, i) = sigmoid(b + w_user[u] + w_item[i] + sum_f w_f(u or i))

over the one-hot user id, the one-hot item id and every categorical user / item feature field (a multi-valued
field such as genres: the mean of its values' weights; a numeric field: one weight per quantile bucket). The
weights are embeddings of width 1 (:class:`~attnrec.nn.fields.PairFields`), L2-regularised by AdamW's weight
decay, trained with binary cross-entropy on labelled impressions (a plain log: its events plus sampled
negatives), early-stopped on validation logloss. The score separates into a user part and an item part, so a
user is scored against the whole catalogue with one addition per item. No interaction between a user and an
item is modelled: within one user the ranking is the same for everybody (a per-item effect);
:class:`~attnrec.models.fm.FactorizationMachine` adds the pairwise interactions. Docs: ``docs/models/ctr_baselines.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from attnrec.base import pair_indices
from attnrec.data.features import FeatureTable
from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError
from attnrec.models._ctr import FeatureTablesState, ctr_validation, encode_features, impression_batches
from attnrec.nn.fields import PairFields
from attnrec.training.neural import NeuralConfig, NeuralRecommender
from attnrec.training.search_space import FloatRange, SearchSpace
from attnrec.training.trainer import BatchFn, LossFn, TrainerConfig, ValidateFn

CITATION = "McMahan et al. Ad Click Prediction: a View from the Trenches. KDD 2013 (logistic regression baseline)."

PAIR_CHUNK = 1 << 16
"""(user, item) pairs scored at once by :meth:`LogisticRegression.score_pairs`."""


class LogRegConfig(NeuralConfig):
    """Hyperparameters of logistic regression (training fields: :class:`~attnrec.training.neural.NeuralConfig`)."""

    id_fields: bool = Field(True, description="One weight per user id and per item id (false: features only).")
    num_negatives: int = Field(4, ge=1, description="Sampled negatives per event when fitted on a plain log.")
    valid_metric: Literal["logloss", "auc"] = Field("logloss", description="Early-stopping metric on validation.")
    lr: float = Field(1e-2, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay on the weights (the L2 penalty).")
    batch_size: int = Field(1024, ge=1, description="Impressions per step.")
    epochs: int = Field(30, ge=1, description="Maximum training epochs.")
    patience: int = Field(2, ge=0, description="Stop after this many validations without improvement.")
    eval_batch_size: int = Field(256, ge=1, description="Users scored against the whole catalogue at once.")

    search_space: ClassVar[SearchSpace] = {
        "lr": FloatRange(1e-3, 3e-2, log=True),
        "weight_decay": FloatRange(1e-6, 1e-2, log=True),
    }
    """What `attnrec tune` searches."""


def prior_logit(train: Interactions | None, negatives: int) -> float:
    """Log-odds of a click in ``train`` (labelled), or of a positive among ``1 + negatives`` (a plain log)."""
    if train is not None and train.label is not None and len(train):
        rate = float(np.mean(train.label))
    else:
        rate = 1.0 / (1.0 + negatives)
    rate = min(max(rate, 1e-4), 1.0 - 1e-4)
    return math.log(rate / (1.0 - rate))


class LogRegNet(nn.Module):
    """``logit(u, i) = bias + a(u) + a(i)``: a global bias plus the width-1 field weights of each side."""

    def __init__(
        self,
        num_users: int,
        num_items: int,
        items: FeatureTable | None,
        users: FeatureTable | None,
        id_fields: bool,
        bias: float,
    ) -> None:
        super().__init__()
        self.linear = PairFields(num_users, num_items, items, users, 1, id_fields=id_fields, init_std=0.0)
        if self.linear.num_fields == 0:
            raise ConfigError(
                "a click model needs at least one field: set id_fields=true or give user or item features"
            )
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def user_terms(self, user: Tensor) -> tuple[Tensor, Tensor]:
        """``user`` ``(B,)`` -> (``(B,)`` the user side's additive term, ``(B, k)`` its interaction vector)."""
        lin = self.linear.user_side(user).sum((-2, -1))
        return lin, lin.new_zeros((*lin.shape, 0))

    def item_terms(self, item: Tensor) -> tuple[Tensor, Tensor]:
        """``item`` ``(B,)`` -> (``(B,)`` additive term, ``(B, k)`` interaction vector)."""
        lin = self.linear.item_side(item).sum((-2, -1))
        return lin, lin.new_zeros((*lin.shape, 0))

    def forward(self, user: Tensor, item: Tensor) -> Tensor:
        """``(B,)`` user and item indices -> ``(B,)`` logits."""
        a_u, s_u = self.user_terms(user)
        a_i, s_i = self.item_terms(item)
        return self.bias + a_u + a_i + (s_u * s_i).sum(-1)

    def all_items(self, user: Tensor, items: tuple[Tensor, Tensor]) -> Tensor:
        """``(B,)`` users against precomputed :meth:`item_terms` of ``N`` items -> ``(B, N)`` logits."""
        a_u, s_u = self.user_terms(user)
        a_i, s_i = items
        return self.bias + a_u[:, None] + a_i[None, :] + s_u @ s_i.T


class LogisticRegression(FeatureTablesState, NeuralRecommender):
    """Logistic regression over user id, item id and user / item feature fields.

    Task ``ctr`` (probabilities). It reads no histories (``uses_history`` false): unknown users get the
    popularity fallback in rankings, and in :meth:`score_pairs` a zero user weight and no user features.
    """

    name = "lr"
    config_class: ClassVar[type[NeuralConfig]] = LogRegConfig
    citation = CITATION
    task = "ctr"
    predicts_probabilities = True
    uses_history = False
    validation_metric = "logloss"
    validation_mode = "min"
    config: LogRegConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.item_table_: FeatureTable | None = None
        self.user_table_: FeatureTable | None = None
        self.prior_logit_: float = 0.0

    def build_net(self, train: Interactions | None) -> nn.Module:
        if train is not None:
            self.item_table_, self.user_table_ = encode_features(self, train)
            self.prior_logit_ = prior_logit(train, self.config.num_negatives)
        return LogRegNet(
            self.num_users, self.num_items, self.item_table_, self.user_table_, self.config.id_fields, self.prior_logit_
        )

    def trainer_config(self, device: torch.device) -> TrainerConfig:
        mode: Literal["max", "min"] = "min" if self.config.valid_metric == "logloss" else "max"
        return dataclasses.replace(super().trainer_config(device), metric=self.config.valid_metric, mode=mode)

    def training_info(self, train: Interactions) -> dict[str, Any]:
        fields = getattr(self.net_, "linear", None)
        return {"metric": self.config.valid_metric, "fields": list(fields.names) if fields is not None else []}

    # ------------------------------------------------------------------ training
    def training_batches(self, train: Interactions) -> tuple[BatchFn, int]:
        def make(users: np.ndarray, items: np.ndarray, labels: np.ndarray, keys: np.ndarray) -> dict[str, Tensor]:
            return {"user": torch.from_numpy(users), "item": torch.from_numpy(items), "label": torch.from_numpy(labels)}

        return impression_batches(train, self.config.num_negatives, self.config.batch_size, make)

    def training_loss(self, net: nn.Module, train: Interactions) -> LossFn:
        def loss_fn(batch: dict[str, Tensor], gen: torch.Generator) -> tuple[Tensor, int]:
            logits = net(batch["user"], batch["item"])
            return F.binary_cross_entropy_with_logits(logits.float(), batch["label"]), int(batch["label"].shape[0])

        return loss_fn  # type: ignore[return-value]

    def validation(self, net: nn.Module, train: Interactions, valid: Interactions | None) -> ValidateFn | None:
        return ctr_validation(self, train, valid, negatives=self.config.num_negatives, seed=0)

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``(len(user_idx), num_items + 1)`` click probabilities of every item (column 0: -inf); the item side is
        computed once, then ``eval_batch_size`` users at a time (memory: that many rows)."""
        net = self._net()
        assert isinstance(net, LogRegNet)
        net.eval()
        users = np.asarray(user_idx, dtype=np.int64)
        items = net.item_terms(self.tensor(np.arange(self.num_items + 1, dtype=np.int64)))
        out = np.empty((len(users), self.num_items + 1), dtype=np.float32)
        bs = self.config.eval_batch_size
        for s in range(0, len(users), bs):
            out[s : s + bs] = self.numpy(torch.sigmoid(net.all_items(self.tensor(users[s : s + bs]), items)))
        out[:, 0] = -np.inf
        return out

    @torch.inference_mode()
    def score_pairs(
        self,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        *,
        history: Interactions | None = None,
        batch_size: int = 256,
    ) -> np.ndarray:
        """Click probabilities of (user, item) pairs, each pair scored alone (``history`` is not read); item 0
        gives NaN, user 0 (unknown) is scored with no user weight."""
        self._check_fitted()
        users, items = pair_indices(user_idx, item_idx)
        net = self._net()
        net.eval()
        out = np.empty(len(users), dtype=np.float64)
        for s in range(0, len(users), PAIR_CHUNK):
            logits = net(self.tensor(users[s : s + PAIR_CHUNK]), self.tensor(items[s : s + PAIR_CHUNK]))
            out[s : s + PAIR_CHUNK] = self.numpy(torch.sigmoid(logits))
        out[items == 0] = np.nan
        return out


__all__ = ["CITATION", "LogRegConfig", "LogRegNet", "LogisticRegression", "prior_logit"]
