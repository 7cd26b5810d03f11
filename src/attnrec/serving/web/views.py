"""What the web pages show, without HTTP: item cards, model information, title search and the attention grid.

Everything that costs more than a lookup is computed once per served model and kept in :class:`ModelPages`
(keyed by the :class:`~attnrec.serving.holder.LoadedModel` object, so a hot swap starts afresh and the old
entry goes with the old model): the item side information, ``metrics.json`` and ``config.json`` of the run
folder, and the lower-cased titles that the search box scans.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from attnrec.serving.holder import ITEM_FEATURES_JSON, LoadedModel

log = logging.getLogger("attnrec.serving")

MAX_ATTRIBUTES_SHOWN = 4
SEARCH_LIMIT = 25
ATTENTION_LAST = 20


@dataclass(frozen=True)
class ItemCard:
    """One item as a page shows it: id, title (None when unknown), attribute values, whether the model knows it."""

    item_id: str
    title: str | None
    attributes: tuple[str, ...]
    known: bool

    @property
    def label(self) -> str:
        return self.title or self.item_id


@dataclass
class ModelPages:
    """Per-model data of the pages, computed once when a page first needs the model."""

    loaded: LoadedModel
    attributes: dict[str, list[str]]
    metrics: dict[str, Any] | None
    config: dict[str, Any] | None
    search_titles: list[tuple[str, str]] = field(default_factory=list)  # (lower-cased title, item id)

    @property
    def name(self) -> str:
        return self.loaded.model.name or type(self.loaded.model).__name__

    def card(self, item_id: str) -> ItemCard:
        items = self.loaded.model.items_
        attrs = self.attributes.get(item_id, [])
        values = tuple(a.partition("=")[2] or a for a in attrs[:MAX_ATTRIBUTES_SHOWN])
        return ItemCard(item_id, self.loaded.title(item_id), values, items is not None and item_id in items)

    def search(self, query: str, limit: int = SEARCH_LIMIT) -> list[ItemCard]:
        """Items whose title contains every word of ``query`` (case-insensitive), then an exact id match first.

        One pass over the titles (3,706 for ML-1M); without titles, item ids are matched the same way.
        """
        words = query.lower().split()
        if not words:
            return []
        out: list[str] = []
        items = self.loaded.model.items_
        if items is not None and query.strip() in items:
            out.append(query.strip())
        for text, item_id in self.search_titles:
            if len(out) >= limit:
                break
            if all(w in text for w in words) and item_id not in out:
                out.append(item_id)
        return [self.card(i) for i in out[:limit]]

    def metric_rows(self) -> list[tuple[str, str, str]]:
        """``(metric, validation, test)`` rows of ``metrics.json``, formatted (empty without the file)."""
        if not self.metrics:
            return []
        valid = self.metrics.get("valid") or {}
        test = self.metrics.get("test") or {}
        names = list(dict.fromkeys([*valid, *test]))
        return [(n, _fmt(valid.get(n)), _fmt(test.get(n))) for n in names]

    def config_rows(self) -> list[tuple[str, str]]:
        """``(hyperparameter, value)`` rows: the model's resolved configuration."""
        params = self.loaded.model.get_config()
        return [(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in params.items()]

    def dataset_line(self) -> str | None:
        if not self.metrics:
            return None
        ds = self.metrics.get("dataset") or {}
        parts = [f"{ds[k]:,} {k}" for k in ("users", "items", "interactions") if isinstance(ds.get(k), int)]
        protocol = self.metrics.get("protocol")
        split = self.metrics.get("split")
        extra = ", ".join(str(x) for x in (split, f"{protocol} ranking" if protocol else None) if x)
        return ", ".join(parts) + (f" ({extra})" if extra else "")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else "n/a"
    return "" if value is None else str(value)


def _read_json(path: Any) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("web page: %s cannot be read (%s)", path, type(exc).__name__)
        return None
    return data if isinstance(data, dict) else None


class PagesCache:
    """:class:`ModelPages` per served model (weak keys: an entry lives as long as its model)."""

    def __init__(self) -> None:
        self._data: weakref.WeakKeyDictionary[LoadedModel, ModelPages] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, loaded: LoadedModel) -> ModelPages:
        found = self._data.get(loaded)
        if found is not None:
            return found
        with self._lock:
            found = self._data.get(loaded)
            if found is None:
                found = _build_pages(loaded)
                self._data[loaded] = found
            return found


