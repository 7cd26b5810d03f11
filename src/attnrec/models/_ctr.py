"""Pieces shared by the click-prediction models (DIN, AutoInt): feature tables, field embeddings, impressions.

* :func:`encode_features` turns the model's ``item_features_`` / ``user_features_`` into
  :class:`~attnrec.data.features.FeatureTable` s aligned with the fitted vocabularies; :func:`tables_state` /
  :func:`tables_from_state` save and restore them with the weights (a loaded model needs no feature file).
* :class:`FieldBag` embeds the categorical and multi-valued fields of a table: one vector per field and row (the
  mean of the value embeddings of a multi-valued field; zeros when the row has no value).
* :func:`fit_impressions`: labelled impressions as given, or a plain log turned into impressions with sampled
  negatives (so a click model can also be fitted on a ranking log).
* :func:`ctr_validation`: AUC / GAUC / logloss of the validation impressions (histories from the training
  positives), for early stopping.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from attnrec.data.features import FeatureTable
from attnrec.data.interactions import Interactions
from attnrec.training.neural import NeuralConfig
from attnrec.training.trainer import BatchFn, ValidateFn


def encode_features(model: Any, train: Interactions) -> tuple[FeatureTable | None, FeatureTable | None]:
    """``(item_table, user_table)`` for the vocabularies of ``train`` (``None`` where no features were given)."""
    items = None if model.item_features_ is None else model.item_features_.table(train.items)
    users = None if model.user_features_ is None else model.user_features_.table(train.users)
    return items, users


def tables_state(tables: dict[str, FeatureTable | None]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays (``"<side>.ids"`` ...) and JSON meta of the tables that are set."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    for side, table in tables.items():
        if table is None:
            continue
        a, m = table.to_state()
        arrays.update({f"{side}.{k}": v for k, v in a.items()})
        meta[side] = m
    return arrays, meta


def tables_from_state(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], sides: tuple[str, ...]
) -> tuple[dict[str, FeatureTable | None], dict[str, np.ndarray]]:
    """Tables restored from :func:`tables_state` output, and the arrays that are not theirs."""
    tables: dict[str, FeatureTable | None] = {}
    rest = dict(arrays)
    for side in sides:
        prefix = f"{side}."
        own = {k[len(prefix) :]: rest.pop(k) for k in list(rest) if k.startswith(prefix)}
        tables[side] = FeatureTable.from_state(own, meta[side]) if side in meta else None
    return tables, rest


def value_texts(table: FeatureTable | None, row: int, *, numeric: bool) -> list[str]:
    """The values of row ``row`` of ``table`` as text, one per categorical field (values joined by ``|``) or, with
    ``numeric``, per numeric field (the raw value); ``""`` where missing or the row is out of the table."""
    if table is None:
        return []
    if numeric:
        if not 0 < row < table.numeric.shape[0]:
            return [""] * table.numeric.shape[1]
        return ["" if np.isnan(x) else f"{x:g}" for x in table.numeric[row].tolist()]
    fields = [f for f in table.fields if f.kind != "numeric"]
    if not 0 < row < table.ids.shape[0]:
        return [""] * len(fields)
    ids = table.ids[row]
    return ["|".join(f.values[v - 1] for v in ids[f.columns].tolist() if v > 0) for f in fields]


def categorical_fields(table: FeatureTable | None, *, buckets: bool) -> list[tuple[str, slice]]:
    """``(name, columns)`` of the fields of ``table`` to embed as ids (numeric fields by bucket when ``buckets``)."""
    if table is None:
        return []
    return [(f.name, f.columns) for f in table.fields if buckets or f.kind != "numeric"]


class ClickConfig(NeuralConfig):
    """Training fields every click model (DIN, AutoInt) shares, with their defaults: the same names and meanings
    in each (training fields of every neural model: :class:`~attnrec.training.neural.NeuralConfig`)."""

    num_negatives: int = Field(4, ge=1, description="Sampled negatives per event when fitted on a plain log.")
    valid_metric: Literal["auc", "logloss"] = Field("auc", description="Early-stopping metric on validation.")
    lr: float = Field(1e-3, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (not on biases and norms).")
    batch_size: int = Field(1024, ge=1, description="Impressions per step.")
    epochs: int = Field(20, ge=1, description="Maximum training epochs.")
    patience: int = Field(2, ge=0, description="Stop after this many validations without improvement.")


class FeatureTablesState:
    """Saving and loading of a click model's encoded feature tables (``item_table_``, ``user_table_``) next to its
    weights: a mixin listed before the model's base class (``class DIN(FeatureTablesState, NeuralRecommender)``)."""

    item_table_: FeatureTable | None
    user_table_: FeatureTable | None

    def _get_state(self) -> dict[str, np.ndarray]:
        arrays, _ = tables_state({"item_table": self.item_table_, "user_table": self.user_table_})
        return {**super()._get_state(), **arrays}  # type: ignore[misc]

    def _get_meta(self) -> dict[str, Any]:
        _, meta = tables_state({"item_table": self.item_table_, "user_table": self.user_table_})
        return {**super()._get_meta(), "tables": meta}  # type: ignore[misc]

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        tables, rest = tables_from_state(arrays, dict(meta.get("tables", {})), ("item_table", "user_table"))
        self.item_table_, self.user_table_ = tables["item_table"], tables["user_table"]
        super()._set_state(rest, meta)  # type: ignore[misc]


