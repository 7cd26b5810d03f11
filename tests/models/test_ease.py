from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from attnrec.data.synthetic import block_interactions
from attnrec.models.ease import EASE
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions


class TestEASE(RecommenderConformance):
    def make_model(self) -> EASE:
        return EASE(l2=5.0)


def test_weights_equal_closed_form() -> None:
    data = block_interactions(12, 9, num_groups=2, density=0.6, seed=1)
    l2 = 3.0
    model = EASE(l2=l2).fit(data, options=TrainingOptions(seed=0))
    X = data.matrix().toarray()[1:, 1:]
    P = np.linalg.inv(X.T @ X + l2 * np.eye(X.shape[1]))
    B = np.eye(X.shape[1]) - P / np.diag(P)[None, :]
    np.testing.assert_allclose(model.weights_[1:, 1:], B, atol=1e-5)
    assert np.all(np.diag(model.weights_) == 0)
    # a score is the history vector times B
    hist = np.asarray([2, 5, 5])
    x = np.zeros(X.shape[1])
    x[[1, 4]] = 1.0
    scores = model.score_indices(np.asarray([0]), [hist])
    np.testing.assert_allclose(scores[0, 1:], x @ B, atol=1e-5)


def test_larger_l2_shrinks_weights() -> None:
    data = block_interactions(20, 12, num_groups=3, density=0.5, seed=2)
    small = EASE(l2=1.0).fit(data).weights_
    large = EASE(l2=100.0).fit(data).weights_
    assert np.abs(large).sum() < np.abs(small).sum()
    assert sp.issparse(data.matrix())


def test_default_l2_comes_from_the_data_and_is_saved(tmp_path: Path) -> None:
    dense = block_interactions(40, 10, num_groups=2, density=0.8, seed=3)
    sparse = block_interactions(40, 30, num_groups=2, density=0.2, seed=3)
    model = EASE().fit(dense)
    per_item = len(dense) / dense.num_items
    assert model.config.l2 == round(15.0 * np.sqrt(per_item), 1)
    assert model.train_info_["data_rules"]["l2"]["value"] == model.config.l2
    assert f"{per_item:.1f} training events per item" in model.train_info_["data_rules"]["l2"]["why"]
    # the same closed form as with that l2 given explicitly
    np.testing.assert_allclose(model.weights_, EASE(l2=model.config.l2).fit(dense).weights_, atol=1e-6)
    # a refit on other data applies the rule again (the request stays None); an explicit l2 is never replaced
    model.fit(sparse)
    assert model.config.l2 == round(15.0 * np.sqrt(len(sparse) / sparse.num_items), 1) < 15.0 * np.sqrt(per_item)
    assert model.requested_config_.l2 is None
    assert EASE(l2=7.0).fit(sparse).config.l2 == 7.0 and "data_rules" not in EASE(l2=7.0).fit(sparse).train_info_
    # the saved model holds the value used
    loaded = EASE.load(model.save(tmp_path / "ease"))
    assert loaded.config.l2 == model.config.l2
