"""Indexed interaction data: the one in-memory representation every model, split and metric works on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp

from attnrec.data.vocab import IdVocabulary


@dataclass(frozen=True, eq=False)
class Interactions:
    """Interaction events with integer indices, sorted by user, then time, then original file order.

    Attributes:
        users: user vocabulary (shared by every split of one dataset).
        items: item vocabulary (shared by every split of one dataset).
        user_idx: ``(n,)`` int64 user indices, ``>= 1``.
        item_idx: ``(n,)`` int64 item indices, ``>= 1``.
        timestamp: ``(n,)`` int64 epoch seconds, or ``None`` when the log has no time.
        rating: ``(n,)`` float64 explicit ratings, or ``None``.
        order: ``(n,)`` int64 position of the event in the source log (breaks timestamp ties).
        label: ``(n,)`` int8 click labels (1 = positive, 0 = negative impression) of labelled data built by
            :mod:`attnrec.data.labels`, or ``None`` for a plain log (every event is a positive).

    The item vocabulary may hold items without any event (cold items, see :meth:`extend_items`); they come after
    the items with events.
    """

    users: IdVocabulary
    items: IdVocabulary
    user_idx: np.ndarray
    item_idx: np.ndarray
    timestamp: np.ndarray | None = None
    rating: np.ndarray | None = None
    order: np.ndarray | None = None
    label: np.ndarray | None = None
    _cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_frame(
        cls,
        frame: pl.DataFrame,
        users: IdVocabulary | None = None,
        items: IdVocabulary | None = None,
    ) -> Interactions:
        """Index a validated frame with string columns ``user_id``, ``item_id`` and optional ``timestamp``
        (int epoch seconds) and ``rating`` (float). Row order is taken as file order."""
        user_ids = frame["user_id"].cast(pl.Utf8).to_list()
        item_ids = frame["item_id"].cast(pl.Utf8).to_list()
        users = users or IdVocabulary.from_ids(user_ids, kind="user")
        items = items or IdVocabulary.from_ids(item_ids, kind="item")
        u = users.indices(user_ids)
        i = items.indices(item_ids)
        keep = (u > 0) & (i > 0)
        ts = frame["timestamp"].to_numpy().astype(np.int64) if "timestamp" in frame.columns else None
        rating = frame["rating"].to_numpy().astype(np.float64) if "rating" in frame.columns else None
        order = np.arange(frame.height, dtype=np.int64)
        return cls(
            users,
            items,
            u[keep],
            i[keep],
            None if ts is None else ts[keep],
            None if rating is None else rating[keep],
            order[keep],
        ).sorted()

    def sorted(self) -> Interactions:
        """Return a copy sorted by (user, timestamp, order)."""
        order = self.order if self.order is not None else np.arange(len(self), dtype=np.int64)
        keys = [order]
        if self.timestamp is not None:
            keys.append(self.timestamp)
        keys.append(self.user_idx)
        perm = np.lexsort(keys)
        return self._take(perm, order=order)

    def _take(self, idx: np.ndarray, order: np.ndarray | None = None) -> Interactions:
        order = self.order if order is None else order
        return Interactions(
            self.users,
            self.items,
            self.user_idx[idx],
            self.item_idx[idx],
            None if self.timestamp is None else self.timestamp[idx],
            None if self.rating is None else self.rating[idx],
            None if order is None else order[idx],
            None if self.label is None else self.label[idx],
        )

    def subset(self, mask: np.ndarray) -> Interactions:
        """Rows where ``mask`` is true (order preserved)."""
        return self._take(np.flatnonzero(mask))

    def concat(self, other: Interactions) -> Interactions:
        """Union of two sets of events over the same vocabularies, re-sorted."""
        if other.users is not self.users and other.users != self.users:
            raise ValueError("cannot concatenate interactions with different user vocabularies")

        def cat(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else np.concatenate([a, b])

        return Interactions(
            self.users,
            self.items,
            np.concatenate([self.user_idx, other.user_idx]),
            np.concatenate([self.item_idx, other.item_idx]),
            cat(self.timestamp, other.timestamp),
            cat(self.rating, other.rating),
            cat(self.order, other.order),
            cat(self.label, other.label),
        ).sorted()

    def with_vocabularies(self, users: IdVocabulary, items: IdVocabulary) -> Interactions:
        """Re-express the same events with other vocabularies (events whose ids are missing are dropped)."""
        u = users.indices(self.users.ids(self.user_idx))
        i = items.indices(self.items.ids(self.item_idx))
        keep = (u > 0) & (i > 0)
        return Interactions(
            users,
            items,
            u[keep],
            i[keep],
            None if self.timestamp is None else self.timestamp[keep],
            None if self.rating is None else self.rating[keep],
            None if self.order is None else self.order[keep],
            None if self.label is None else self.label[keep],
        ).sorted()

    def extend_items(self, ids: Sequence[str]) -> Interactions:
        """The same events over an item vocabulary that also holds ``ids`` (cold items without events).

        Ids already in the vocabulary are skipped; the others get the indices after the current ones, in the
        order given, so every existing index is unchanged. Returns ``self`` when nothing is added.
        """
        extra = [str(i) for i in dict.fromkeys(str(i) for i in ids) if str(i) not in self.items]
        if not extra:
            return self
        items = IdVocabulary([*self.items.all_ids, *extra], kind=self.items.kind)
        return self.with_item_vocabulary(items)

    def with_item_vocabulary(self, items: IdVocabulary) -> Interactions:
        """The same events over ``items``, a vocabulary that starts with this one's ids (indices unchanged)."""
        if items.all_ids[: self.num_items] != self.items.all_ids:
            raise ValueError("with_item_vocabulary needs a vocabulary that extends the current one")
        return Interactions(
            self.users, items, self.user_idx, self.item_idx, self.timestamp, self.rating, self.order, self.label
        )

    def positives(self) -> Interactions:
        """The positive events: every event of a plain log, the ``label == 1`` rows of labelled data."""
        if self.label is None:
            return self
        return Interactions(
            self.users,
            self.items,
            self.user_idx[self.label == 1],
            self.item_idx[self.label == 1],
            None if self.timestamp is None else self.timestamp[self.label == 1],
            None if self.rating is None else self.rating[self.label == 1],
            None if self.order is None else self.order[self.label == 1],
        )

    # ---------------------------------------------------------------- views
    def __len__(self) -> int:
        return int(self.user_idx.shape[0])

    @property
    def num_users(self) -> int:
        """Size of the user vocabulary (padding excluded)."""
        return len(self.users)

    @property
    def num_items(self) -> int:
        """Size of the item vocabulary (padding excluded)."""
        return len(self.items)

    def matrix(self, *, values: str = "binary") -> sp.csr_matrix:
        """User x item CSR matrix of shape ``(num_users + 1, num_items + 1)`` (row/column 0 = padding, empty).

        ``values="binary"`` gives 1.0 per (user, item) pair seen at least once; ``"count"`` counts repeats;
        ``"rating"`` holds the last rating given.
        """
        key = f"matrix:{values}"
        cached = self._cache.get(key)
        if cached is not None:
            return cached  # type: ignore[return-value]
        shape = (self.num_users + 1, self.num_items + 1)
        if values == "rating":
            if self.rating is None:
                raise ValueError("these interactions have no ratings")
            # the last rating given wins
            dok: dict[tuple[int, int], float] = {}
            for u, i, r in zip(self.user_idx.tolist(), self.item_idx.tolist(), self.rating.tolist(), strict=True):
                dok[(u, i)] = r
            rows = np.fromiter((k[0] for k in dok), dtype=np.int64, count=len(dok))
            cols = np.fromiter((k[1] for k in dok), dtype=np.int64, count=len(dok))
            vals = np.fromiter(dok.values(), dtype=np.float64, count=len(dok))
            coo = sp.coo_matrix((vals, (rows, cols)), shape=shape)
            mat = coo.tocsr()
        else:
            data = np.ones(len(self), dtype=np.float32)
            mat = sp.csr_matrix((data, (self.user_idx, self.item_idx)), shape=shape)
            mat.sum_duplicates()
            if values == "binary":
                mat.data[:] = 1.0
            elif values != "count":
                raise ValueError(f"values must be 'binary', 'count' or 'rating'; got {values!r}")
        mat.sort_indices()
        self._cache[key] = mat
        return mat

    def sequence_offsets(self) -> np.ndarray:
        """``(num_users + 2,)`` offsets: user ``u``'s events are rows ``offsets[u]:offsets[u + 1]``."""
        cached = self._cache.get("offsets")
        if cached is None:
            counts = np.bincount(self.user_idx, minlength=self.num_users + 1)
            cached = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            self._cache["offsets"] = cached
        return cached  # type: ignore[return-value]

    def sequences(self) -> list[np.ndarray]:
        """Per-user item-index sequences in time order; entry 0 (padding) is empty. Length ``num_users + 1``."""
        offsets = self.sequence_offsets()
        return [self.item_idx[offsets[u] : offsets[u + 1]] for u in range(self.num_users + 1)]

    def sequence(self, user: int) -> np.ndarray:
        offsets = self.sequence_offsets()
        return self.item_idx[offsets[user] : offsets[user + 1]]

    def padded_sequences(self, max_len: int, users: np.ndarray | None = None) -> np.ndarray:
        """Left-padded ``(len(users), max_len)`` int64 array holding each user's last ``max_len`` items."""
        offsets = self.sequence_offsets()
        users = np.arange(self.num_users + 1) if users is None else np.asarray(users, dtype=np.int64)
        out = np.zeros((len(users), max_len), dtype=np.int64)
        for row, u in enumerate(users.tolist()):
            seq = self.item_idx[offsets[u] : offsets[u + 1]][-max_len:]
            if len(seq):
                out[row, max_len - len(seq) :] = seq
        return out

    def active_users(self) -> np.ndarray:
        """Indices of users with at least one event here."""
        return np.unique(self.user_idx)

    def item_counts(self) -> np.ndarray:
        """``(num_items + 1,)`` event count per item (index 0 = 0)."""
        return np.bincount(self.item_idx, minlength=self.num_items + 1).astype(np.int64)

    def to_frame(self) -> pl.DataFrame:
        """Back to a polars frame with external ids (and timestamp/rating when present)."""
        cols: dict[str, object] = {
            "user_id": self.users.ids(self.user_idx).tolist(),
            "item_id": self.items.ids(self.item_idx).tolist(),
        }
        if self.timestamp is not None:
            cols["timestamp"] = self.timestamp
        if self.rating is not None:
            cols["rating"] = self.rating
        if self.label is not None:
            cols["label"] = self.label
        return pl.DataFrame(cols)

    def __repr__(self) -> str:
        return (
            f"Interactions(events={len(self)}, users={self.num_users}, items={self.num_items}, "
            f"timestamps={self.timestamp is not None}, ratings={self.rating is not None}"
            + (f", positives={int(self.label.sum())})" if self.label is not None else ")")
        )
