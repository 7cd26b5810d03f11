import numpy as np

from attnrec.data.synthetic import block_interactions
from attnrec.models.bpr import BPR
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions


class TestBPR(RecommenderConformance):
    def make_model(self) -> BPR:
        return BPR(factors=8, learning_rate=0.05, regularization=0.01, iterations=200)


def test_scores_are_factor_dot_products_with_item_bias() -> None:
    data = block_interactions(40, 40, num_groups=4, density=0.5, seed=1)
    model = BPR(factors=4, iterations=20).fit(data, options=TrainingOptions(seed=1, threads=1))
    assert model.user_factors_.shape == (41, 5)  # implicit appends the bias column
    np.testing.assert_allclose(model.user_factors_[1:, -1], 1.0)
    scores = model.score_indices(np.asarray([3]), [model.history(3)])
    np.testing.assert_allclose(scores[0, 1:], (model.item_factors_ @ model.user_factors_[3])[1:], rtol=1e-6)


def test_history_is_ignored() -> None:
    data = block_interactions(40, 40, num_groups=4, density=0.5, seed=1)
    model = BPR(factors=4, iterations=5).fit(data, options=TrainingOptions(seed=1, threads=1))
    a = model.score_indices(np.asarray([3]), [np.asarray([1, 2])])
    b = model.score_indices(np.asarray([3]), [np.asarray([30, 31])])
    np.testing.assert_array_equal(a, b)
