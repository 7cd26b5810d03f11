"""Attention heatmaps (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from attnrec.errors import ConfigError
from attnrec.explain.attention import attention_rollout, position_weights


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

    Top: attention of the last position over the ``last`` most recent history items, per layer (heads
    averaged) and rolled out. Bottom: item-specific weights (``rollout-grad``) of each of the top-``k``
    recommended items (rows) over the same history items (columns).
    """
    # an object-oriented Figure with its own Agg canvas: no pyplot, so the caller's backend and figures are untouched
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if k < 1 or last < 1:
        raise ConfigError(f"k and last must be >= 1; got k={k}, last={last}")
    if user is not None:
        if user not in model.users_:
            raise ConfigError(f"unknown user {user!r} (not in the run's training data); use --history instead")
        hist = model.history(model.users_.index(user))
        who = f"user {user}"
    else:
        hist = model.items_.indices(history or [], unknown="drop")
        who = "history"
    if len(hist) == 0:
        raise ConfigError("the history is empty (or none of its items is known): nothing to explain")
    recs = model.recommend_indices(np.asarray([0]), [hist], k=k)
    items = recs.item_idx[0][recs.item_idx[0] > 0]
    if len(items) == 0:
        raise ConfigError(f"{who} has already seen every item of the model: nothing left to recommend and explain")
    clipped = np.asarray(hist)[-model.config.max_seq_len :]
    maps = model.attention_maps([clipped])
    n_show = min(last, len(clipped))
    layer_rows = [m[0].float().mean(0)[-1, -n_show:].numpy() for m in maps]
    roll = attention_rollout(maps)[0, -1, -n_show:].numpy()
    top_panel = np.vstack([*layer_rows, roll])
    weights = position_weights(model, clipped, items, method="rollout-grad")[:, -n_show:]
    cols = [_label(model, i, features) for i in clipped[-n_show:]]
    rows = [_label(model, i, features) for i in items]

    fig_h = 2.0 + 0.35 * (len(top_panel) + len(rows))
    fig = Figure(figsize=(max(8.0, 0.45 * n_show + 4), fig_h))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1, height_ratios=[len(top_panel), len(rows)])
    im1 = ax1.imshow(top_panel, aspect="auto", cmap="viridis")
    ax1.set_yticks(range(len(top_panel)), [f"layer {i + 1}" for i in range(len(layer_rows))] + ["rollout"])
    ax1.set_xticks([])
    ax1.set_title(f"{model.name}: attention of the last position over {who}'s {n_show} most recent items")
    fig.colorbar(im1, ax=ax1, fraction=0.02)
    im2 = ax2.imshow(weights, aspect="auto", cmap="magma")
    ax2.set_yticks(range(len(rows)), rows, fontsize=8)
    ax2.set_xticks(range(n_show), cols, rotation=70, ha="right", fontsize=8)
    ax2.set_ylabel("recommended (best first)")
    ax2.set_title("why each recommendation: rollout x gradient weight per history item (oldest left)")
    fig.colorbar(im2, ax=ax2, fraction=0.02)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
