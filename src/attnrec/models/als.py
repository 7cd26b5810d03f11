"""Implicit-feedback matrix factorisation by alternating least squares (through the ``implicit`` library).

Y. Hu, Y. Koren, C. Volinsky. "Collaborative Filtering for Implicit Feedback Datasets." ICDM 2008; with the
conjugate-gradient solver of G. Takács, I. Pilászy, D. Tikk, "Applications of the conjugate gradient method for
implicit feedback collaborative filtering", RecSys 2011.

Fitting is ``implicit.cpu.als.AlternatingLeastSquares`` on the binary user x item CSR matrix: preference 1 with
confidence ``alpha`` on observed cells, preference 0 with confidence 1 elsewhere (implicit's convention). A
training user scored with exactly the items it was trained on uses its learned factor; any other history (a
known user with new events, an unknown user) gets a factor recomputed in closed form from the item factors
(implicit's ``recalculate_user``), so the model is history-based.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from threadpoolctl import threadpool_limits

from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data.interactions import Interactions
from attnrec.errors import DataError
from attnrec.models._history import csr_from_state, csr_state, history_matrix
from attnrec.training.options import TrainingOptions
from attnrec.training.search_space import Choice, FloatRange, IntRange, SearchSpace


class ALSConfig(ModelConfig):
    """Hyperparameters of :class:`ALS` (names follow implicit's)."""

    factors: int = Field(64, ge=1, description="Number of latent factors.")
    regularization: float = Field(0.05, ge=0.0, description="L2 regularisation of user and item factors.")
    alpha: float = Field(
        2.0,
        gt=0.0,
        description="Confidence of observed cells (unobserved cells have confidence 1); implicit scales X by it.",
    )
    iterations: int = Field(15, ge=1, description="ALS sweeps (each solves all users, then all items).")

    search_space: ClassVar[SearchSpace] = {
        "factors": Choice((32, 64, 128, 256)),
        "regularization": FloatRange(1e-3, 1.0, log=True),
        "alpha": FloatRange(0.5, 50.0, log=True),
        "iterations": IntRange(5, 30),
    }
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


def _implicit_model(cfg: ALSConfig, threads: int, seed: int | None):  # type: ignore[no-untyped-def]
    from implicit.cpu.als import AlternatingLeastSquares

    with threadpool_limits(1, "blas"):
        return AlternatingLeastSquares(
            factors=cfg.factors,
            regularization=cfg.regularization,
            alpha=cfg.alpha,
            iterations=cfg.iterations,
            dtype=np.float32,
            num_threads=threads,
            random_state=seed,
        )


class ALS(Recommender):
    """Weighted implicit-feedback MF (Hu et al. 2008) via ``implicit``; folds in new histories."""

    name = "als"
    config_class = ALSConfig
    fit_kind = "iterations"
    citation = "Hu, Koren & Volinsky, Collaborative Filtering for Implicit Feedback Datasets, ICDM 2008"
    uses_history = True
    config: ALSConfig

    def fit(
        self, train: Interactions, valid: Interactions | None = None, *, options: TrainingOptions | None = None
    ) -> Self:
        """Fit on ``train``; raises :class:`~attnrec.errors.DataError` before touching any state when the
        training split is empty."""
        if len(train) == 0:
            raise DataError("als needs at least one training event to learn from; the training split is empty")
        return super().fit(train, valid, options=options)

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        self._threads = options.threads or 0  # implicit: 0 = all cores
        X = train.matrix(values="binary").astype(np.float32).tocsr()
        model = _implicit_model(self.config, self._threads, options.seed)
        with threadpool_limits(1, "blas"):
            model.fit(X, show_progress=False)  # implicit >= 0.5: user x item
        self._model = model
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        self.user_items_ = X

    def _user_vectors(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        H = history_matrix(histories, self.num_items)
        out = np.empty((len(histories), self.item_factors_.shape[1]), dtype=np.float32)
        n_train = self.user_items_.shape[0]
        redo = []
        for row, u in enumerate(np.asarray(user_idx).tolist()):
            if 0 < u < n_train and _same_row(self.user_items_, u, H, row):
                out[row] = self.user_factors_[u]
            else:
                redo.append(row)
        if redo:
            model = getattr(self, "_model", None) or _implicit_model(self.config, getattr(self, "_threads", 0), None)
            model.item_factors = self.item_factors_
            model.user_factors = self.user_factors_
            with threadpool_limits(1, "blas"):
                out[redo] = model.recalculate_user(np.asarray(redo), sp.csr_matrix(H[redo]))
            self._model = model
        return out

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        U = self._user_vectors(np.asarray(user_idx), histories)
        out = (U @ self.item_factors_.T).astype(np.float32)
        out[:, 0] = -np.inf
        return out

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            **csr_state("user_items", self.user_items_),
        }

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
        self.user_items_ = csr_from_state("user_items", arrays)


def _same_row(A: sp.csr_matrix, a: int, B: sp.csr_matrix, b: int) -> bool:
    """True when row ``a`` of ``A`` and row ``b`` of ``B`` hold the same column set (both sorted)."""
    ia = A.indices[A.indptr[a] : A.indptr[a + 1]]
    ib = B.indices[B.indptr[b] : B.indptr[b + 1]]
    return bool(np.array_equal(ia, ib))
