"""Attention explanations of transformer recommenders (the names of attnrec 0.1, kept working).

The methods now live in :mod:`attnrec.explain.rollout` (``rollout``, ``rollout-grad``, parameterised by the
attention mask and the query position), :mod:`attnrec.explain.occlusion` and :mod:`attnrec.explain.recurrent`;
:func:`attnrec.explain.methods.explain` is the entry point. This module re-exports what cli, serving and the
demo import.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from attnrec.explain.methods import METHODS as _ALL_METHODS
from attnrec.explain.methods import explain_history, get_explainer
from attnrec.explain.rollout import attention_rollout, gradient_relevance, last_position_weights

Method = Literal["rollout", "rollout-grad", "occlusion", "attention"]
METHODS: tuple[str, ...] = tuple(_ALL_METHODS)

__all__ = [
    "METHODS",
    "Method",
    "attention_rollout",
    "explain_history",
    "gradient_relevance",
    "last_position_weights",
    "position_weights",
]


def position_weights(model: Any, history: np.ndarray, items: np.ndarray, *, method: str = "rollout") -> np.ndarray:
    """``(len(items), n)`` weights of ``method`` over the ``n`` history positions the model reads (its last
    ``max_seq_len`` items); rows sum to 1 (or are 0 when nothing drove the item)."""
    explainer = get_explainer(model, method)
    return explainer.position_weights(model, np.asarray(history, dtype=np.int64), np.asarray(items, dtype=np.int64))