class FieldBag(nn.Module):
    """One ``dim``-vector per (row, field): the mean embedding of the row's values of the field (0: no value).

    Args:
        table: the encoded features (rows = vocabulary indices).
        fields: ``(name, columns)`` of the fields to embed (:func:`categorical_fields`).
        dim: embedding width.
    """

    def __init__(self, table: FeatureTable, fields: list[tuple[str, slice]], dim: int) -> None:
        super().__init__()
        cols = [c for _, s in fields for c in range(s.start, s.stop)]
        gids = table.global_ids()[:, cols] if cols else np.zeros((table.ids.shape[0], 0), dtype=np.int64)
        assign = np.zeros((len(cols), len(fields)), dtype=np.float32)
        pos = 0
        for f, (_, s) in enumerate(fields):
            assign[pos : pos + s.stop - s.start, f] = 1.0
            pos += s.stop - s.start
        self.names = [name for name, _ in fields]
        self.register_buffer("gids", torch.from_numpy(gids), persistent=False)
        self.register_buffer("assign", torch.from_numpy(assign), persistent=False)
        self.embedding = nn.Embedding(max(1, table.total_size), dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, 0.0, 0.05)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    @property
    def num_fields(self) -> int:
        return len(self.names)

    def forward(self, rows: Tensor) -> Tensor:
        """``rows`` ``(...)`` vocabulary indices (out-of-table rows read as row 0) -> ``(..., fields, dim)``."""
        gids: Tensor = self.gids  # type: ignore[assignment]
        assign: Tensor = self.assign  # type: ignore[assignment]
        rows = torch.where(rows < gids.shape[0], rows, torch.zeros_like(rows))
        ids = gids[rows]  # (..., C)
        emb = self.embedding(ids)  # (..., C, D); row 0 is zero
        counts = (ids > 0).to(emb.dtype) @ assign  # (..., F)
        summed = torch.einsum("...cd,cf->...fd", emb, assign.to(emb.dtype))
        return summed / counts.clamp_min(1.0).unsqueeze(-1)


def fit_impressions(train: Interactions, negatives: int, seed: int) -> Interactions:
    """``train`` when it is labelled, else its events as positives plus ``negatives`` sampled per positive."""
    if train.label is not None:
        return train
    from attnrec.data.labels import label_sampled

    return label_sampled(train, negatives=negatives, seed=seed)


