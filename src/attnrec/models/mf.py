"""Biased matrix factorisation for explicit ratings.

Y. Koren, R. Bell, C. Volinsky. "Matrix Factorization Techniques for Recommender Systems." IEEE Computer 42(8),
2009.

``r_hat(u, i) = mu + b_u + b_i + p_u . q_i`` fitted to the observed ratings by minimising
``mean((r - r_hat)^2) + l2 * mean(b_u^2 + b_i^2 + |p_u|^2 + |q_i|^2)`` over shuffled minibatches with Adam, in
the shared training loop (:class:`~attnrec.training.trainer.Trainer`: checkpoints, ``--resume``, NaN checks,
progress). ``mu`` is the training mean and stays fixed. When the validation events carry ratings, training stops
once validation RMSE has not improved for ``patience`` epochs and the best epoch's parameters are kept.
Unknown users (index 0) predict ``mu + b_i``, unknown items ``mu + b_u``.

``score_indices`` returns the predicted rating of every item, so top-k ranks by predicted rating. The model does
not use histories: unknown users get the popularity fallback, flagged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import ClassVar, Self

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError, DataError
from attnrec.training.neural import NeuralConfig, NeuralRecommender
from attnrec.training.options import TrainingOptions
from attnrec.training.search_space import Choice, FloatRange, SearchSpace
from attnrec.training.trainer import BatchFn, LossFn, ValidateFn


class BiasedMFConfig(NeuralConfig):
    """Hyperparameters of :class:`BiasedMF` (training fields: :class:`~attnrec.training.neural.NeuralConfig`)."""

    factors: int = Field(32, ge=1, description="Dimension of the user and item factors p_u, q_i.")
    l2: float = Field(0.1, ge=0.0, description="L2 penalty on biases and factors of each rating in a batch.")
    renamed: ClassVar[dict[str, str]] = {"learning_rate": "lr"}

    lr: float = Field(0.005, gt=0.0, description="Adam learning rate ('learning_rate' before 0.2).")
    epochs: int = Field(40, ge=1, description="Maximum passes over the training ratings.")
    batch_size: int = Field(4096, ge=1, description="Ratings per minibatch.")
    init_std: float = Field(0.1, gt=0.0, description="Standard deviation of the initial factors.")
    patience: int = Field(5, ge=0, description="Epochs without validation-RMSE improvement before stopping.")
    bf16: bool | None = Field(False, description="bfloat16 autocast (off: MF is memory-bound, bf16 does not help).")
    clip: bool = Field(True, description="Clip predictions to the training rating range.")

    search_space: ClassVar[SearchSpace] = {
        "factors": Choice((8, 16, 32, 64, 128)),
        "l2": FloatRange(1e-3, 1.0, log=True),
        "lr": FloatRange(1e-3, 2e-2, log=True),
    }
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


class BiasedMFNet(nn.Module):
    """``mu + b_u + b_i + p_u . q_i``; index 0 (unknown user or item) has no factor and no bias."""

    def __init__(self, num_users: int, num_items: int, factors: int, mu: float, init_std: float, seed: int) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(num_users, factors, padding_idx=0)
        self.item_factors = nn.Embedding(num_items, factors, padding_idx=0)
        self.user_bias = nn.Embedding(num_users, 1, padding_idx=0)
        self.item_bias = nn.Embedding(num_items, 1, padding_idx=0)
        self.register_buffer("mu", torch.tensor(float(mu)), persistent=False)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for emb in (self.user_factors, self.item_factors):
                emb.weight.copy_(torch.randn(emb.weight.shape, generator=gen) * init_std)
                emb.weight[0] = 0.0
            self.user_bias.weight.zero_()
            self.item_bias.weight.zero_()

    def forward(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """Predicted ratings ``(B,)`` of index pairs and the mean L2 penalty of the parameters they use."""
        p, q = self.user_factors(users), self.item_factors(items)
        bu, bi = self.user_bias(users)[:, 0], self.item_bias(items)[:, 0]
        pred = self.mu + bu + bi + (p * q).sum(1)
        penalty = torch.mean(bu**2 + bi**2 + (p**2).sum(1) + (q**2).sum(1))
        return pred, penalty


class BiasedMF(NeuralRecommender):
    """Koren-style biased MF trained on explicit ratings (MAE/RMSE apply)."""

    name = "mf"
    config_class = BiasedMFConfig
    fit_kind = "epochs"
    citation = "Koren, Bell & Volinsky, Matrix Factorization Techniques for Recommender Systems, IEEE Computer 2009"
    uses_history = False
    predicts_ratings = True
    validation_metric = "rmse"
    validation_mode = "min"
    adam_betas = (0.9, 0.999)  # Adam's defaults, as before the shared loop
    config: BiasedMFConfig

    def fit(
        self, train: Interactions, valid: Interactions | None = None, *, options: TrainingOptions | None = None
    ) -> Self:
        """Fit on ``train``; raises :class:`~attnrec.errors.DataError` before touching any state when there is
        no rating to fit (empty split, missing or non-finite ratings)."""
        if len(train) == 0:
            raise DataError("mf needs at least one rated training event to learn from; the training split is empty")
        if train.rating is None:
            raise ConfigError(
                "model 'mf' (BiasedMF) needs explicit ratings: the training interactions have no 'rating' column"
            )
        bad = int((~np.isfinite(train.rating)).sum())
        if bad:
            raise DataError(
                f"mf needs a finite rating on every training event; the training split has {bad} missing or "
                f"non-finite rating{'s' if bad != 1 else ''} out of {len(train)}"
            )
        return super().fit(train, valid, options=options)

    def build_net(self, train: Interactions | None) -> BiasedMFNet:
        assert train is not None and train.rating is not None  # loading restores numpy arrays, not the net
        r = train.rating.astype(np.float64)
        self.mu_ = float(r.mean())
        self.rating_range_ = (float(r.min()), float(r.max()))
        cfg = self.config
        seed = int(torch.initial_seed())  # the fit seeds torch's generator with options.seed
        return BiasedMFNet(self.num_users + 1, self.num_items + 1, cfg.factors, self.mu_, cfg.init_std, seed)

    def training_batches(self, train: Interactions) -> tuple[BatchFn, int]:
        assert train.rating is not None
        u = torch.as_tensor(train.user_idx)
        i = torch.as_tensor(train.item_idx)
        r = torch.as_tensor(train.rating, dtype=torch.float32)
        bs = self.config.batch_size

        def batches(epoch: int, gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
            perm = torch.randperm(len(r), generator=gen)
            for idx in perm.split(bs):
                yield u[idx], i[idx], r[idx]

        return batches, math.ceil(len(r) / bs)

    def training_loss(self, net: nn.Module, train: Interactions) -> LossFn:
        l2 = self.config.l2

        def loss_fn(batch: tuple[Tensor, Tensor, Tensor], gen: torch.Generator) -> tuple[Tensor, int]:
            bu, bi, ratings = batch
            pred, penalty = net(bu, bi)
            return torch.mean((ratings - pred) ** 2) + l2 * penalty, len(ratings)

        return loss_fn  # type: ignore[return-value]

    def validation(self, net: nn.Module, train: Interactions, valid: Interactions | None) -> ValidateFn | None:
        if valid is None or len(valid) == 0 or valid.rating is None:
            return None
        rating = valid.rating

        def validate() -> dict[str, float]:
            self.after_fit(net)
            err = self.predict_ratings(valid.user_idx, valid.item_idx) - rating
            return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}

        return validate

    def after_fit(self, net: nn.Module) -> None:
        assert isinstance(net, BiasedMFNet)
        self._set_params(net, self.mu_, self.rating_range_)
        self.net_ = None  # inference runs on the numpy copies

    def _set_params(self, net: BiasedMFNet, mu: float, rating_range: tuple[float, float]) -> None:
        """Float32 numpy copies of the net's parameters (inference and persistence use them)."""

        def array(t: Tensor) -> np.ndarray:
            return t.detach().cpu().numpy().astype(np.float32, copy=True)

        self.mu_, self.rating_range_ = mu, rating_range
        self.user_factors_ = array(net.user_factors.weight)
        self.item_factors_ = array(net.item_factors.weight)
        self.user_bias_ = array(net.user_bias.weight[:, 0])
        self.item_bias_ = array(net.item_bias.weight[:, 0])

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predicted ratings ``(n,)`` float64 for index pairs (0 = unknown user or item)."""
        self._check_fitted()
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        u = np.where((u > 0) & (u < len(self.user_bias_)), u, 0)
        i = np.where((i > 0) & (i < len(self.item_bias_)), i, 0)
        pred = (
            self.mu_
            + self.user_bias_[u]
            + self.item_bias_[i]
            + np.einsum("nf,nf->n", self.user_factors_[u], self.item_factors_[i])
        ).astype(np.float64)
        return np.clip(pred, *self.rating_range_) if self.config.clip else pred

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        u = np.asarray(user_idx, dtype=np.int64)
        u = np.where(u < len(self.user_bias_), u, 0)
        out = (
            self.mu_
            + self.user_bias_[u][:, None]
            + self.item_bias_[None, :]
            + self.user_factors_[u] @ self.item_factors_.T
        )
        if self.config.clip:
            out = np.clip(out, *self.rating_range_)
        out = out.astype(np.float32)
        out[:, 0] = -np.inf
        return out

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "user_bias": self.user_bias_,
            "item_bias": self.item_bias_,
        }

    def _get_meta(self) -> dict[str, object]:
        return {
            "mu": self.mu_,
            "rating_range": list(self.rating_range_),
            "train_info": self.train_info_,
            "history": self.history_,
        }

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
        self.user_bias_ = arrays["user_bias"]
        self.item_bias_ = arrays["item_bias"]
        self.mu_ = float(meta["mu"])  # type: ignore[arg-type]
        bounds = list(meta["rating_range"])  # type: ignore[call-overload]
        self.rating_range_ = (float(bounds[0]), float(bounds[1]))
        self.train_info_ = dict(meta.get("train_info") or {})  # type: ignore[call-overload]
        history = self.train_info_.pop("history", None) or meta.get("history") or []
        self.history_ = list(history)  # type: ignore[arg-type]
