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


class BatchDependentEASE(EASE):
    """EASE whose scores shift with the size of the batch they are computed in."""

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return super().score_indices(user_idx, histories) + np.float32(len(user_idx))


class HistoryBlindEASE(EASE):
    """EASE that answers every history of a user with the stored one (it claims to use histories)."""

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return super().score_indices(user_idx, [self.history(int(u)) for u in user_idx])


def _fitted(model: Recommender) -> tuple[RecommenderConformance, tuple[Recommender, Interactions]]:
    class Suite(RecommenderConformance):
        def make_model(self) -> Recommender:
            return model

    suite = Suite()
    data = suite.block_data()
    return suite, (suite.fit(model, data), data)


def test_batch_composition_check_fails_when_scores_depend_on_the_batch() -> None:
    suite, fitted = _fitted(EASE(l2=1.0))
    suite.test_scores_do_not_depend_on_batch_composition(fitted)
    suite, fitted = _fitted(BatchDependentEASE(l2=1.0))
    with pytest.raises(AssertionError):
        suite.test_scores_do_not_depend_on_batch_composition(fitted)


def test_history_check_fails_for_a_model_that_ignores_new_events() -> None:
    suite, fitted = _fitted(HistoryBlindEASE(l2=1.0))
    with pytest.raises(AssertionError, match="left its scores unchanged"):
        suite.test_a_new_event_changes_the_scores_of_a_history_model(fitted)
