"""Data rules of the sequential models: hyperparameters left at ``None`` that the training data decides
(``Recommender.data_rules``), each with the reason recorded in ``train_info_["data_rules"]``."""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import Field

from attnrec.data.interactions import Interactions

SPARSE_EVENTS_PER_ITEM = 50.0
"""Below this many training events per item, the catalogue is sparse: each item embedding is seen too rarely
to carry the ML-1M amount of capacity without overfitting (Amazon Beauty and LastFM have ~15, ML-1M ~290)."""


def _by_sparsity(train: Interactions, sparse: float, dense: float) -> tuple[float, str]:
    """``sparse`` when ``train`` has fewer than ``SPARSE_EVENTS_PER_ITEM`` events per item, else ``dense``, with the
    reason."""
    per_item = len(train) / max(train.num_items, 1)
    if per_item < SPARSE_EVENTS_PER_ITEM:
        return sparse, f"{per_item:.1f} training events per item (< {SPARSE_EVENTS_PER_ITEM:g}: sparse catalogue)"
    return dense, f"{per_item:.1f} training events per item (>= {SPARSE_EVENTS_PER_ITEM:g})"


SPARSE_DROPOUT, DENSE_DROPOUT = 0.5, 0.2


def sparse_dropout(train: Interactions) -> tuple[float, str]:
    """The data rule for ``dropout``: 0.5 on sparse catalogues, 0.2 elsewhere (with its reason)."""
    return _by_sparsity(train, SPARSE_DROPOUT, DENSE_DROPOUT)


SPARSE_WEIGHT_DECAY, DENSE_WEIGHT_DECAY = 1.0, 0.0


def sparse_weight_decay(train: Interactions) -> tuple[float, str]:
    """The data rule for ``weight_decay`` (SASRec): AdamW's decoupled decay 1.0 on sparse catalogues, 0 elsewhere
    (with its reason). Decay pulls every item embedding towards zero; an item seen often is pulled back by its
    gradients, a rarely seen one keeps a small norm and low scores (LastFM: validation NDCG@10 0.0468 without,
    0.0578 with 1.0; Amazon Beauty 0.0656 and 0.0694, seed 0; ML-1M level, so it keeps 0)."""
    return _by_sparsity(train, SPARSE_WEIGHT_DECAY, DENSE_WEIGHT_DECAY)


MIN_STEPS_PER_EPOCH, MIN_RULE_BATCH = 64, 16


def small_data_batch_size(num_windows: int, base: int) -> tuple[int, str]:
    """The data rule for ``batch_size``: ``base`` windows per step, halved (not below 16) while an epoch of
    ``num_windows`` windows would have fewer than 64 steps (with its reason). A few hundred optimiser steps over
    a small log leave a model under-trained (LastFM: 1,100 windows, 17 steps per epoch at 64, so 510 steps in 30
    epochs, 200 of them warm-up; SASRec's validation NDCG@10 0.0374 at 64, 0.0468 at 16), and on data
    with enough windows per epoch the rule keeps ``base``."""
    size = base
    while size > MIN_RULE_BATCH and num_windows < MIN_STEPS_PER_EPOCH * size:
        size //= 2
    steps = math.ceil(num_windows / size)
    if size == base:
        return size, f"{num_windows:,} training windows: {steps} steps per epoch (>= {MIN_STEPS_PER_EPOCH})"
    return size, (
        f"{num_windows:,} training windows: {math.ceil(num_windows / base)} steps per epoch at {base}, "
        f"{steps} at {size} (>= {MIN_STEPS_PER_EPOCH}, or {MIN_RULE_BATCH} per step)"
    )


SMALL_LOG_WINDOWS = 4096
"""BERT4Rec: fewer training sequences than this (an epoch of fewer than 32 steps of 128) make a small log."""
SMALL_LOG_DROPOUT, BERT4REC_DROPOUT = 0.5, 0.1
SMALL_LOG_WEIGHT_DECAY, SMALL_SPARSE_LOG_WEIGHT_DECAY, BERT4REC_WEIGHT_DECAY = 1.0, 3.0, 0.0


