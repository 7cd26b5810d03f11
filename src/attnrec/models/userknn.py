"""User-based k-nearest-neighbour collaborative filtering.

J. Herlocker, J. Konstan, A. Borchers, J. Riedl. "An algorithmic framework for performing collaborative
filtering." SIGIR 1999 (neighbourhood CF; here on implicit feedback with cosine similarity).

For a history ``h`` (any user, also one unknown at training time) the cosine similarity to every training user's
binary row is computed, the ``neighbors`` most similar training users are kept, and item ``j`` scores
``sum_{v in N(h)} sim(h, v) * X[v, j]``. A known user's own training row is left out of its neighbours.
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
from attnrec.training.search_space import IntRange, SearchSpace


class UserKNNConfig(ModelConfig):
    """Hyperparameters of :class:`UserKNN`."""

    neighbors: int = Field(50, ge=1, description="Most similar training users whose items are summed.")
    min_similarity: float = Field(0.0, ge=0.0, description="Neighbours at or below this similarity are ignored.")
    batch_size: int = Field(1024, ge=1, description="Histories scored per block (memory bound).")

    search_space: ClassVar[SearchSpace] = {"neighbors": IntRange(5, 500, log=True)}
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


class UserKNN(Recommender):
    """User-user cosine kNN; works for any history, so unknown users with a history are personalised."""

    name = "userknn"
    config_class = UserKNNConfig
    citation = "Herlocker et al., An algorithmic framework for performing collaborative filtering, SIGIR 1999"
    uses_history = True
    config: UserKNNConfig

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        self.user_items_ = train.matrix(values="binary").astype(np.float32).tocsr()

    def _normalised_users(self) -> sp.csr_matrix:
        X = self.user_items_
        norms = np.sqrt(np.asarray(X.sum(axis=1)).ravel())  # binary rows: |x|^2 = row sum
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return sp.csr_matrix(sp.diags(inv.astype(np.float32)) @ X)

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        cfg = self.config
        X = self.user_items_
        Xn = self._normalised_users()
        n_train = X.shape[0]
        out = np.empty((len(histories), X.shape[1]), dtype=np.float32)
        for start in range(0, len(histories), cfg.batch_size):
            stop = min(len(histories), start + cfg.batch_size)
            H = history_matrix(histories[start:stop], self.num_items)
            hn = np.sqrt(np.asarray(H.sum(axis=1)).ravel())
            hn = np.divide(1.0, hn, out=np.zeros_like(hn), where=hn > 0)
            sims = np.asarray((H @ Xn.T).todense(), dtype=np.float32) * hn[:, None].astype(np.float32)  # (b, U+1)
            uid = np.asarray(user_idx[start:stop])
            own = (uid > 0) & (uid < n_train)
            sims[np.flatnonzero(own), uid[own]] = 0.0
            k = min(cfg.neighbors, n_train)
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            vals = np.take_along_axis(sims, part, axis=1)
            vals = np.where(vals > cfg.min_similarity, vals, 0.0)
            rows = np.repeat(np.arange(stop - start), k)
            W = sp.csr_matrix((vals.ravel(), (rows, part.ravel())), shape=(stop - start, n_train), dtype=np.float32)
            out[start:stop] = np.asarray((W @ X).todense(), dtype=np.float32)
        out[:, 0] = -np.inf
        return out

    def _get_state(self) -> dict[str, np.ndarray]:
        return csr_state("user_items", self.user_items_)

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        self.user_items_ = csr_from_state("user_items", arrays)
