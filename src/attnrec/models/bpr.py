"""Bayesian personalised ranking matrix factorisation (through the ``implicit`` library).

S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme. "BPR: Bayesian Personalized Ranking from Implicit
Feedback." UAI 2009.

Fitting is ``implicit.cpu.bpr.BayesianPersonalizedRanking`` (SGD over sampled (user, positive, negative)
triples) on the binary user x item CSR matrix. implicit appends an item-bias column to the factors (user column
fixed to 1), so ``score = user_factors @ item_factors.T`` includes the bias. A user's factor only exists for
training users: the model does not use histories (``uses_history = False``) and unknown users get the
popularity fallback, flagged. With more than one thread implicit's SGD is lock-free (Hogwild) and not
bit-for-bit reproducible; ``threads=1`` is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np
from pydantic import Field
from threadpoolctl import threadpool_limits

from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data.interactions import Interactions
from attnrec.errors import DataError
from attnrec.training.options import TrainingOptions
from attnrec.training.search_space import Choice, FloatRange, IntRange, SearchSpace


class BPRConfig(ModelConfig):
    """Hyperparameters of :class:`BPR` (names follow implicit's)."""

    factors: int = Field(64, ge=1, description="Number of latent factors (implicit adds one bias column).")
    learning_rate: float = Field(0.05, gt=0.0, description="SGD learning rate.")
    regularization: float = Field(0.01, ge=0.0, description="L2 regularisation of the factors.")
    iterations: int = Field(100, ge=1, description="Epochs over the observed interactions.")
    verify_negative_samples: bool = Field(
        True, description="Resample negatives that the user actually interacted with."
    )

    search_space: ClassVar[SearchSpace] = {
        "factors": Choice((32, 64, 128)),
        "learning_rate": FloatRange(0.005, 0.2, log=True),
        "regularization": FloatRange(1e-4, 0.1, log=True),
        "iterations": IntRange(50, 300, step=50),
    }
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


class BPR(Recommender):
    """Pairwise-ranking MF (Rendle et al. 2009) via ``implicit``; scores training users only."""

    name = "bpr"
    config_class = BPRConfig
    fit_kind = "iterations"
    citation = "Rendle et al., BPR: Bayesian Personalized Ranking from Implicit Feedback, UAI 2009"
    uses_history = False
    config: BPRConfig

    def fit(
        self, train: Interactions, valid: Interactions | None = None, *, options: TrainingOptions | None = None
    ) -> Self:
        """Fit on ``train``; raises :class:`~attnrec.errors.DataError` before touching any state when no
        training user has a negative item (one they have not interacted with)."""
        if len(train) == 0:
            raise DataError("bpr needs at least one training event to learn from; the training split is empty")
        seen = np.diff(train.matrix(values="binary").tocsr().indptr)  # distinct items per user
        seen = seen[seen > 0]
        if int(seen.min()) >= train.num_items:
            raise DataError(
                "bpr needs a training user with at least one item they have not interacted with (a negative) to "
                f"learn pairwise preferences; every one of the {len(seen)} training users has "
                f"interacted with all {train.num_items} items"
            )
        return super().fit(train, valid, options=options)

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        cfg = self.config
        X = train.matrix(values="binary").astype(np.float32).tocsr()
        with threadpool_limits(1, "blas"):
            model = BayesianPersonalizedRanking(
                factors=cfg.factors,
                learning_rate=cfg.learning_rate,
                regularization=cfg.regularization,
                iterations=cfg.iterations,
                verify_negative_samples=cfg.verify_negative_samples,
                dtype=np.float32,
                num_threads=options.threads or 0,
                random_state=options.seed,
            )
            model.fit(X, show_progress=False)  # implicit >= 0.5: user x item
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        u = np.asarray(user_idx, dtype=np.int64)
        u = np.where(u < self.user_factors_.shape[0], u, 0)
        out = (self.user_factors_[u] @ self.item_factors_.T).astype(np.float32)
        out[:, 0] = -np.inf
        return out

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
