"""Explanations by feature field: which pairs of fields a field-interaction model (AutoInt) attended between.

``field-attention`` needs ``field_attention(user_idx, items) -> ((len(items), M, M), names)``: for each item, the
attention of every field to every other field (averaged over the model's layers and heads). An explanation lists
the field pairs with the largest symmetric attention as :class:`~attnrec.explain.base.Attribution` s of kind
``"feature_field"`` named ``"user.age x item.genre"`` (shares of the off-diagonal attention, summing to 1). Such a
model does not read the history, so no history position carries relevance (:meth:`relevance` is all zero).

The protocol's :meth:`explain` has no user argument: called through it, the explanation is that of an unknown
user (no user id, no user features); pass ``user=`` (a user index) to explain a known user's pair.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnrec.explain.base import Attribution, Explanation, PositionExplainer, read_part


class FieldAttentionExplainer(PositionExplainer):
    """``field-attention``: the field pairs that interacted most in a prediction (item-specific)."""

    name = "field-attention"
    item_specific = True

    def applies_to(self, model: Any) -> bool:
        return callable(getattr(model, "field_attention", None))

    def relevance(
        self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None, user: int = 0
    ) -> np.ndarray:
        return np.zeros((len(items), len(read_part(model, history))))

    def explain(
        self, model: Any, history: np.ndarray, items: np.ndarray, top: int, *, user: int = 0
    ) -> list[Explanation]:
        items = np.asarray(items, dtype=np.int64)
        if len(items) == 0:
            return []
        attention, names = model.field_attention(int(user), items)
        out = []
        for item, pairs in zip(items.tolist(), field_pairs(attention, names), strict=True):
            attributions = tuple(Attribution("feature_field", w, name=n) for n, w in pairs[:top] if w > 0)
            out.append(Explanation(int(item), self.name, attributions))
        return out


def field_pairs(attention: np.ndarray, names: list[str]) -> list[list[tuple[str, float]]]:
    """Unordered field pairs ranked by their symmetric attention ``(a_mk + a_km) / 2`` (self-attention left out),
    as shares summing to 1 per item: ``[[("user.age x item.genre", 0.31), ...], ...]``."""
    m = len(names)
    iu, ju = np.triu_indices(m, k=1)
    out = []
    for a in np.asarray(attention, dtype=np.float64):
        pair = (a[iu, ju] + a[ju, iu]) / 2.0
        total = pair.sum()
        shares = pair / total if total > 0 else pair
        order = np.argsort(-shares, kind="stable")
        out.append([(f"{names[iu[j]]} x {names[ju[j]]}", float(shares[j])) for j in order])
    return out


__all__ = ["FieldAttentionExplainer", "field_pairs"]
