"""Filters (iterated k-core, minimum rating) and deterministic splits (leave-one-out, temporal, ratio).

Rules (also in ``docs/data.md``):

* Every split orders each user's events by timestamp; equal timestamps keep file order, and file order stands in
  for time when the log has none.
* ``leave-one-out``: a user with ``n >= 3`` events gives the last to test, the second last to validation and the
  rest to training; ``n == 2`` gives one training and one test event (no validation); ``n == 1`` stays in training.
* ``temporal``: events are put in one global order (timestamp, then file order); the last ``test_frac`` of them
  form the test set and the ``valid_frac`` before them the validation set. Needs timestamps.
* ``ratio``: per user, the last ``round(n * test_frac)`` events (at least one when ``n >= 2``) are test, the
  ``round(n * valid_frac)`` before them validation; a user always keeps at least one training event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.errors import ConfigError, DataError

SPLITS = ("leave-one-out", "temporal", "ratio")


@dataclass(frozen=True)
class Split:
    """Train / validation / test events over one pair of vocabularies."""

    name: str
    train: Interactions
    valid: Interactions
    test: Interactions

    def history_for(self, target: str) -> Interactions:
        """Events a model may see when predicting ``target`` ("valid": train; "test": train + valid)."""
        if target == "valid":
            return self.train
        if target == "test":
            return self.train.concat(self.valid) if len(self.valid) else self.train
        raise ValueError(f"target must be 'valid' or 'test'; got {target!r}")

    def targets(self, target: str) -> Interactions:
        if target == "valid":
            return self.valid
        if target == "test":
            return self.test
        raise ValueError(f"target must be 'valid' or 'test'; got {target!r}")

    @property
    def full(self) -> Interactions:
        """All events of the split (train + valid + test)."""
        return self.train.concat(self.valid).concat(self.test)


def _compact(inter: Interactions) -> Interactions:
    """Drop ids without events from the vocabularies (keeping first-seen order) and re-index."""
    used_u = np.zeros(inter.num_users + 1, dtype=bool)
    used_u[inter.user_idx] = True
    used_i = np.zeros(inter.num_items + 1, dtype=bool)
    used_i[inter.item_idx] = True
    if used_u[1:].all() and used_i[1:].all():
        return inter
    users = IdVocabulary(inter.users.ids(np.flatnonzero(used_u)).tolist(), kind="user")
    items = IdVocabulary(inter.items.ids(np.flatnonzero(used_i)).tolist(), kind="item")
    u_map = np.cumsum(used_u) * used_u
    i_map = np.cumsum(used_i) * used_i
    return Interactions(
        users,
        items,
        u_map[inter.user_idx].astype(np.int64),
        i_map[inter.item_idx].astype(np.int64),
        inter.timestamp,
        inter.rating,
        inter.order,
    )


def filter_interactions(
    inter: Interactions,
    *,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    min_rating: float | None = None,
    max_iterations: int = 1000,
) -> Interactions:
    """Apply the rating threshold, then the iterated k-core until a fixpoint; re-index compactly.

    At the fixpoint every remaining user has ``>= min_user_interactions`` events and every remaining item
    ``>= min_item_interactions`` events (counting repeated events).
    """
    for name, value in (
        ("min_user_interactions", min_user_interactions),
        ("min_item_interactions", min_item_interactions),
    ):
        if value < 0:
            raise ConfigError(f"{name} must be >= 0; got {value}")
    mask = np.ones(len(inter), dtype=bool)
    if min_rating is not None:
        if inter.rating is None:
            raise ConfigError(f"min_rating={min_rating} needs a rating column, but the data has no ratings")
        mask &= inter.rating >= min_rating
    for _ in range(max_iterations):
        u_counts = np.bincount(inter.user_idx[mask], minlength=inter.num_users + 1)
        i_counts = np.bincount(inter.item_idx[mask], minlength=inter.num_items + 1)
        new_mask = (
            mask
            & (u_counts[inter.user_idx] >= min_user_interactions)
            & (i_counts[inter.item_idx] >= min_item_interactions)
        )
        if new_mask.sum() == mask.sum():
            break
        mask = new_mask
    if not mask.any():
        raise DataError(
            "no interactions left after filtering "
            f"(min_user_interactions={min_user_interactions}, min_item_interactions={min_item_interactions}, "
            f"min_rating={min_rating})"
        )
    return _compact(inter.subset(mask))


def _positions_within_user(inter: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """For each event (sorted by user), its 0-based position in the user's sequence and the user's length."""
    offsets = inter.sequence_offsets()
    lengths = np.diff(offsets)
    length_of_event = lengths[inter.user_idx]
    pos = np.arange(len(inter), dtype=np.int64) - offsets[inter.user_idx]
    return pos, length_of_event


def leave_one_out(inter: Interactions) -> Split:
    """Last event per user to test, second last to validation (see module docstring for short histories)."""
    inter = inter.sorted()
    pos, n = _positions_within_user(inter)
    test = (pos == n - 1) & (n >= 2)
    valid = (pos == n - 2) & (n >= 3)
    train = ~(test | valid)
    return Split("leave-one-out", inter.subset(train), inter.subset(valid), inter.subset(test))


def temporal_split(inter: Interactions, *, test_frac: float = 0.1, valid_frac: float = 0.1) -> Split:
    """One global time cut for test and one for validation."""
    _check_fracs(test_frac, valid_frac)
    if inter.timestamp is None:
        raise ConfigError("split 'temporal' needs a timestamp column, but the data has no timestamps")
    inter = inter.sorted()
    order = inter.order if inter.order is not None else np.arange(len(inter))
    assert inter.timestamp is not None
    global_order = np.lexsort([order, inter.timestamp])
    rank = np.empty(len(inter), dtype=np.int64)
    rank[global_order] = np.arange(len(inter))
    n = len(inter)
    n_test = round(n * test_frac)
    n_valid = round(n * valid_frac)
    test = rank >= n - n_test
    valid = (rank >= n - n_test - n_valid) & ~test
    train = ~(test | valid)
    return Split("temporal", inter.subset(train), inter.subset(valid), inter.subset(test))


def ratio_split(inter: Interactions, *, test_frac: float = 0.2, valid_frac: float = 0.1) -> Split:
    """Per user: the last ``test_frac`` of events to test, the ``valid_frac`` before them to validation."""
    _check_fracs(test_frac, valid_frac)
    inter = inter.sorted()
    pos, n = _positions_within_user(inter)
    n_test = np.where(n >= 2, np.maximum(1, np.round(n * test_frac)), 0).astype(np.int64)
    n_valid = np.round(n * valid_frac).astype(np.int64)
    n_valid = np.minimum(n_valid, np.maximum(n - n_test - 1, 0))
    test = pos >= n - n_test
    valid = (pos >= n - n_test - n_valid) & ~test
    train = ~(test | valid)
    return Split("ratio", inter.subset(train), inter.subset(valid), inter.subset(test))


def split_interactions(inter: Interactions, method: str = "leave-one-out", **kwargs: float) -> Split:
    """Dispatch on the split name used by the CLI (``leave-one-out``, ``temporal``, ``ratio``)."""
    if method == "leave-one-out":
        return leave_one_out(inter)
    if method == "temporal":
        return temporal_split(inter, **kwargs)
    if method == "ratio":
        return ratio_split(inter, **kwargs)
    raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {method!r}")


def _check_fracs(test_frac: float, valid_frac: float) -> None:
    if not 0 < test_frac < 1:
        raise ConfigError(f"test_frac must be in (0, 1); got {test_frac}")
    if not 0 <= valid_frac < 1 or test_frac + valid_frac >= 1:
        raise ConfigError(f"valid_frac must be in [0, 1) with test_frac + valid_frac < 1; got {valid_frac}")
