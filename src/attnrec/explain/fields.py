"""Explanations by feature field: which fields a field-interaction model (AutoInt) relied on.

``field-search`` (AutoInt's default) and ``field-occlusion`` need ``field_names`` and
``score_without_fields(user_idx, items, dropped)``: a field is removed by reading it as missing (a zero embedding,
as an absent feature value is read). ``field-occlusion`` weighs each field by the item's score drop when that
field alone is missing; ``field-search`` finds the fields whose removal *together* lowers the score most
(greedily) and weighs each by the drop it added. Explanations list :class:`~attnrec.explain.base.Attribution` s of
kind ``"feature_field"`` named after the field and, where the model gives it (``field_values``), the pair's
value: ``"user.gender=M"``, ``"item.genre=Drama|War"``; weighted by their shares of those score drops;
:func:`attnrec.explain.faithfulness.field_faithfulness` measures how much removing the fields they name matters
against random fields and against the fields named most often (``docs/explanations.md``).

``field-attention`` needs ``field_attention(user_idx, items) -> ((len(items), M, M), names)``: for each item, the
attention of every field to every other field (averaged over the model's layers and heads). An explanation lists
the field pairs with the largest symmetric attention as :class:`~attnrec.explain.base.Attribution` s of kind
``"feature_field"`` named ``"user.age x item.genre"`` (shares of the off-diagonal attention, summing to 1). Such a
model does not read the history, so no history position carries relevance (:meth:`relevance` is all zero).
Its field weights (:meth:`FieldExplainer.field_weights`) are each field's share of the named pairs.

Both explain the pair (``user``, item): without ``user=`` (a user index) that is an unknown user (no user id, no
user features).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnrec.explain.base import Attribution, Explanation, PositionExplainer, normalised_positive, read_part


class FieldExplainer(PositionExplainer):
    """A method that weighs feature fields, not history positions: :meth:`field_weights` per item."""

    item_specific = True

    def field_weights(self, model: Any, user: int, items: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """``((len(items), M) weights, names)``: how much each field carried each item's score."""
        raise NotImplementedError

    def field_order(self, model: Any, user: int, items: np.ndarray, k: int) -> np.ndarray:
        """``(len(items), k)``: the ``k`` fields the explanation of each item names first (largest weight first)."""
        weights, _ = self.field_weights(model, user, items)
        return np.argsort(-weights, axis=1, kind="stable")[:, :k]

    def relevance(
        self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None, user: int = 0
    ) -> np.ndarray:
        return np.zeros((len(items), len(read_part(model, history))))


def _labels(model: Any, user: int, item: int, names: list[str]) -> list[str]:
    """``"user.gender=M"`` where the model gives the pair's field values (``field_values``), else the names."""
    values = model.field_values(int(user), int(item)) if callable(getattr(model, "field_values", None)) else None
    if values is None:
        return names
    return [f"{n}={v}" if v else n for n, v in zip(names, values, strict=True)]


class FieldOcclusionExplainer(FieldExplainer):
    """``field-occlusion``: the score drop of the item when each field alone is read as missing."""

    name = "field-occlusion"

    def applies_to(self, model: Any) -> bool:
        return callable(getattr(model, "score_without_fields", None)) and hasattr(model, "field_names")

    def field_weights(self, model: Any, user: int, items: np.ndarray) -> tuple[np.ndarray, list[str]]:
        items = np.asarray(items, dtype=np.int64)
        names = list(model.field_names)
        m = len(names)
        dropped = np.zeros((len(items), m + 1, m), dtype=bool)
        dropped[:, 1:, :] = np.eye(m, dtype=bool)  # row 0: nothing dropped; row 1 + f: field f dropped
        scores = model.score_without_fields(int(user), np.repeat(items, m + 1), dropped.reshape(-1, m))
        scores = np.asarray(scores, dtype=np.float64).reshape(len(items), m + 1)
        return scores[:, :1] - scores[:, 1:], names

    def explain(
        self, model: Any, history: np.ndarray, items: np.ndarray, top: int, *, user: int = 0
    ) -> list[Explanation]:
        items = np.asarray(items, dtype=np.int64)
        if len(items) == 0:
            return []
        weights, names = self.field_weights(model, user, items)
        shares = normalised_positive(weights)  # as every method: shares of the positive drops
        out = []
        for item, row in zip(items.tolist(), shares, strict=True):
            order = np.argsort(-row, kind="stable")[:top]
            labels = _labels(model, user, item, names)
            attributions = tuple(
                Attribution("feature_field", float(row[f]), name=labels[f]) for f in order if row[f] > 0
            )
            out.append(Explanation(int(item), self.name, attributions))
        return out


