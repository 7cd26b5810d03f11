"""Most-popular baseline: every user gets the items with the most training events."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data.interactions import Interactions
from attnrec.training.options import TrainingOptions


class PopularityConfig(ModelConfig):
    """Popularity has no learned hyperparameters besides how counts are taken."""

    distinct_users: bool = Field(
        True, description="Count each (user, item) pair once (true) or every repeated event (false)."
    )


class Popularity(Recommender):
    """Scores each item by its number of training interactions (a non-personalised baseline)."""

    name = "popularity"
    config_class = PopularityConfig
    citation = ""
    uses_history = False
    config: PopularityConfig

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        values = "binary" if self.config.distinct_users else "count"
        counts = np.asarray(train.matrix(values=values).sum(axis=0)).ravel().astype(np.float32)
        counts[0] = 0.0
        self.item_scores_ = counts

    def can_personalise(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        # popularity is the model itself, not a fallback
        return np.ones(len(user_idx), dtype=bool)

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.repeat(self.item_scores_[None, :], len(user_idx), axis=0)
        out[:, 0] = -np.inf
        return out

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores_}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        self.item_scores_ = arrays["item_scores"]
