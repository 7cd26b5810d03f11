"""CTR metrics (AUC against an O(n^2) pair count, log loss) and rating metrics (MAE/RMSE)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnrec.base import Recommender
from attnrec.data import IdVocabulary, Interactions
from attnrec.errors import ConfigError
from attnrec.evaluation import auc, evaluate_ratings, logloss


def auc_by_pairs(labels: Sequence[int], scores: Sequence[float]) -> float:
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    total = 0.0
    for p in pos:
        for n in neg:
            total += 1.0 if p > n else 0.5 if p == n else 0.0
    return total / (len(pos) * len(neg))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(-4, 4)), min_size=2, max_size=60))
def test_auc_equals_pair_count(rows: list[tuple[int, int]]) -> None:
    labels = [y for y, _ in rows]
    scores = [float(s) for _, s in rows]
    if len(set(labels)) < 2:
        with pytest.raises(ConfigError, match="auc"):
            auc(np.array(labels), np.array(scores))
        return
    assert auc(np.array(labels), np.array(scores)) == pytest.approx(auc_by_pairs(labels, scores))


def test_auc_hand_examples() -> None:
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.0
    assert auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5
    with pytest.raises(ConfigError, match="labels"):
        auc(np.array([0, 2]), np.array([0.1, 0.2]))


def test_logloss_formula() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.2, 0.5, 0.0])
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.5) + math.log(1.0)) / 4
    assert logloss(y, p) == pytest.approx(expected)
    assert logloss(np.array([1]), np.array([0.0])) == pytest.approx(-math.log(1e-15))  # clipped, finite
    with pytest.raises(ConfigError, match="probs"):
        logloss(y, np.array([0.5, 1.5, 0.5, 0.5]))
    with pytest.raises(ConfigError, match="same length"):
        logloss(y, np.array([0.5]))


class ConstantRating(Recommender):
    name = "constant-rating-test"
    predicts_ratings = True

    def _fit(self, train, valid, options) -> None:  # type: ignore[no-untyped-def]
        pass

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(user_idx), self.num_items + 1), dtype=np.float32)
        out[:, 0] = -np.inf
        return out

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return np.full(len(user_idx), 3.0) + 0.5 * (item_idx == 3)


def test_mae_rmse_hand_computed() -> None:
    users = IdVocabulary(["a", "b"], kind="user")
    items = IdVocabulary(["x", "y", "z"], kind="item")
    train = Interactions(users, items, np.array([1, 2]), np.array([1, 2]), rating=np.array([4.0, 2.0]))
    model = ConstantRating().fit(train)
    targets = Interactions(
        users, items, np.array([1, 1, 2]), np.array([1, 2, 3]), rating=np.array([1.0, 3.0, 5.0])
    ).sorted()
    # predictions 3, 3, 3.5 -> errors 2, 0, 1.5
    out = evaluate_ratings(model, targets, batch_size=2)
    assert out["mae"] == pytest.approx(3.5 / 3)
    assert out["rmse"] == pytest.approx(math.sqrt((4 + 0 + 2.25) / 3))
    with pytest.raises(ConfigError, match="rating"):
        evaluate_ratings(model, Interactions(users, items, np.array([1]), np.array([1])))
