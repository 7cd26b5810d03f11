"""Why was this item recommended? Explanation methods, their protocol, and how faithful they are.

``explain(model, history, items, top=5, method=None) -> [Explanation]`` is the entry point;
``methods_for(model)`` lists a model's methods (its default first). See ``docs/explanations.md``.
"""

from attnrec.explain.base import Attribution, Explainer, ExplainError, Explanation, PositionExplainer
from attnrec.explain.methods import METHODS, default_method, explain, explain_history, methods_for

__all__ = [
    "METHODS",
    "Attribution",
    "ExplainError",
    "Explainer",
    "Explanation",
    "PositionExplainer",
    "default_method",
    "explain",
    "explain_history",
    "methods_for",
]
