"""Attention weights of recurrent models (NARM: GRU/LSTM encoder, attention of the last state over all states).

A recurrent model explains itself through ``attention_weights(histories) -> [np.ndarray per history]``: one
weight per item the model read (the last ``max_seq_len`` items), in history order. The weights say how much
each item's hidden state enters the session representation that scores every candidate, so they are the same
for every recommended item. Additive attention (NARM's ``v^T sigmoid(A1 h_t + A2 h_j)``) is not a
distribution and can be negative: negative weights count as 0 and the rest are re-normalised.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnrec.explain.base import ExplainError, PositionExplainer, read_part


class AttentionWeightsExplainer(PositionExplainer):
    """``attention``: a recurrent model's attention weights over its history (the same for every item)."""

    name = "attention"
    item_specific = False

    def applies_to(self, model: Any) -> bool:
        return callable(getattr(model, "attention_weights", None))

    def relevance(
        self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None, user: int = 0
    ) -> np.ndarray:
        read = read_part(model, history)
        weights = np.asarray(model.attention_weights([read])[0], dtype=np.float64).reshape(-1)
        if len(weights) > len(read):
            raise ExplainError(
                f"{getattr(model, 'name', type(model).__name__)}.attention_weights returned {len(weights)} weights "
                f"for a history of {len(read)} items; expected one per item"
            )
        # a model that reads fewer items than given: the older ones get no weight
        full = np.zeros(len(read))
        full[len(read) - len(weights) :] = weights
        return np.repeat(full[None, :], len(np.asarray(items)), axis=0)
