"""The explanation methods by name, which apply to a model, and the entry point :func:`explain`.

=============== ============================================== ===============================================
method          needs                                          item-specific
=============== ============================================== ===============================================
``occlusion``   ``score_indices`` (any model using histories)  yes: score drop of the item per removed position
``rollout-grad`` transformer maps + input embeddings            yes: rollout x gradient x input
``rollout``     transformer ``attention_maps``                 no: what the history emphasises
``attention``   recurrent ``attention_weights``                no: the attention of the last state
``target-attention`` ``target_attention`` (NAIS, DIN)          yes: the item's attention over the history
``contribution`` ``target_contributions`` (NAIS)               yes: each history item's term of the score
``attributes``  ``attribute_contributions`` (content)          yes: shared attributes (``item_attribute``)
``field-search`` ``score_without_fields`` (AutoInt)            yes: fields whose joint removal lowers the score most
``field-occlusion`` ``score_without_fields`` (AutoInt)         yes: score drop per field read as missing
``field-attention`` ``field_attention`` (AutoInt)              yes: interacting field pairs (``feature_field``)
=============== ============================================== ===============================================

A model explains when its class sets ``supports_explain = True``. Its default method is its class attribute
``explain_method`` when it sets one, else the first method of :data:`PREFERENCE` that applies to it. The order
was chosen by ``benchmarks/explain_faithfulness.py`` on training histories (never the test split): removing the
3 history items ``occlusion`` ranks first lowers the recommended item's score more than removing 3 random or
the 3 most recent items for far more users than any attention-based method (``docs/explanations.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from attnrec.errors import ConfigError
from attnrec.explain.base import ExplainError, Explanation, PositionExplainer
from attnrec.explain.fields import FieldAttentionExplainer, FieldOcclusionExplainer, FieldSearchExplainer
from attnrec.explain.occlusion import OcclusionExplainer, OcclusionSearchExplainer
from attnrec.explain.recurrent import AttentionWeightsExplainer
from attnrec.explain.rollout import RolloutExplainer, RolloutGradExplainer
from attnrec.explain.target import AttributeExplainer, ContributionExplainer, TargetAttentionExplainer

METHODS: Mapping[str, PositionExplainer] = MappingProxyType(
    {
        e.name: e
        for e in (
            OcclusionSearchExplainer(),
            OcclusionExplainer(),
            RolloutGradExplainer(),
            RolloutExplainer(),
            AttentionWeightsExplainer(),
            TargetAttentionExplainer(),
            ContributionExplainer(),
            AttributeExplainer(),
            FieldSearchExplainer(),
            FieldOcclusionExplainer(),
            FieldAttentionExplainer(),
        )
    }
)
"""Every explanation method by name (read-only)."""

PREFERENCE: tuple[str, ...] = (
    "occlusion-search",
    "occlusion",
    "rollout-grad",
    "rollout",
    "attention",
    "target-attention",
    "contribution",
    "attributes",
    "field-search",
    "field-occlusion",
    "field-attention",
)
"""Order in which a model's default method is chosen (the first that applies)."""


def _model_name(model: Any) -> str:
    return str(getattr(model, "name", "") or type(model).__name__)


def explaining_models() -> list[str]:
    """Names of the registered models whose class explains (``supports_explain``)."""
    from attnrec.registry import available_models, get_model_class

    out = []
    for name in available_models():
        try:
            cls = get_model_class(name)
        except ImportError:  # an optional dependency is missing: that model cannot be used at all
            continue
        if getattr(cls, "supports_explain", False):
            out.append(name)
    return out


def methods_for(model: Any) -> list[str]:
    """The methods that can explain ``model`` (empty when it does not explain), its default first."""
    if not getattr(model, "supports_explain", False):
        return []
    usable = [m for m in PREFERENCE if METHODS[m].applies_to(model)]
    own = getattr(model, "explain_method", None)
    if own in usable:
        usable.remove(own)
        usable.insert(0, own)
    return usable


def default_method(model: Any) -> str:
    """The method ``explain`` uses for ``model`` when none is given; :class:`ExplainError` when it cannot explain."""
    usable = methods_for(model)
    if not usable:
        raise ExplainError(
            f"model {_model_name(model)!r} does not explain its recommendations; models that explain: "
            f"{', '.join(explaining_models()) or 'none installed'}"
        )
    return usable[0]


def get_explainer(model: Any, method: str | None = None) -> PositionExplainer:
    """The explainer of ``method`` (None: the model's default) after checking that it applies to ``model``."""
    chosen = default_method(model) if method is None else method
    usable = methods_for(model)
    if chosen not in usable:
        if not usable:
            default_method(model)  # raises the "does not explain" error
        known = "" if chosen in METHODS else f" (methods: {', '.join(METHODS)})"
        raise ExplainError(
            f"the 'method' parameter must be one that model {_model_name(model)!r} supports: "
            f"{', '.join(usable)}; got {chosen!r}{known}"
        )
    return METHODS[chosen]


def explain(
    model: Any,
    history: np.ndarray,
    items: np.ndarray,
    *,
    top: int = 5,
    method: str | None = None,
    user: int | None = None,
) -> list[Explanation]:
    """Why each of ``items`` was recommended after ``history``.

    Args:
        model: a fitted recommender whose class explains (``supports_explain``).
        history: item indices, oldest first.
        items: item indices of the recommended items.
        top: most attributions per explanation (``>= 1``).
        method: a name of :data:`METHODS` the model supports; None: :func:`default_method`.
        user: the user's index, for explanations that depend on who asks (``field-attention``: the user's id
            and feature fields; the occlusions score the shortened histories for this user, which matters for a
            model with user features such as DIN); None or 0: an unknown user. Other methods ignore it.

    Returns:
        One :class:`Explanation` per item, in the order of ``items``; attributions largest first, only positive
        weights, at most ``top``. Empty histories give empty explanations.

    Raises:
        ExplainError: the model does not explain, or not with ``method`` (one line naming both).
        ConfigError: ``top < 1``.
    """
    if isinstance(top, bool) or not isinstance(top, int | np.integer) or top < 1:
        raise ConfigError(f"the 'top' parameter of explain must be an int >= 1; got {top!r}")
    explainer = get_explainer(model, method)
    hist, its = np.asarray(history, dtype=np.int64), np.asarray(items, dtype=np.int64)
    return explainer.explain(model, hist, its, int(top), user=int(user or 0))


def explain_history(
    model: Any, history: np.ndarray, items: np.ndarray, *, top: int = 5, method: str | None = None
) -> list[list[tuple[int, float]]]:
    """Per recommended item, the ``top`` history items ``(item index, weight)`` that drove it, largest first
    (the shape of ``Recommender.explain_indices``); see :func:`explain`."""
    return [e.history_pairs() for e in explain(model, history, items, top=top, method=method)]


def is_item_specific(method: str) -> bool:
    """Whether ``method`` can explain two items of one history differently (unknown names: True)."""
    explainer = METHODS.get(method)
    return True if explainer is None else bool(explainer.item_specific)
