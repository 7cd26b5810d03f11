"""Attention heatmaps (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnrec.errors import ConfigError
from attnrec.explain.base import read_part
from attnrec.explain.fields import FieldExplainer
from attnrec.explain.methods import default_method, get_explainer, methods_for
from attnrec.explain.rollout import attention_rollout, rollout_spec


def _attention_rows(model: Any, clipped: np.ndarray, n_show: int) -> tuple[np.ndarray, list[str]]:
    """Rows of the top panel over the last ``n_show`` read items, and their labels."""
    if callable(getattr(model, "attention_maps", None)):
        spec = rollout_spec(model)
        maps = model.attention_maps([clipped])
        cols = spec.history_columns(maps[0].shape[-1], len(clipped))
        rows = [m[0].float().mean(0)[-1, cols][-n_show:].numpy() for m in maps]
        roll = attention_rollout(maps, residual=spec.residual, mask=spec.mask)[0, -1, cols][-n_show:].numpy()
        return np.vstack([*rows, roll]), [f"layer {i + 1}" for i in range(len(rows))] + ["rollout"]
    if callable(getattr(model, "attention_weights", None)):
        w = np.asarray(model.attention_weights([clipped])[0], dtype=np.float64)
        full = np.zeros(len(clipped))
        full[len(clipped) - len(w) :] = w
        return full[None, -n_show:], ["attention"]
    return np.zeros((1, n_show)), ["(no attention)"]


def _label(model: Any, idx: int, features: Any | None, width: int = 28) -> str:
    item_id = model.items_.id(int(idx))
    title = features.title(item_id) if features is not None else None
    text = f"{title}" if title else item_id
    return text if len(text) <= width else text[: width - 1] + "…"


def explanation_heatmap(
    model: Any,
    *,
    user: str | None = None,
    history: Sequence[str] | None = None,
    k: int = 10,
    last: int = 20,
    features: Any | None = None,
    out: str | Path = "explain.png",
) -> Path:
    """Draw two panels and save a PNG.

    A model that explains by feature fields (AutoInt) gets :func:`field_heatmap`'s panels instead. Otherwise, top:
    attention of the query (the last position, or the mask position of a bidirectional model) over the
    ``last`` most recent history items, per layer (heads averaged) and rolled out; for a recurrent model its
    attention weights. Bottom: the ``occlusion`` weights (the score drop when one history item is removed; the
    model's default method where occlusion does not apply) of each of the top-``k`` recommended items (rows)
    over the same history items (columns).
    """
    # an object-oriented Figure with its own Agg canvas: no pyplot, so the caller's backend and figures are untouched
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if k < 1 or last < 1:
        raise ConfigError(f"k and last must be >= 1; got k={k}, last={last}")
    if user is not None:
        if user not in model.users_:
            raise ConfigError(f"unknown user {user!r} (not in the run's training data); use --history instead")
        uidx = model.users_.index(user)
        hist = model.history(uidx)
        who = f"user {user}"
    else:
        uidx = 0
        hist = model.items_.indices(history or [], unknown="drop")
        who = "history"
    by_fields = isinstance(get_explainer(model), FieldExplainer)  # explains by the user's and items' fields
    if len(hist) == 0 and not by_fields:
        raise ConfigError("the history is empty (or none of its items is known): nothing to explain")
    recs = model.recommend_indices(np.asarray([uidx]), [hist], k=k)  # the user's own list (user features count)
    items = recs.item_idx[0][recs.item_idx[0] > 0]
    if len(items) == 0:
        raise ConfigError(f"{who} has already seen every item of the model: nothing left to recommend and explain")
    if by_fields:
        return field_heatmap(model, uidx, items, who=who, features=features, out=out)
    clipped = read_part(model, np.asarray(hist))
    n_show = min(last, len(clipped))
    top_panel, top_labels = _attention_rows(model, clipped, n_show)
    usable = methods_for(model)
    method = "occlusion" if "occlusion" in usable else default_method(model)  # a weight for every position
    weights = get_explainer(model, method).position_weights(model, clipped, items, user=uidx)[:, -n_show:]
    cols = [_label(model, i, features) for i in clipped[-n_show:]]
    rows = [_label(model, i, features) for i in items]

    fig_h = 2.0 + 0.35 * (len(top_panel) + len(rows))
    fig = Figure(figsize=(max(8.0, 0.45 * n_show + 4), fig_h))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1, height_ratios=[len(top_panel), len(rows)])
    im1 = ax1.imshow(top_panel, aspect="auto", cmap="viridis")
    ax1.set_yticks(range(len(top_panel)), top_labels)
    ax1.set_xticks([])
    ax1.set_title(f"{model.name}: attention of the query over {who}'s {n_show} most recent items")
    fig.colorbar(im1, ax=ax1, fraction=0.02)
    im2 = ax2.imshow(weights, aspect="auto", cmap="magma")
    ax2.set_yticks(range(len(rows)), rows, fontsize=8)
    ax2.set_xticks(range(n_show), cols, rotation=70, ha="right", fontsize=8)
    ax2.set_ylabel("recommended (best first)")
    ax2.set_title(f"why each recommendation: {method} weight per history item (oldest left)")
    fig.colorbar(im2, ax=ax2, fraction=0.02)
    return _save(fig, out)


def _save(fig: Any, out: str | Path) -> Path:
    """Lay out ``fig`` and write it as a PNG at ``out`` (parent folders created)."""
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def field_heatmap(
    model: Any, user: int, items: np.ndarray, *, who: str, features: Any | None = None, out: str | Path
) -> Path:
    """The picture of a model that explains by feature fields: top, the attention between fields (rows attend to
    columns; layers, heads and the recommended items averaged) when the model has ``field_attention``; bottom,
    the ``field-occlusion`` weight of every field (the score drop when that field alone is read as missing) for
    each recommended item (rows)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(model.field_names)
    weights, _ = get_explainer(model, "field-occlusion").field_weights(model, user, items)  # type: ignore[attr-defined]
    rows = [_label(model, i, features) for i in items]
    attention = None
    if "field-attention" in methods_for(model):
        attention = np.asarray(model.field_attention(user, items)[0], dtype=np.float64).mean(axis=0)
    m = len(names)
    fig = Figure(figsize=(max(8.0, 0.6 * m + 4), 2.5 + 0.35 * len(rows) + (0.4 * m if attention is not None else 0)))
    FigureCanvasAgg(fig)
    if attention is not None:
        ax1, ax2 = fig.subplots(2, 1, height_ratios=[m, len(rows)])
        im1 = ax1.imshow(attention, aspect="auto", cmap="viridis")
        ax1.set_yticks(range(m), names, fontsize=8)
        ax1.set_xticks(range(m), names, rotation=70, ha="right", fontsize=8)
        ax1.set_title(f"{model.name}: attention between fields for {who} (rows attend to columns)")
        fig.colorbar(im1, ax=ax1, fraction=0.02)
    else:
        ax2 = fig.subplots(1, 1)
    bound = float(np.abs(weights).max()) or 1.0
    im2 = ax2.imshow(weights, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax2.set_yticks(range(len(rows)), rows, fontsize=8)
    ax2.set_xticks(range(m), names, rotation=70, ha="right", fontsize=8)
    ax2.set_ylabel("recommended (best first)")
    ax2.set_title("why each recommendation: score drop when the field is missing (red: the field raised it)")
    fig.colorbar(im2, ax=ax2, fraction=0.02)
    return _save(fig, out)