def impression_batches(train: Interactions, negatives: int, batch_size: int, make: Any) -> tuple[BatchFn, int]:
    """Shuffled batches of impressions: ``make(users, items, labels, keys)`` builds a batch dict from arrays
    (``keys``: :func:`event_keys` of each impression; a sampled negative has its positive's).

    Labelled ``train``: its impressions. A plain log: its events as positives and, drawn afresh every epoch,
    ``negatives`` uniformly random items per positive that the user has no event with (like BPR's sampling, so that
    a fixed set of sampled negatives is not memorised). Negatives come from the items with training events only:
    an item nobody could have seen (a cold catalogue item, an item of later events) is no evidence of a skipped
    item, and sampling it only as a negative would teach the model to rank every cold item last."""
    labelled = train.label is not None
    n = len(train) if labelled else len(train) * (1 + negatives)
    width = np.int64(train.num_items + 1)
    known = np.zeros(0, dtype=np.int64) if labelled else np.unique(train.user_idx * width + train.item_idx)
    num_batches = max(1, math.ceil(n / batch_size))

    keys = event_keys(train)
    pool = np.unique(train.item_idx) if len(train) else np.arange(1, train.num_items + 1)

    def epoch_rows(gen: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if train.label is not None:
            return train.user_idx, train.item_idx, train.label.astype(np.float32), keys
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        neg_users = np.repeat(train.user_idx, negatives)
        neg_items = pool[rng.integers(0, len(pool), size=len(neg_users))]
        for _ in range(5):  # redraw the negatives that are events of the user
            bad = np.isin(neg_users * width + neg_items, known)
            if not bad.any():
                break
            neg_items[bad] = pool[rng.integers(0, len(pool), size=int(bad.sum()))]
        labels = np.concatenate([np.ones(len(train), np.float32), np.zeros(len(neg_users), np.float32)])
        return (
            np.concatenate([train.user_idx, neg_users]),
            np.concatenate([train.item_idx, neg_items]),
            labels,
            np.concatenate([keys, np.repeat(keys, negatives)]),
        )

    def batches(epoch: int, gen: torch.Generator) -> Iterator[dict[str, Tensor]]:
        users, items, labels, when = epoch_rows(gen)
        order = torch.randperm(n, generator=gen).numpy()
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            yield make(users[rows], items[rows], labels[rows], when[rows])

    return batches, num_batches


def event_keys(inter: Interactions) -> np.ndarray:
    """``(n,)`` int64 when each event happened: its timestamp, else its position in the source log."""
    if inter.timestamp is not None:
        return inter.timestamp.astype(np.int64)
    if inter.order is not None:
        return inter.order.astype(np.int64)
    return np.arange(len(inter), dtype=np.int64)


class PriorHistories:
    """The positive events of each user strictly before a moment, for training a history model on impressions.

    A training impression's history is what the user had clicked before it (the paper's "behaviors before"), so
    that positive and negative impressions get histories built the same way (leaving out only the positive's own
    item would tell the two apart by the history's length).
    """

    def __init__(self, train: Interactions, length: int) -> None:
        pos = train.positives()
        keys = event_keys(pos)
        self.uniq = np.unique(event_keys(train))
        self.width = np.int64(len(self.uniq) + 1)
        self.composite = pos.user_idx * self.width + np.searchsorted(self.uniq, keys)
        order = np.argsort(self.composite, kind="stable")
        self.composite, self.items = self.composite[order], pos.item_idx[order]
        self.offsets = pos.sequence_offsets()
        self.length = length

    def __call__(self, users: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``(B, width)`` right-padded last ``length`` positives of each user before each key (0 = padding)."""
        end = np.searchsorted(self.composite, users * self.width + np.searchsorted(self.uniq, keys), side="left")
        start = np.maximum(self.offsets[users], end - self.length)
        size = end - start
        width = max(1, int(size.max()) if len(size) else 1)
        idx = start[:, None] + np.arange(width)[None, :]
        valid = idx < end[:, None]
        return np.where(valid, self.items[np.where(valid, idx, 0)], 0)


def ctr_validation(
    model: Any, train: Interactions, valid: Interactions | None, *, negatives: int, seed: int
) -> ValidateFn | None:
    """AUC, GAUC and logloss of ``valid`` (labelled, or labelled here with sampled negatives)."""
    if valid is None or len(valid) == 0:
        return None
    from attnrec.evaluation.ctr import evaluate_ctr

    targets = fit_impressions(valid, negatives, seed + 1)
    if targets.label is None or targets.label.min() == targets.label.max():
        return None
    history = train.positives()

    def validate() -> dict[str, float]:
        result = evaluate_ctr(model, targets, history=history, n_boot=0)
        return {k: float(v) for k, v in result.summary.items()}

    return validate


def pair_histories(
    model: Any, users: np.ndarray, history: Interactions | None, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(distinct users, (len(distinct), length) right-padded last-``length`` positive histories)`` and the
    inverse index of each pair's user, for scoring pairs (``history`` as in ``Recommender.score_pairs``)."""
    distinct, inverse = np.unique(users, return_inverse=True)
    out = np.zeros((len(distinct), max(1, length)), dtype=np.int64)
    if history is not None:
        history = history.positives()
        if history.users != model.users_ or history.items != model.items_:
            history = history.with_vocabularies(model.users_, model.items_)
        offsets, items = history.sequence_offsets(), history.item_idx
    for r, u in enumerate(distinct.tolist()):
        if history is None:
            h = model.history(int(u))
        elif 0 < u < len(offsets) - 1:
            h = items[offsets[u] : offsets[u + 1]]
        else:
            h = items[:0]
        h = h[-length:]
        out[r, : len(h)] = h
    return out, inverse


def padded(histories: list[np.ndarray] | tuple[np.ndarray, ...], length: int) -> np.ndarray:
    """Right-padded ``(len(histories), max(1, longest))`` int64 array of the last ``length`` items of each."""
    longest = max([min(len(h), length) for h in histories] + [1])
    out = np.zeros((len(histories), longest), dtype=np.int64)
    for r, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)[-length:]
        out[r, : len(h)] = h
    return out


__all__ = [
    "FieldBag",
    "PriorHistories",
    "categorical_fields",
    "ctr_validation",
    "encode_features",
    "event_keys",
    "fit_impressions",
    "impression_batches",
    "padded",
    "pair_histories",
    "tables_from_state",
    "tables_state",
]
