"""Recommendations as the JSON of CONTRACTS.md, with explanations (``because``) and titles when known."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnrec.base import Recommender


def _title(features: Any | None, item_id: str) -> str | None:
    if features is None:
        return None
    return features.title(item_id)  # type: ignore[no-any-return]


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
    """``[{"user", "items": [{"item", "score", ["title"], ["because"]}], "fallback"}]`` per request.

    ``because`` lists the history items that drove each recommendation with their weights (largest first); it
    is empty when the model cannot explain itself (``supports_explain`` false) or the answer is a fallback.
    ``explain_method`` picks the model's explanation method (SASRec: ``rollout`` or ``rollout-grad``).
    """
    assert model.users_ is not None and model.items_ is not None
    recs = model.recommend(users, histories=histories, k=k, exclude_seen=exclude_seen)
    payload: list[dict[str, Any]] = []
    for row, user in enumerate(recs.users):
        if histories is not None:
            hist = model.items_.indices(histories[row], unknown="drop")
        else:
            hist = model.history(model.users_.get(user))
        entries: list[dict[str, Any]] = []
        valid = recs.item_idx[row] > 0
        item_idx = recs.item_idx[row][valid]
        because: list[list[tuple[int, float]]] = [[] for _ in item_idx]
        if explain and model.supports_explain and len(hist) and not recs.fallback[row] and len(item_idx):
            extra = {} if explain_method is None else {"method": explain_method}
            because = model.explain_indices(np.asarray(hist), item_idx, top=top_because, **extra)
        for pos, idx in enumerate(item_idx.tolist()):
            item_id = model.items_.id(idx)
            entry: dict[str, Any] = {"item": item_id, "score": float(recs.scores[row][valid][pos])}
            title = _title(features, item_id)
            if title is not None:
                entry["title"] = title
            if explain:
                reasons = []
                for hidx, weight in because[pos]:
                    hid = model.items_.id(int(hidx))
                    reason: dict[str, Any] = {"item": hid, "weight": round(float(weight), 6)}
                    htitle = _title(features, hid)
                    if htitle is not None:
                        reason["title"] = htitle
                    reasons.append(reason)
                entry["because"] = reasons
            entries.append(entry)
        payload.append({"user": user, "items": entries, "fallback": "popularity" if recs.fallback[row] else None})
    return payload
