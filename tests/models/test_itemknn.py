import numpy as np

from attnrec.data.synthetic import block_interactions
from attnrec.models.itemknn import ItemKNN
from attnrec.testing.conformance import RecommenderConformance


class TestItemKNN(RecommenderConformance):
    def make_model(self) -> ItemKNN:
        return ItemKNN(neighbors=20)


def _cosine(X: np.ndarray, shrinkage: float = 0.0) -> np.ndarray:
    norms = np.sqrt((X**2).sum(axis=0))
    S = (X.T @ X) / (norms[:, None] * norms[None, :] + shrinkage + 1e-12)
    np.fill_diagonal(S, 0.0)
    return S


def test_scores_equal_explicit_cosine_sums() -> None:
    data = block_interactions(30, 20, num_groups=2, density=0.4, seed=4)
    model = ItemKNN(neighbors=100, shrinkage=2.0, block_size=7).fit(data)
    X = data.matrix().toarray()
    S = _cosine(X, shrinkage=2.0)
    hist = np.asarray([1, 3, 4])
    scores = model.score_indices(np.asarray([0]), [hist])
    np.testing.assert_allclose(scores[0, 1:], S[hist].sum(axis=0)[1:], rtol=1e-5, atol=1e-6)


def test_neighbour_pruning_keeps_the_most_similar() -> None:
    data = block_interactions(30, 20, num_groups=2, density=0.6, seed=5)
    k = 3
    model = ItemKNN(neighbors=k).fit(data)
    S_full = _cosine(data.matrix().toarray())
    S = model.similarity_.toarray()
    for i in range(1, 21):
        kept = np.flatnonzero(S[i])
        assert len(kept) <= k
        np.testing.assert_allclose(S[i, kept], S_full[i, kept], rtol=1e-5)
        # nothing dropped is more similar than something kept
        dropped = np.setdiff1d(np.arange(1, 21), np.append(kept, i))
        assert S_full[i, dropped].max(initial=0.0) <= S[i, kept].min() + 1e-6
