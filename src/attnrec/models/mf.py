"""Biased matrix factorisation for explicit ratings.

Y. Koren, R. Bell, C. Volinsky. "Matrix Factorization Techniques for Recommender Systems." IEEE Computer 42(8),
2009.

``r_hat(u, i) = mu + b_u + b_i + p_u . q_i`` fitted to the observed ratings by minimising
``mean((r - r_hat)^2) + l2 * mean(b_u^2 + b_i^2 + |p_u|^2 + |q_i|^2)`` over shuffled minibatches with Adam
(torch, CPU). ``mu`` is the training mean and stays fixed. When the validation events carry ratings, training
stops once validation RMSE has not improved for ``patience`` epochs and the best epoch's parameters are kept.
Unknown users (index 0) predict ``mu + b_i``, unknown items ``mu + b_u``.

``score_indices`` returns the predicted rating of every item, so top-k ranks by predicted rating. The model does
not use histories: unknown users get the popularity fallback, flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import torch
from pydantic import Field

from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError, DataError, ModelFitError
from attnrec.training.options import TrainingOptions


class BiasedMFConfig(ModelConfig):
    """Hyperparameters of :class:`BiasedMF`."""

    factors: int = Field(32, ge=1, description="Dimension of the user and item factors p_u, q_i.")
    l2: float = Field(0.1, ge=0.0, description="L2 penalty on biases and factors of each rating in a batch.")
    learning_rate: float = Field(0.005, gt=0.0, description="Adam learning rate.")
    epochs: int = Field(40, ge=1, description="Maximum passes over the training ratings.")
    batch_size: int = Field(4096, ge=1, description="Ratings per minibatch.")
    init_std: float = Field(0.1, gt=0.0, description="Standard deviation of the initial factors.")
    patience: int = Field(5, ge=1, description="Epochs without validation-RMSE improvement before stopping.")
    clip: bool = Field(True, description="Clip predictions to the training rating range.")


class BiasedMF(Recommender):
    """Koren-style biased MF trained on explicit ratings (MAE/RMSE apply)."""

    name = "mf"
    config_class = BiasedMFConfig
    fit_kind = "epochs"
    citation = "Koren, Bell & Volinsky, Matrix Factorization Techniques for Recommender Systems, IEEE Computer 2009"
    uses_history = False
    predicts_ratings = True
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

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        old_threads = torch.get_num_threads()
        if options.threads:
            torch.set_num_threads(options.threads)
        try:
            self._train(train, valid, options)
        finally:
            torch.set_num_threads(old_threads)

    def _train(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        cfg = self.config
        gen = torch.Generator().manual_seed(options.seed)
        nu, ni = train.num_users + 1, train.num_items + 1
        u = torch.as_tensor(train.user_idx)
        i = torch.as_tensor(train.item_idx)
        r = torch.as_tensor(train.rating, dtype=torch.float32)
        self.mu_ = float(r.mean())
        self.rating_range_ = (float(r.min()), float(r.max()))
        P = (torch.randn(nu, cfg.factors, generator=gen) * cfg.init_std).requires_grad_()
        Q = (torch.randn(ni, cfg.factors, generator=gen) * cfg.init_std).requires_grad_()
        with torch.no_grad():  # index 0 = unknown: no factor, no bias
            P[0] = 0.0
            Q[0] = 0.0
        bu = torch.zeros(nu, requires_grad=True)
        bi = torch.zeros(ni, requires_grad=True)
        params = [P, Q, bu, bi]
        opt = torch.optim.Adam(params, lr=cfg.learning_rate)
        has_valid = valid is not None and len(valid) > 0 and valid.rating is not None
        best = (float("inf"), -1, [p.detach().clone() for p in params])
        history = []
        for epoch in range(cfg.epochs):
            perm = torch.randperm(len(r), generator=gen)
            total = 0.0
            for start in range(0, len(r), cfg.batch_size):
                idx = perm[start : start + cfg.batch_size]
                bu_, bi_, p_, q_ = bu[u[idx]], bi[i[idx]], P[u[idx]], Q[i[idx]]
                pred = self.mu_ + bu_ + bi_ + (p_ * q_).sum(1)
                mse = torch.mean((r[idx] - pred) ** 2)
                penalty = torch.mean(bu_**2 + bi_**2 + (p_**2).sum(1) + (q_**2).sum(1))
                loss = mse + cfg.l2 * penalty
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += mse.item() * len(idx)
            train_rmse = (total / len(r)) ** 0.5
            if not np.isfinite(train_rmse):
                raise ModelFitError(f"BiasedMF training diverged at epoch {epoch + 1} (loss is not finite)")
            row: dict[str, float] = {"epoch": epoch + 1, "train_rmse": train_rmse}
            self._set_params(params)
            if has_valid:
                assert valid is not None and valid.rating is not None
                err = self.predict_ratings(valid.user_idx, valid.item_idx) - valid.rating
                valid_rmse = float(np.sqrt(np.mean(err**2)))
                row["valid_rmse"] = valid_rmse
                if valid_rmse < best[0]:
                    best = (valid_rmse, epoch, [p.detach().clone() for p in params])
            history.append(row)
            if options.log is not None:
                options.log(row)
            options.report("BiasedMF", epoch + 1, cfg.epochs)
            if has_valid and epoch - best[1] >= cfg.patience:
                break
        if has_valid:
            self._set_params(best[2])
        self.train_info_ = {"history": history, "best_epoch": best[1] + 1 if has_valid else len(history)}

    def _set_params(self, params: list[torch.Tensor]) -> None:
        P, Q, bu, bi = (p.detach().numpy().astype(np.float32, copy=True) for p in params)
        self.user_factors_, self.item_factors_, self.user_bias_, self.item_bias_ = P, Q, bu, bi

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
        return {"mu": self.mu_, "rating_range": list(self.rating_range_), "train_info": self.train_info_}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
        self.user_bias_ = arrays["user_bias"]
        self.item_bias_ = arrays["item_bias"]
        self.mu_ = float(meta["mu"])  # type: ignore[arg-type]
        bounds = list(meta["rating_range"])  # type: ignore[call-overload]
        self.rating_range_ = (float(bounds[0]), float(bounds[1]))
        self.train_info_ = dict(meta.get("train_info") or {})  # type: ignore[call-overload]
