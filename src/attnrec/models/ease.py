"""EASE: embarrassingly shallow autoencoder.

H. Steck. "Embarrassingly Shallow Autoencoders for Sparse Data." WWW 2019.

Closed form on the binary user x item matrix ``X``: ``P = (X^T X + l2 * I)^-1`` and ``B = I - P / diag(P)``
(column ``j`` divided by ``P[j, j]``), i.e. ``B[i, j] = -P[i, j] / P[j, j]`` off the diagonal and ``B[j, j] = 0``.
A history (binary vector ``x``) scores items by ``x @ B``. Fitting inverts a dense ``num_items x num_items``
matrix: fine up to ~20k items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from pydantic import Field

from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data.interactions import Interactions
from attnrec.models._history import history_matrix
from attnrec.training.options import TrainingOptions
from attnrec.training.search_space import FloatRange, SearchSpace


class EASEConfig(ModelConfig):
    """Hyperparameters of :class:`EASE`."""

    l2: float = Field(
        500.0, gt=0.0, description="L2 regularisation lambda added to the Gram matrix diagonal (Steck: 100-1000)."
    )

    search_space: ClassVar[SearchSpace] = {"l2": FloatRange(1.0, 20_000.0, log=True)}
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


class EASE(Recommender):
    """Linear item-item model with a zero diagonal, solved in closed form."""

    name = "ease"
    config_class = EASEConfig
    citation = "Steck, Embarrassingly Shallow Autoencoders for Sparse Data, WWW 2019"
    uses_history = True
    config: EASEConfig

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        X = train.matrix(values="binary")[:, 1:].astype(np.float64)  # drop the padding column
        G = np.asarray((X.T @ X).todense(), dtype=np.float64)
        G[np.diag_indices_from(G)] += self.config.l2
        P = np.linalg.inv(G)
        B = -P / np.diag(P)[None, :]
        B[np.diag_indices_from(B)] = 0.0
        n = B.shape[0]
        self.weights_ = np.zeros((n + 1, n + 1), dtype=np.float32)
        self.weights_[1:, 1:] = B

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        H = history_matrix(histories, self.num_items)
        out = np.asarray(H @ self.weights_, dtype=np.float32)
        out[:, 0] = -np.inf
        return out

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        self.weights_ = arrays["weights"]
