"""The conformance checks themselves: they pass on a correct model and fail on broken ones."""

from collections.abc import Sequence

import numpy as np
import pytest

from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data.interactions import Interactions
from attnrec.models.ease import EASE
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions


class NextItemConfig(ModelConfig):
    pass


class NextItem(Recommender):
    """Oracle for planted sequences: scores item ``last + 1`` highest, then by closeness to ``last``."""

    name = "popularity"  # loadable through the registry name is irrelevant here
    config_class = NextItemConfig

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        pass

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        items = np.arange(self.num_items + 1, dtype=np.float32)
        last = np.asarray([h[-1] for h in histories], dtype=np.float32)
        out = -np.abs(items[None, :] - (last[:, None] + 1))
        out[:, 0] = -np.inf
        return out


class ShuffledEASE(EASE):
    """EASE whose item columns are permuted: planted structure is lost."""

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = super().score_indices(user_idx, histories)
        perm = np.r_[0, np.random.default_rng(0).permutation(np.arange(1, out.shape[1]))]
        return out[:, perm]


def test_sequential_check_passes_for_next_item_oracle() -> None:
    class Suite(RecommenderConformance):
        sequential = True

        def make_model(self) -> Recommender:
            return NextItem()

    Suite().test_planted_next_item()


def test_sequential_check_fails_for_order_blind_model() -> None:
    class Suite(RecommenderConformance):
        sequential = True

        def make_model(self) -> Recommender:
            return EASE(l2=1.0)

    with pytest.raises(AssertionError, match="ranked first"):
        Suite().test_planted_next_item()


def test_block_check_fails_when_structure_is_lost() -> None:
    class Suite(RecommenderConformance):
        def make_model(self) -> Recommender:
            return ShuffledEASE(l2=1.0)

    suite = Suite()
    data = suite.block_data()
    fitted = (suite.fit(suite.make_model(), data), data)
    with pytest.raises(AssertionError, match="outside their group"):
        suite.test_planted_blocks(fitted)
