"""The explanation-contract check of the conformance suite passes on correct models and fails on broken ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from attnrec.models.ease import EASE
from attnrec.testing.conformance import check_explanation_contract


class Oracle:
    """Additive scores ``sum_i W[h_i, r]`` with an ``explain_indices`` that can be broken on purpose."""

    name = "oracle"
    uses_history = True
    supports_explain = True

    def __init__(self, broken: str | None = None) -> None:
        rng = np.random.default_rng(0)
        self.w = rng.random((11, 11))
        self.num_items = 10
        self.broken = broken

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.stack([self.w[np.asarray(h, dtype=np.int64)].sum(axis=0) for h in histories])
        out[:, 0] = -np.inf
        return out

    def explain_indices(self, history: np.ndarray, items: np.ndarray, *, top: int = 5) -> list[Any]:
        from attnrec.explain.methods import explain_history

        pairs = explain_history(self, history, items, top=top)
        if self.broken == "outside":
            return [[(9, 0.5)] for _ in items]
        if self.broken == "unsorted":
            return [list(reversed(p)) for p in pairs]
        if self.broken == "nan":
            return [[(i, float("nan")) for i, _ in p] for p in pairs]
        if self.broken == "too-many":
            return [[*p, *p] for p in pairs]
        return pairs


HISTORY = np.array([1, 2, 3, 4, 5])


def test_contract_holds_for_a_correct_model() -> None:
    check_explanation_contract(Oracle(), HISTORY, np.array([6, 7]), top=3)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("outside", "not in the history"),
        ("unsorted", "not largest first"),
        ("nan", "not finite"),
        ("too-many", "more than top=3"),
    ],
)
def test_contract_fails_for_broken_explanations(broken: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_explanation_contract(Oracle(broken), HISTORY, np.array([6, 7]), top=3)


def test_contract_fails_when_a_model_claims_to_explain_without_any_method() -> None:
    model = Oracle()
    model.uses_history = False  # occlusion needs histories; nothing else applies
    with pytest.raises(AssertionError, match="no explanation method applies"):
        check_explanation_contract(model, HISTORY, np.array([6]), top=3)


def test_a_model_that_does_not_explain_passes_by_saying_so() -> None:
    from attnrec.data.synthetic import block_interactions

    model = EASE(l2=1.0).fit(block_interactions(20, 20, num_groups=2, density=0.5, seed=0))
    check_explanation_contract(model, model.history(1), np.array([1]), top=3)
