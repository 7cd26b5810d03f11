"""EASE: embarrassingly shallow autoencoder.

H. Steck. "Embarrassingly Shallow Autoencoders for Sparse Data." WWW 2019.

Closed form on the binary user x item matrix ``X``: ``P = (X^T X + l2 * I)^-1`` and ``B = I - P / diag(P)``
(column ``j`` divided by ``P[j, j]``), i.e. ``B[i, j] = -P[i, j] / P[j, j]`` off the diagonal and ``B[j, j] = 0``.
A history (binary vector ``x``) scores items by ``x @ B``. Fitting inverts a dense ``num_items x num_items``
matrix: fine up to ~20k items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

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

    l2: float | None = Field(
        None,
        gt=0.0,
        description="L2 regularisation lambda added to the Gram matrix diagonal (None: from the data, "
        "15 x sqrt(training events per item); models.ease.l2_rule).",
    )

    search_space: ClassVar[SearchSpace] = {"l2": FloatRange(1.0, 20_000.0, log=True)}
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


L2_PER_SQRT_EVENTS = 15.0
"""The data rule's constant: ``l2 = 15 * sqrt(training events per item)``."""


def l2_rule(train: Interactions) -> tuple[float, str]:
    """The data rule for ``l2`` (with its reason): ``15 * sqrt(training events per item)``, rounded to 0.1.

    The Gram matrix's diagonal holds the item counts, so the regularisation that balances it grows with them.
    Chosen on validation: the best ``l2`` of a grid (25-2000) on the validation split of each dataset in
    ``../shared/data`` was 15 +- 1 times the square root of its training events per item (ML-100K 58 events per
    item, best 100-115; ML-1M 289, best 200-250; LastFM 14, best 50; Beauty 13, best 50); the rule's validation
    NDCG@10 is within 0.0006 of each grid's best, and above the former fixed default 500 on every one
    (docs/models/classic.md)."""
    per_item = len(train) / max(train.num_items, 1)
    value = round(L2_PER_SQRT_EVENTS * float(np.sqrt(per_item)), 1)
    return max(value, 0.1), f"15 x sqrt({per_item:.1f} training events per item)"


class EASE(Recommender):
    """Linear item-item model with a zero diagonal, solved in closed form."""

    name = "ease"
    config_class = EASEConfig
    citation = "Steck, Embarrassingly Shallow Autoencoders for Sparse Data, WWW 2019"
    uses_history = True
    config: EASEConfig

    def data_rules(self, train: Interactions, config: Any) -> dict[str, tuple[Any, str]]:
        return {"l2": l2_rule(train)} if config.l2 is None else {}

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        assert self.config.l2 is not None  # filled by the data rule
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
