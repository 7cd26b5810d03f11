"""Filters (iterated k-core, minimum rating) and deterministic splits (leave-one-out, temporal, ratio).

Rules (also in ``docs/data.md``):

* Every split orders each user's events by timestamp; equal timestamps keep file order, and file order stands in
  for time when the log has none.
* ``leave-one-out``: a user with ``n >= 3`` events gives the last to test, the second last to validation and the
  rest to training; ``n == 2`` gives one training and one test event (no validation); ``n == 1`` stays in training.
* ``temporal``: events are put in one global order (timestamp, then file order); the last ``test_frac`` of them
  form the test set and the ``valid_frac`` before them the validation set. Needs timestamps.
* ``random``: every event independently (a seeded permutation of all events): the first ``test_frac`` of the
  permuted events are test, the next ``valid_frac`` validation, the rest training. The usual split of click
  prediction (labelled impressions, :mod:`attnrec.data.labels`); ``seed`` decides it.
* ``ratio``: per user, the last ``round(n * test_frac)`` events (at least one when ``n >= 2``) are test, the
  ``round(n * valid_frac)`` before them validation; a user always keeps at least one training event.

Filtering with a split (:func:`prepare_split`, what ``attnrec train`` does):

* ``leave-one-out`` and ``ratio`` split each user's own sequence, so the filters (rating threshold, iterated
  k-core) run on the whole log first and the split follows: the published convention (SASRec's ML-1M
  preprocessing applies the 5-core to the full log before leave-one-out).
* ``temporal`` must not let the future decide who survives. The two global cuts are found on the whole log as
  loaded (a cut is a point in time; the fractions count raw events). Then the rating threshold and the iterated
  k-core run on the **training events only**, and the vocabularies are those of the filtered training part (the
  model's catalogue, the item count and coverage never include items that appear only later). Validation and
  test events keep the rating threshold and are kept only when their user *and* item survived in training:
  an item never seen in training cannot be recommended by a trained model, and a user without training events
  (cold) is dropped, not answered by the popularity fallback, so a temporal evaluation measures warm users only.
  What was removed is reported per part in :class:`FilterReport`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.errors import ConfigError, DataError

SPLITS = ("leave-one-out", "temporal", "ratio", "random")


@dataclass(frozen=True)
class PartCounts:
    """Events, distinct users and distinct items of one part of the data before and after filtering.

    ``cold_user_events`` and ``new_item_events`` (validation and test of a temporal split only, else 0): events
    removed because their user has no training event left (cold user), resp. because their user is known but
    their item has no training event left (an item the model cannot recommend). The rest of ``events_removed``
    is the rating threshold (and, for ``train`` / ``log``, the k-core).
    """

    events_before: int
    events_after: int
    users_before: int
    users_after: int
    items_before: int
    items_after: int
    cold_user_events: int = 0
    new_item_events: int = 0

    @classmethod
    def of(
        cls, before: Interactions, after: Interactions, *, cold_user_events: int = 0, new_item_events: int = 0
    ) -> PartCounts:
        return cls(
            len(before),
            len(after),
            _n_distinct(before.user_idx),
            _n_distinct(after.user_idx),
            _n_distinct(before.item_idx),
            _n_distinct(after.item_idx),
            cold_user_events,
            new_item_events,
        )

    @property
    def events_removed(self) -> int:
        return self.events_before - self.events_after

    @property
    def users_removed(self) -> int:
        return self.users_before - self.users_after

    @property
    def items_removed(self) -> int:
        return self.items_before - self.items_after

    def to_json(self) -> dict[str, int]:
        return {
            "events_before": self.events_before,
            "events_after": self.events_after,
            "users_before": self.users_before,
            "users_after": self.users_after,
            "items_before": self.items_before,
            "items_after": self.items_after,
            "cold_user_events": self.cold_user_events,
            "new_item_events": self.new_item_events,
        }


@dataclass(frozen=True)
class FilterReport:
    """What :func:`prepare_split` removed.

    Attributes:
        method: the split name.
        filtered_on: ``"log"`` (whole log, before a per-user split) or ``"train"`` (training part of a temporal
            split; validation and test are then restricted to the users and items that survived there).
        parts: ``{"log": ...}`` for ``filtered_on="log"``; ``{"train", "valid", "test"}`` for ``"train"``.
            Users/items are distinct ids with at least one event in that part.
        min_user_interactions, min_item_interactions, min_rating: the thresholds applied.
    """

    method: str
    filtered_on: str
    parts: dict[str, PartCounts]
    min_user_interactions: int = 0
    min_item_interactions: int = 0
    min_rating: float | None = None

    @property
    def events_removed(self) -> int:
        return sum(p.events_removed for p in self.parts.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "filtered_on": self.filtered_on,
            "min_user_interactions": self.min_user_interactions,
            "min_item_interactions": self.min_item_interactions,
            "min_rating": self.min_rating,
            "events_removed": self.events_removed,
            "parts": {name: part.to_json() for name, part in self.parts.items()},
        }

    def lines(self) -> list[str]:
        """Human-readable summary, one line per part (for the CLI), e.g.
        ``"train: 80,000 -> 75,112 events, 900 -> 851 users, 3,000 -> 2,410 items"``; validation and test lines
        of a temporal split add how many events went with cold users and with items unseen in training."""
        out = []
        for name, p in self.parts.items():
            line = (
                f"{name}: {p.events_before:,} -> {p.events_after:,} events, {p.users_before:,} -> {p.users_after:,} "
                f"users, {p.items_before:,} -> {p.items_after:,} items"
            )
            if p.cold_user_events or p.new_item_events:
                line += (
                    f" (removed: {p.cold_user_events:,} events of users without training events, "
                    f"{p.new_item_events:,} of items without training events)"
                )
            out.append(line)
        return out


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

    def with_items(self, ids: Sequence[str]) -> Split:
        """The split over an item vocabulary extended with ``ids`` (cold items: indices after the current
        items, in the order given; ids already known are skipped). Events and their indices are unchanged."""
        train = self.train.extend_items(ids)
        if train is self.train:
            return self
        return Split(
            self.name,
            train,
            self.valid.with_item_vocabulary(train.items),
            self.test.with_item_vocabulary(train.items),
        )


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
        inter.label,
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


def random_split(inter: Interactions, *, test_frac: float = 0.1, valid_frac: float = 0.1, seed: int = 42) -> Split:
    """Events assigned at random (seeded): ``test_frac`` of them to test, ``valid_frac`` to validation."""
    _check_fracs(test_frac, valid_frac)
    n = len(inter)
    perm = np.random.default_rng(seed).permutation(n)
    rank = np.empty(n, dtype=np.int64)
    rank[perm] = np.arange(n)
    n_test = round(n * test_frac)
    n_valid = round(n * valid_frac)
    test = rank < n_test
    valid = (rank >= n_test) & (rank < n_test + n_valid)
    train = ~(test | valid)
    return Split("random", inter.subset(train), inter.subset(valid), inter.subset(test))


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


def prepare_split(
    inter: Interactions,
    method: str = "leave-one-out",
    *,
    test_frac: float | None = None,
    valid_frac: float | None = None,
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    min_rating: float | None = None,
    seed: int = 42,
    catalogue: Sequence[str] = (),
) -> tuple[Split, FilterReport]:
    """Filter and split ``inter`` without letting a temporal split's future decide what survives.

    ``leave-one-out`` / ``ratio``: :func:`filter_interactions` on the whole log, then the split.
    ``temporal``: the global cuts on the whole log, then the filters on the training events only; validation and
    test keep the rating threshold and only the users and items that survived in training; every part uses the
    training part's (compact) vocabularies. Rules: module docstring.

    Args:
        inter: the whole log.
        method: ``"leave-one-out"``, ``"temporal"`` or ``"ratio"``.
        test_frac, valid_frac: fractions of ``temporal`` / ``ratio`` (``None``: that split's default); not used by
            ``leave-one-out``.
        min_user_interactions, min_item_interactions: iterated k-core thresholds (``0``: off).
        min_rating: keep only events rated ``>= min_rating`` (needs ratings).
        seed: seed of the ``random`` split.
        catalogue: item ids that belong to the catalogue even without events (cold items, e.g. the items of a
            feature file): every part's item vocabulary is extended with them (:meth:`Split.with_items`:
            indices after the items with events, in the order given). For ``temporal`` this happens before the
            validation and test events are restricted, so their events on such items are kept.

    Returns:
        ``(split, report)``: the split and what the filters removed (:class:`FilterReport`).

    Raises:
        ConfigError: unknown method, bad fractions or thresholds, ``min_rating`` without ratings, ``temporal``
            without timestamps.
        DataError: nothing left after filtering (for ``temporal``: in the training part).
    """
    if method not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {method!r}")

    def filtered(part: Interactions) -> Interactions:
        return filter_interactions(
            part,
            min_user_interactions=min_user_interactions,
            min_item_interactions=min_item_interactions,
            min_rating=min_rating,
        )

    def report(filtered_on: str, parts: dict[str, PartCounts]) -> FilterReport:
        return FilterReport(method, filtered_on, parts, min_user_interactions, min_item_interactions, min_rating)

    fracs = {k: v for k, v in (("test_frac", test_frac), ("valid_frac", valid_frac)) if v is not None}
    if method != "temporal":
        log = filtered(inter) if min_user_interactions or min_item_interactions or min_rating is not None else inter
        if method == "random":
            split = random_split(log, seed=seed, **fracs)
        else:
            split = split_interactions(log, method, **fracs)
        return split.with_items(catalogue), report("log", {"log": PartCounts.of(inter, log)})

    raw = temporal_split(inter, **fracs)
    try:
        train = filtered(raw.train)
    except DataError:
        raise DataError(
            f"no training events left in the temporal split after filtering (training part: {len(raw.train)} "
            f"events; min_user_interactions={min_user_interactions}, min_item_interactions={min_item_interactions}, "
            f"min_rating={min_rating})"
        ) from None
    train = train.extend_items(catalogue)

    def restrict(part: Interactions) -> tuple[Interactions, PartCounts]:
        rated = part if min_rating is None or part.rating is None else part.subset(part.rating >= min_rating)
        known_user = train.users.indices(rated.users.ids(rated.user_idx)) > 0
        known_item = train.items.indices(rated.items.ids(rated.item_idx)) > 0
        out = rated.with_vocabularies(train.users, train.items)
        counts = PartCounts.of(
            part,
            out,
            cold_user_events=int((~known_user).sum()),
            new_item_events=int((known_user & ~known_item).sum()),
        )
        return out, counts

    valid, valid_counts = restrict(raw.valid)
    test, test_counts = restrict(raw.test)
    parts = {"train": PartCounts.of(raw.train, train), "valid": valid_counts, "test": test_counts}
    return Split("temporal", train, valid, test), report("train", parts)


def _n_distinct(idx: np.ndarray) -> int:
    return len(np.unique(idx))


def split_interactions(inter: Interactions, method: str = "leave-one-out", **kwargs: float) -> Split:
    """Dispatch on the split name used by the CLI (``leave-one-out``, ``temporal``, ``ratio``)."""
    if method == "leave-one-out":
        return leave_one_out(inter)
    if method == "temporal":
        return temporal_split(inter, **kwargs)
    if method == "ratio":
        return ratio_split(inter, **kwargs)
    if method == "random":
        return random_split(inter, **kwargs)  # type: ignore[arg-type]
    raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {method!r}")


def _check_fracs(test_frac: float, valid_frac: float) -> None:
    if not 0 < test_frac < 1:
        raise ConfigError(f"test_frac must be in (0, 1); got {test_frac}")
    if not 0 <= valid_frac < 1 or test_frac + valid_frac >= 1:
        raise ConfigError(f"valid_frac must be in [0, 1) with test_frac + valid_frac < 1; got {valid_frac}")
