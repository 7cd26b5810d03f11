import numpy as np

from attnrec.data.synthetic import block_interactions
from attnrec.models.als import ALS
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions


class TestALS(RecommenderConformance):
    def make_model(self) -> ALS:
        # the checkerboard has rank 4 (one factor per block); more factors fit noise on 40 users
        return ALS(factors=4, regularization=0.1, alpha=5.0, iterations=10)


def test_known_user_scores_are_factor_dot_products() -> None:
    data = block_interactions(40, 40, num_groups=4, density=0.5, seed=1)
    model = ALS(factors=6, iterations=5).fit(data, options=TrainingOptions(seed=1, threads=1))
    u = 5
    scores = model.score_indices(np.asarray([u]), [model.history(u)])
    np.testing.assert_allclose(scores[0, 1:], (model.item_factors_ @ model.user_factors_[u])[1:], rtol=1e-5)


def test_folded_in_history_solves_the_weighted_least_squares() -> None:
    data = block_interactions(40, 40, num_groups=4, density=0.5, seed=1)
    reg, alpha = 0.1, 3.0
    model = ALS(factors=6, regularization=reg, alpha=alpha, iterations=5).fit(
        data, options=TrainingOptions(seed=1, threads=1)
    )
    hist = np.asarray([3, 4, 7])
    Y = model.item_factors_.astype(np.float64)
    c = np.ones(Y.shape[0])
    c[hist] = alpha
    p = np.zeros(Y.shape[0])
    p[hist] = 1.0
    # Hu et al.: x_u = (Y^T C_u Y + reg I)^-1 Y^T C_u p_u
    x = np.linalg.solve(Y.T @ (c[:, None] * Y) + reg * np.eye(Y.shape[1]), Y.T @ (c * p))
    scores = model.score_indices(np.asarray([0]), [hist])
    np.testing.assert_allclose(scores[0, 1:], (Y @ x)[1:], rtol=1e-3, atol=1e-4)
