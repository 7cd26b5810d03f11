import numpy as np

from attnrec.data.synthetic import block_interactions
from attnrec.models.userknn import UserKNN
from attnrec.testing.conformance import RecommenderConformance


class TestUserKNN(RecommenderConformance):
    def make_model(self) -> UserKNN:
        return UserKNN(neighbors=10)


def test_scores_equal_weighted_neighbour_sum() -> None:
    data = block_interactions(30, 20, num_groups=2, density=0.4, seed=6)
    X = data.matrix().toarray()
    hist = np.asarray([2, 3, 7])
    h = np.zeros(X.shape[1])
    h[hist] = 1.0
    norms = np.linalg.norm(X, axis=1)
    sims = (X @ h) / np.where(norms > 0, norms, 1.0) / np.linalg.norm(h)
    ranked = np.sort(sims)[::-1]
    # ties at the k-th similarity may pick different users: choose a k where the cut is unambiguous
    k = next(k for k in range(3, 20) if ranked[k - 1] > ranked[k])
    top = np.argsort(-sims, kind="stable")[:k]
    expected = sims[top] @ X[top]
    model = UserKNN(neighbors=k).fit(data)
    scores = model.score_indices(np.asarray([0]), [hist])
    np.testing.assert_allclose(scores[0, 1:], expected[1:], rtol=1e-5, atol=1e-6)


def test_known_user_is_not_its_own_neighbour() -> None:
    data = block_interactions(30, 20, num_groups=2, density=0.4, seed=6)
    model = UserKNN(neighbors=1).fit(data)
    hist = model.history(1)
    own = model.score_indices(np.asarray([1]), [hist])
    anon = model.score_indices(np.asarray([0]), [hist])
    # anonymously the best neighbour is user 1 itself (similarity 1): its own items score 1
    np.testing.assert_allclose(anon[0, hist], 1.0, rtol=1e-6)
    assert not np.allclose(own[0, 1:], anon[0, 1:])
