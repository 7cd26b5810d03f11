"""Explanations of models that weigh the history per recommended item, or match item attributes.

* ``target-attention``: a model with ``target_attention(history, items) -> (len(items), n)`` (NAIS; DIN's
  activation unit has the same shape) weighs each history item separately for every candidate, so the
  explanation of each recommended item is its own attention over the past items (faithful for NAIS; DIN's
  weights are not, and DIN explains by ``occlusion-search``).
* ``contribution``: a model whose score is a sum of one term per history item (NAIS:
  ``b_i + sum_j a_ij p_j . q_i``) gives the terms with ``target_contributions(history, items) -> (len(items), n)``;
  the explanation of each recommended item is the history items with the largest positive terms (an item whose
  term is negative holds the recommendation back and gets no weight).
* ``attributes``: a content model with ``attribute_contributions(history, items) -> ((len(items), m), names)``
  credits the item attributes (genres, title words, ...) that the recommended item shares with the user's
  profile (:class:`~attnrec.explain.base.Attribution` of kind ``"item_attribute"``, by ``name``). Its
  per-position relevance (for faithfulness checks) is ``history_contributions(history, items)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnrec.explain.base import Attribution, ExplainError, Explanation, PositionExplainer, read_part


def _name(model: Any) -> str:
    return str(getattr(model, "name", "") or type(model).__name__)


def _right_aligned(model: Any, weights: np.ndarray, n: int, what: str) -> np.ndarray:
    """``(items, n)`` weights from a model that may read only the most recent ``weights.shape[1]`` positions."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] > n:
        raise ExplainError(f"{_name(model)}.{what} returned shape {weights.shape} for a history of {n} items")
    full = np.zeros((weights.shape[0], n))
    full[:, n - weights.shape[1] :] = weights
    return full


class _ModelWeightsExplainer(PositionExplainer):
    """A method whose relevance is a model method ``hook(history, items) -> (len(items), m)`` over the last ``m``
    read positions; the method applies to models that have ``applies_hook`` (``hook`` when None)."""

    item_specific = True
    hook: str = ""
    applies_hook: str | None = None

    def applies_to(self, model: Any) -> bool:
        return callable(getattr(model, self.applies_hook or self.hook, None))

    def relevance(
        self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None, user: int = 0
    ) -> np.ndarray:
        read = read_part(model, history)
        weights = getattr(model, self.hook)(read, np.asarray(items, dtype=np.int64))
        return _right_aligned(model, weights, len(read), self.hook)


class TargetAttentionExplainer(_ModelWeightsExplainer):
    """``target-attention``: the attention of each recommended item over the history (item-specific)."""

    name = "target-attention"
    hook = "target_attention"


class ContributionExplainer(_ModelWeightsExplainer):
    """``contribution``: the term each history item adds to a recommended item's score (item-specific)."""

    name = "contribution"
    hook = "target_contributions"


class AttributeExplainer(_ModelWeightsExplainer):
    """``attributes``: the item attributes a recommended item shares with the user's profile, weighted by their
    share of the item's score (item-specific); its per-position relevance is ``history_contributions``."""

    name = "attributes"
    hook = "history_contributions"
    applies_hook = "attribute_contributions"

    def explain(
        self, model: Any, history: np.ndarray, items: np.ndarray, top: int, *, user: int = 0
    ) -> list[Explanation]:
        history = np.asarray(history, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if len(history) == 0 or len(items) == 0:
            return [Explanation(int(i), self.name, ()) for i in items.tolist()]
        contributions, names = model.attribute_contributions(read_part(model, history), items)
        contributions = np.where(np.isfinite(contributions), np.clip(contributions, 0.0, None), 0.0)
        out = []
        for item, row in zip(items.tolist(), contributions, strict=True):
            total = float(row.sum())
            order = np.argsort(-row, kind="stable")[:top]
            attributions = tuple(
                Attribution("item_attribute", float(row[j] / total), name=str(names[j])) for j in order if row[j] > 0
            )
            out.append(Explanation(int(item), self.name, attributions))
        return out


__all__ = ["AttributeExplainer", "ContributionExplainer", "TargetAttentionExplainer"]