class FieldSearchExplainer(FieldOcclusionExplainer):
    """``field-search``: the fields whose removal *together* lowers the item's score most, found greedily.

    Step 1 reads each field alone as missing (``field-occlusion``); each later step keeps the fields chosen so far
    missing and adds the field whose removal lowers the score most; weight = the drop that field added. The search
    stops at ``top`` fields or when no further field lowers the score. About ``M · top`` scored rows per item for
    ``M`` fields. Fields that stand in for each other (one missing, another carries the same information) are not
    named twice, which the largest single drops do. :meth:`field_weights` gives the single drops (the first
    step); :meth:`field_order` the search's order."""

    name = "field-search"

    def _search(self, model: Any, user: int, item: int, steps: int) -> tuple[list[int], list[float], np.ndarray]:
        """(chosen fields in order, the drop each added, the single-field drops)."""
        m = len(model.field_names)
        chosen: list[int] = []
        added: list[float] = []
        singles = np.zeros(m)
        base: float | None = None
        current = 0.0  # drop of the fields chosen so far
        for _ in range(min(steps, m)):
            rest = [f for f in range(m) if f not in chosen]
            dropped = np.zeros((len(rest) + 1, m), dtype=bool)
            dropped[1:, chosen] = True
            dropped[np.arange(1, len(rest) + 1), rest] = True
            rows = np.full(len(rest) + 1, item, dtype=np.int64)
            scores = np.asarray(model.score_without_fields(int(user), rows, dropped), dtype=np.float64)
            base = float(scores[0]) if base is None else base
            drops = base - scores[1:]
            if not chosen:
                singles[rest] = drops
            best = int(np.argmax(drops))
            if drops[best] - current <= 0:
                break
            chosen.append(rest[best])
            added.append(float(drops[best] - current))
            current = float(drops[best])
        return chosen, added, singles

    def field_order(self, model: Any, user: int, items: np.ndarray, k: int) -> np.ndarray:
        out = []
        for item in np.asarray(items, dtype=np.int64).tolist():
            chosen, _, singles = self._search(model, user, item, k)
            others = [f for f in np.argsort(-singles, kind="stable").tolist() if f not in chosen]
            out.append((chosen + others)[:k])
        return np.asarray(out, dtype=np.int64).reshape(len(out), k)

    def explain(
        self, model: Any, history: np.ndarray, items: np.ndarray, top: int, *, user: int = 0
    ) -> list[Explanation]:
        names = list(model.field_names)
        out = []
        for item in np.asarray(items, dtype=np.int64).tolist():
            chosen, added, _ = self._search(model, user, item, top)
            total = sum(added)  # every added drop is positive: weights are their shares
            labels = _labels(model, user, item, names)
            ranked = sorted(zip(chosen, added, strict=True), key=lambda fw: -fw[1])  # largest weight first
            attributions = tuple(Attribution("feature_field", w / total, name=labels[f]) for f, w in ranked)
            out.append(Explanation(int(item), self.name, attributions))
        return out


class FieldAttentionExplainer(FieldExplainer):
    """``field-attention``: the field pairs that interacted most in a prediction (item-specific)."""

    name = "field-attention"

    def applies_to(self, model: Any) -> bool:
        return callable(getattr(model, "field_attention", None))

    def field_weights(self, model: Any, user: int, items: np.ndarray) -> tuple[np.ndarray, list[str]]:
        attention, names = model.field_attention(int(user), np.asarray(items, dtype=np.int64))
        return field_relevance(attention), list(names)

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


def pair_shares(attention: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, shares)``: the unordered field pairs ``(rows[p], cols[p])`` (``rows < cols``) and, per item,
    their symmetric attention ``(a_mk + a_km) / 2`` (self-attention left out) as shares summing to 1:
    ``shares`` is ``(items, pairs)`` for ``attention`` ``(items, M, M)``."""
    a = np.asarray(attention, dtype=np.float64)
    iu, ju = np.triu_indices(a.shape[-1], k=1)
    pair = (a[:, iu, ju] + a[:, ju, iu]) / 2.0
    total = pair.sum(axis=1, keepdims=True)
    return iu, ju, np.divide(pair, total, out=pair.copy(), where=total > 0)


def field_relevance(attention: np.ndarray) -> np.ndarray:
    """``(items, M)``: each field's part of the explanation, half the summed shares of the pairs it belongs to (rows
    sum to 1): the fields a ``field-attention`` explanation names most."""
    iu, ju, shares = pair_shares(attention)
    m = np.asarray(attention).shape[-1]
    out = np.zeros((shares.shape[0], m))
    np.add.at(out.T, iu, shares.T / 2.0)
    np.add.at(out.T, ju, shares.T / 2.0)
    return out


def field_pairs(attention: np.ndarray, names: list[str]) -> list[list[tuple[str, float]]]:
    """Unordered field pairs ranked by their symmetric attention ``(a_mk + a_km) / 2`` (self-attention left out),
    as shares summing to 1 per item: ``[[("user.age x item.genre", 0.31), ...], ...]``."""
    iu, ju, shares = pair_shares(attention)
    out = []
    for row in shares:
        order = np.argsort(-row, kind="stable")
        out.append([(f"{names[iu[j]]} x {names[ju[j]]}", float(row[j])) for j in order])
    return out


__all__ = [
    "FieldAttentionExplainer",
    "FieldExplainer",
    "FieldOcclusionExplainer",
    "FieldSearchExplainer",
    "field_pairs",
    "field_relevance",
    "pair_shares",
]
