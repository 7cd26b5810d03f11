"""Recommendations as the JSON of ``docs/contracts.md``, with explanations (``because``) and titles when known.

One vocabulary with the REST service: ``user_id`` and ``item_id``. The keys ``user`` and ``item`` of attnrec
0.1 are still written next to them (same values) and will be removed in 0.3 (see ``CHANGELOG.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnrec.base import Recommender
from attnrec.explain.methods import METHODS, default_method, is_item_specific


def _title(features: Any | None, item_id: str) -> str | None:
    if features is None:
        return None
    return features.title(item_id)  # type: ignore[no-any-return]


HISTORY_LEVEL_METHODS = frozenset(name for name, e in METHODS.items() if not e.item_specific)
"""Explanation methods whose weights depend on the history only (the same ``because`` for every item)."""


METHOD_NOTES = {
    "attributes": "item attributes shared with the history that drove each recommended item",
    "field-search": "features whose removal together lowers each recommended item's score most",
    "field-occlusion": "features whose removal alone lowers each recommended item's score most",
    "field-attention": "feature-field pairs that attended to each other most (attention, not what drove the score)",
}
"""Notes of the methods whose reasons are not history items."""


def explanation_info(model: Recommender, explain_method: str | None) -> dict[str, Any]:
    """``{"method", "item_specific", "note"}``: how the ``because`` lists of ``model`` were made."""
    if not model.supports_explain:
        return {
            "method": None,
            "item_specific": False,
            "note": f"model {model.name!r} does not explain its recommendations",
        }
    import inspect

    method = explain_method
    if method is None:  # what explain_indices uses by default: its own default, else the registry's
        default = inspect.signature(model.explain_indices).parameters.get("method")
        own = None if default is None or default.default is inspect.Parameter.empty else default.default
        method = str(own) if own is not None else default_method(model)
    item_specific = is_item_specific(method)
    if method in METHOD_NOTES:
        note = METHOD_NOTES[method]
    elif item_specific:
        note = "history items that drove each recommended item"
    else:
        note = "what this history emphasises (the same for every recommended item)"
    return {"method": method, "item_specific": item_specific, "note": note}


def recommendations_payload(
    model: Recommender,
    *,
    users: Sequence[str] | None = None,
    histories: Sequence[Sequence[str]] | None = None,
    k: int = 10,
    explain: bool = False,
    exclude_seen: bool = True,
    features: Any | None = None,
    top_because: int = 5,
    explain_method: str | None = None,
) -> list[dict[str, Any]]:
    """``[{"user_id", "items": [{"item_id", "score", ["title"], ["because"]}], "fallback", ["explanation"]}]``.

    ``because`` lists what drove each recommendation with its weight (largest first): history items
    (``{"item_id", "weight", ["title"]}``) and, for models that read side information, item attributes or
    feature fields (``{"kind": "item_attribute" | "feature_field", "name", "weight"}``); it
    is empty when the answer is a fallback. With ``explain``, ``explanation`` (see :func:`explanation_info`)
    says how the lists were made, or that the model cannot explain itself (then no ``because`` is given).
    ``explain_method`` picks the model's explanation method (one of
    :func:`attnrec.explain.methods.methods_for`; None: the model's default). The deprecated keys ``user`` /
    ``item`` repeat ``user_id`` / ``item_id``.
    """
    assert model.users_ is not None and model.items_ is not None
    recs = model.recommend(users, histories=histories, k=k, exclude_seen=exclude_seen)
    info = explanation_info(model, explain_method) if explain else None
    can_explain = explain and model.supports_explain
    payload: list[dict[str, Any]] = []
    recs_uidx = [model.users_.get(u) if u else 0 for u in recs.users]
    for row, user in enumerate(recs.users):
        if histories is not None:
            hist = model.items_.indices(histories[row], unknown="drop")
        else:
            hist = model.history(model.users_.get(user))
        entries: list[dict[str, Any]] = []
        valid = recs.item_idx[row] > 0
        item_idx = recs.item_idx[row][valid]
        because: list[tuple[Any, ...]] = [() for _ in item_idx]
        if can_explain and len(hist) and not recs.fallback[row] and len(item_idx):
            explained = model.explain_attributions(
                np.asarray(hist), item_idx, top=top_because, method=explain_method, user_idx=int(recs_uidx[row])
            )
            because = [e.attributions for e in explained]
        for pos, idx in enumerate(item_idx.tolist()):
            item_id = model.items_.id(idx)
            entry: dict[str, Any] = {"item_id": item_id, "score": float(recs.scores[row][valid][pos])}
            title = _title(features, item_id)
            if title is not None:
                entry["title"] = title
            if can_explain:
                reasons = []
                for attribution in because[pos]:
                    weight = round(float(attribution.weight), 6)
                    if attribution.kind != "history_item":
                        reasons.append({"kind": attribution.kind, "name": attribution.name, "weight": weight})
                        continue
                    hid = model.items_.id(int(attribution.index))
                    reason: dict[str, Any] = {"item_id": hid, "weight": weight}
                    htitle = _title(features, hid)
                    if htitle is not None:
                        reason["title"] = htitle
                    reason["item"] = hid  # deprecated key (0.1), removed in 0.3
                    reasons.append(reason)
                entry["because"] = reasons
            entry["item"] = item_id  # deprecated key (0.1), removed in 0.3
            entries.append(entry)
        answer: dict[str, Any] = {
            "user_id": user,
            "items": entries,
            "fallback": recs.fallback_name(row),
        }
        if info is not None:
            answer["explanation"] = info
        answer["user"] = user  # deprecated key (0.1), removed in 0.3
        payload.append(answer)
    return payload
