"""Item-based k-nearest-neighbour collaborative filtering.

B. Sarwar, G. Karypis, J. Konstan, J. Riedl. "Item-based collaborative filtering recommendation algorithms."
WWW 2001. M. Deshpande, G. Karypis. "Item-based top-N recommendation algorithms." ACM TOIS 22(1), 2004.

Cosine similarity between the item columns of the binary user x item matrix, optionally shrunk towards zero for
items with little support; each item keeps its ``neighbors`` most similar items (Deshpande & Karypis' model
size ``k``). A history scores item ``j`` by ``sum_{i in history} S[i, j]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data.interactions import Interactions
from attnrec.models._history import csr_from_state, csr_state, history_matrix
from attnrec.training.options import TrainingOptions
from attnrec.training.search_space import FloatRange, IntRange, SearchSpace


class ItemKNNConfig(ModelConfig):
    """Hyperparameters of :class:`ItemKNN`."""

    neighbors: int = Field(100, ge=1, description="Most similar items kept per item (model size k).")
    shrinkage: float = Field(
        0.0, ge=0.0, description="Added to the cosine denominator: S = co / (|x_i| |x_j| + shrinkage)."
    )
    min_similarity: float = Field(0.0, ge=0.0, description="Similarities at or below this value are dropped.")
    block_size: int = Field(1024, ge=1, description="Items per block when computing similarities (memory bound).")

    search_space: ClassVar[SearchSpace] = {
        "neighbors": IntRange(10, 1000, log=True),
        "shrinkage": FloatRange(0.0, 200.0),
    }
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


class ItemKNN(Recommender):
    """Item-item cosine kNN on the binary interaction matrix (scores = history @ S)."""

    name = "itemknn"
    config_class = ItemKNNConfig
    citation = (
        "Sarwar et al., Item-based collaborative filtering recommendation algorithms, WWW 2001; "
        "Deshpande & Karypis, Item-based top-N recommendation algorithms, ACM TOIS 2004"
    )
    uses_history = True
    config: ItemKNNConfig

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        cfg = self.config
        X = train.matrix(values="binary").astype(np.float32).tocsc()
        n = X.shape[1]
        norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).ravel()).astype(np.float32)
        k = min(cfg.neighbors, n - 1)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        XT = X.T.tocsr()
        for start in range(0, n, cfg.block_size):
            stop = min(n, start + cfg.block_size)
            co = np.asarray((XT[start:stop] @ X).todense(), dtype=np.float32)  # (block, n) co-occurrence counts
            sim = co / (norms[start:stop, None] * norms[None, :] + cfg.shrinkage + 1e-12)
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0  # no self-similarity
            sim[:, 0] = 0.0
            part = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (stop - start, 1))
            v = np.take_along_axis(sim, part, axis=1)
            keep = v > cfg.min_similarity
            r = np.repeat(np.arange(start, stop), part.shape[1]).reshape(part.shape)
            rows.append(r[keep])
            cols.append(part[keep])
            vals.append(v[keep])
        self.similarity_ = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n), dtype=np.float32
        )
        self.similarity_.sort_indices()

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        H = history_matrix(histories, self.num_items)
        out = np.asarray((H @ self.similarity_).todense(), dtype=np.float32)
        out[:, 0] = -np.inf
        return out

    def _get_state(self) -> dict[str, np.ndarray]:
        return csr_state("similarity", self.similarity_)

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        self.similarity_ = csr_from_state("similarity", arrays)