LARGE_LOG_RECIPE: dict[str, tuple[Any, Any]] = {
    "attn_dropout": (0.0, 0.1),
    "output_transform": (True, False),
    "warmup_steps": (100, 0),
    "grad_clip": (1.0, 0.0),
    "last_mask_prob": (0.2, 0.0),
}
"""BERT4Rec: ``field: (small log, larger log)`` for the settings of Klenitskiy & Vasilev's published run (BertConfig's
attention dropout 0.1, a bare tied head, Adam at a constant rate without warm-up or clipping, no forced last-item
mask) against the steadier ones a small log needs (docs/models/bert4rec.md: validation NDCG@10 on ML-1M and Amazon
Beauty rises with the recipe, on LastFM it falls). ``grad_clip`` 0 is off."""


def recipe_field(name: str, what: str, **bounds: Any) -> Any:
    """A BERT4Rec config field of :data:`LARGE_LOG_RECIPE`: numbers never negative; None lets the data decide.
    The default is still the small-log value on every log, until the rule's benchmark cells are recorded on all
    seeds (docs/models/bert4rec.md, "The large-log rule")."""
    small, large = LARGE_LOG_RECIPE[name]
    rule = f"None: a rule from the data, models.bert4rec.small_log_rules: {json.dumps(small)} on small logs, else "
    if not isinstance(small, bool):
        bounds.setdefault("ge", 0)
    return Field(small, description=f"{what} ({rule}{json.dumps(large)}).", **bounds)


def small_log_rules(num_windows: int, config: Any, events_per_item: float) -> dict[str, tuple[Any, str]]:
    """The data rules of BERT4Rec's ``dropout``, ``weight_decay``, ``batch_size`` and the :data:`LARGE_LOG_RECIPE`
    fields left at None, with their reason.

    On a small log (fewer than ``SMALL_LOG_WINDOWS`` training sequences: LastFM's 1,100, ML-100K's 960) the cloze
    task stays on a popularity plateau for tens of epochs and then overfits: dropout 0.5, AdamW decay and the
    shared small-data batch (16 there) carry it to item-specific answers. The decay is 3.0 when the catalogue is
    also sparse (fewer than ``SPARSE_EVENTS_PER_ITEM`` training events per item: LastFM's 13.8), where it works
    as SASRec's sparse-catalogue decay does (rarely seen items keep small embeddings), and 1.0 on a dense one
    (ML-100K's 58), where 3.0 lost validation NDCG@10. On larger logs (Amazon Beauty's 22,363 sequences) the
    small-log values cost validation NDCG@10, so they keep 0.1, 0 and 128, and take the published run's
    :data:`LARGE_LOG_RECIPE` (docs/models/bert4rec.md).
    ``events_per_item``: training events per catalogue item."""
    small = num_windows < SMALL_LOG_WINDOWS
    why = f"{num_windows:,} training sequences ({'<' if small else '>='} {SMALL_LOG_WINDOWS:,}: " + (
        "small log)" if small else "not a small log)"
    )
    rules: dict[str, tuple[Any, str]] = {}
    if config.dropout is None:
        rules["dropout"] = (SMALL_LOG_DROPOUT if small else BERT4REC_DROPOUT, why)
    if config.weight_decay is None:
        if not small:
            rules["weight_decay"] = (BERT4REC_WEIGHT_DECAY, why)
        elif events_per_item < SPARSE_EVENTS_PER_ITEM:
            rules["weight_decay"] = (
                SMALL_SPARSE_LOG_WEIGHT_DECAY,
                f"{why}; {events_per_item:.1f} training events per item (< {SPARSE_EVENTS_PER_ITEM:g}: sparse "
                "catalogue)",
            )
        else:
            rules["weight_decay"] = (
                SMALL_LOG_WEIGHT_DECAY,
                f"{why}; {events_per_item:.1f} training events per item (>= {SPARSE_EVENTS_PER_ITEM:g})",
            )
    if config.batch_size is None:
        size, batch_why = small_data_batch_size(num_windows, type(config).base_batch_size)
        rules["batch_size"] = (size, f"{why}; {batch_why}") if small else (type(config).base_batch_size, why)
    for field, (small_value, large_value) in LARGE_LOG_RECIPE.items():
        if getattr(config, field) is None:
            rules[field] = (small_value if small else large_value, why)
    return rules