def _build_pages(loaded: LoadedModel) -> ModelPages:
    from attnrec.runs import CONFIG_JSON, METRICS_JSON

    attributes: dict[str, list[str]] = {}
    if (loaded.run_dir / ITEM_FEATURES_JSON).is_file():
        from attnrec.data.features import ItemFeatures

        try:
            attributes = ItemFeatures.load(loaded.run_dir / ITEM_FEATURES_JSON).attributes
        except Exception as exc:  # boundary: the page works without attributes
            log.warning("web page: item attributes of %s not shown (%s)", loaded.run_dir, type(exc).__name__)
    titles = loaded.titles or {}
    items = loaded.model.items_
    if titles:
        search = [(t.lower(), i) for i, t in titles.items()]
    else:
        search = [(i.lower(), i) for i in (items.all_ids if items is not None else [])]
    return ModelPages(
        loaded=loaded,
        attributes=attributes,
        metrics=_read_json(loaded.run_dir / METRICS_JSON),
        config=_read_json(loaded.run_dir / CONFIG_JSON),
        search_titles=search,
    )


def event_time(timestamp: float) -> str:
    """``2024-05-01 20:15 UTC``."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return str(timestamp)


# ---------------------------------------------------------------------------------------------- attention picture
@dataclass(frozen=True)
class AttentionGrid:
    """Rows (layers, rollout, the top item's weights) over the last history items the model reads.

    ``values`` is ``(len(rows), len(columns))``; ``columns`` are item ids, oldest first, or, for a model that
    explains by feature fields (``by_fields``), the fields with the user's and the top item's values
    (``"user.gender=M"``).
    """

    rows: list[str]
    columns: list[str]
    values: np.ndarray
    note: str
    by_fields: bool = False


def attention_grid(
    loaded: LoadedModel, history: np.ndarray, top_item: int | None, last: int = ATTENTION_LAST, user_idx: int = 0
) -> AttentionGrid:
    """The attention picture of ``attnrec explain`` for one history: the query's attention per layer (heads
    averaged) and rolled out, or a recurrent model's attention weights, over the ``last`` most recent items the
    model reads; plus one row for ``top_item`` (item index): the weight of each history item for that item by
    ``rollout-grad`` (attention rollout weighted by the gradient of the item's score), else ``occlusion``, else the
    model's default method, computed for the user ``user_idx`` (0: anonymous).
    """
    from attnrec.explain.base import read_part
    from attnrec.explain.fields import FieldExplainer
    from attnrec.explain.methods import default_method, get_explainer, methods_for
    from attnrec.explain.rollout import attention_rollout, rollout_spec

    model: Any = loaded.model  # attention_maps / attention_weights are optional methods of some models
    assert model.items_ is not None
    if methods_for(model) and isinstance(get_explainer(model), FieldExplainer):
        return field_grid(model, top_item, user_idx)
    clipped = read_part(model, np.asarray(history, dtype=np.int64))
    n = min(last, len(clipped))
    if n == 0:
        return AttentionGrid([], [], np.zeros((0, 0)), "the history is empty: nothing to draw")
    rows: list[np.ndarray] = []
    labels: list[str] = []
    if callable(getattr(model, "attention_maps", None)):
        spec = rollout_spec(model)
        maps = model.attention_maps([clipped])
        cols = spec.history_columns(maps[0].shape[-1], len(clipped))
        for i, m in enumerate(maps):
            rows.append(m[0].float().mean(0)[-1, cols][-n:].cpu().numpy())
            labels.append(f"layer {i + 1}")
        roll = attention_rollout(maps, residual=spec.residual, mask=spec.mask)[0, -1, cols][-n:]
        rows.append(roll.float().cpu().numpy())
        labels.append("rollout")
    elif callable(getattr(model, "attention_weights", None)):
        w = np.asarray(model.attention_weights([clipped])[0], dtype=np.float64)
        full = np.zeros(len(clipped))
        full[len(clipped) - len(w) :] = w
        rows.append(full[-n:])
        labels.append("attention")
    usable = methods_for(model)
    note = "" if rows else f"{model.name} has no attention layers"
    if usable and top_item is not None and top_item > 0:
        # rollout-grad (one forward and backward pass) where it applies: occlusion would score the history once
        # per position (200 rescorings for a full SASRec window, ~300 ms on a busy 2-core machine)
        method = next((m for m in ("rollout-grad", "occlusion") if m in usable), None) or default_method(model)
        explainer = get_explainer(model, method)
        weights = explainer.position_weights(model, clipped, np.asarray([top_item]), user=user_idx)[0, -n:]
        rows.append(np.asarray(weights, dtype=np.float64))
        labels.append(f"top item ({method})")
    if not rows:
        return AttentionGrid([], [], np.zeros((0, 0)), note or "nothing to draw")
    values = np.nan_to_num(np.vstack(rows).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    columns = [str(i) for i in model.items_.ids(clipped[-n:])]
    return AttentionGrid(labels, columns, values, note)


def field_grid(model: Any, top_item: int | None, user_idx: int) -> AttentionGrid:
    """The picture of a model that explains by feature fields (AutoInt), for the top item: each field's share of
    the score drops when it alone is read as missing (``field-occlusion``) and, when the model has it, each
    field's share of the attention between fields (``field-attention``); columns name the pair's values."""
    from attnrec.explain.base import normalised_positive
    from attnrec.explain.fields import FieldExplainer, field_relevance
    from attnrec.explain.methods import get_explainer, methods_for

    if top_item is None or top_item <= 0:
        return AttentionGrid([], [], np.zeros((0, 0)), "no recommended item to explain", by_fields=True)
    names = list(model.field_names)
    values = model.field_values(user_idx, top_item) if callable(getattr(model, "field_values", None)) else None
    columns = names if values is None else [f"{n}={v}" if v else n for n, v in zip(names, values, strict=True)]
    occlusion = get_explainer(model, "field-occlusion")
    assert isinstance(occlusion, FieldExplainer)
    drops, _ = occlusion.field_weights(model, user_idx, np.asarray([top_item]))
    rows, labels = [normalised_positive(drops)[0]], ["top item (field-occlusion)"]
    if "field-attention" in methods_for(model):
        attention, _ = model.field_attention(user_idx, np.asarray([top_item]))
        rows.append(field_relevance(attention)[0])
        labels.append("field attention")
    return AttentionGrid(labels, columns, np.vstack(rows).astype(np.float64), "", by_fields=True)


def cell_colour(value: float) -> str:
    """A light-to-dark blue for a value in [0, 1] (readable black or white text is chosen by the caller)."""
    v = min(1.0, max(0.0, value))
    lo, hi = (239, 246, 255), (12, 44, 132)
    r, g, b = (round(a + (c - a) * v) for a, c in zip(lo, hi, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def grid_cells(grid: AttentionGrid) -> list[list[tuple[str, float, str]]]:
    """Per row, per column: ``(fill colour, value, text colour)``; each row scaled to its own maximum."""
    out = []
    for row in grid.values:
        top = float(row.max()) if row.size and float(row.max()) > 0 else 1.0
        out.append([(cell_colour(float(v) / top), float(v), "#fff" if float(v) / top > 0.55 else "#111") for v in row])
    return out
