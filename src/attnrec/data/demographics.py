"""Popularity within demographic groups: the answer for users without a history who have user features.

The rule (the ``"demographic"`` fallback of :class:`~attnrec.base.Recommender`):

* A *group* is one value of one user field: ``gender=F``, ``occupation=writer``, ``age=[25,35)`` (numeric fields
  are cut into at most :data:`DEFAULT_BUCKETS` quantile buckets over the described users, as
  :func:`~attnrec.data.features.build_feature_table` does). Text fields are not used.
* A group is *usable* when at least ``min_users`` (default :data:`DEFAULT_MIN_USERS`) training users with events
  belong to it; smaller groups (a zip code, a rare occupation) are ignored, so one user's taste never becomes a
  group's answer.
* A group's *share* of item ``i`` is the fraction of the group's training events that are on ``i``.
* A user's score of item ``i`` is the mean of the shares of ``i`` over the user's usable groups (each field
  counts once per value; a user with no usable group gets no demographic answer: global popularity).

So a user described only by ``gender=F`` gets the most popular items among women; ``gender=F`` and
``age=[18,25)`` gives the items popular in both groups, each group weighted equally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnrec.data.features import ItemFeatures, build_feature_table
from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError, PersistenceError

DEFAULT_MIN_USERS = 20
"""Training users a group needs to be used."""
DEFAULT_BUCKETS = 5
"""Quantile buckets of a numeric user field (age)."""


@dataclass(frozen=True)
class DemographicPopularity:
    """Item shares per demographic group, and the groups of the users described in the user features.

    Attributes:
        groups: ``(G,)`` group tokens ``field=value`` (numeric fields: ``field=<bucket label>``).
        shares: ``(G, num_items + 1)`` float32: row ``g`` is the fraction of group ``g``'s training events on each
            item (column 0 is 0).
        group_users: ``(G,)`` int64 training users in each group (all ``>= min_users``).
        numeric: numeric field -> ``(bucket edges, bucket labels)`` (value ``x`` is in bucket
            ``#{edges <= x}``, 0-based into the labels).
        user_groups: user id -> usable group tokens, for every user of the user features with at least one.
        min_users: the ``min_users`` the groups were built with.
    """

    groups: list[str]
    shares: np.ndarray
    group_users: np.ndarray
    numeric: dict[str, tuple[list[float], list[str]]] = field(default_factory=dict)
    user_groups: dict[str, list[str]] = field(default_factory=dict)
    min_users: int = DEFAULT_MIN_USERS

    # ------------------------------------------------------------------ building
    @classmethod
    def fit(
        cls,
        features: ItemFeatures,
        train: Interactions,
        *,
        min_users: int = DEFAULT_MIN_USERS,
        buckets: int = DEFAULT_BUCKETS,
    ) -> DemographicPopularity | None:
        """Group shares from the positive events of ``train`` and the user ``features``; ``None`` when no group
        has ``min_users`` training users (then nobody gets a demographic answer)."""
        if min_users < 1:
            raise ConfigError(f"the 'min_users' parameter of DemographicPopularity must be >= 1; got {min_users}")
        train = train.positives()
        described = [u for u in features.ids if u not in train.users]
        row_ids = [*train.users.all_ids, *described]
        table = build_feature_table(features, row_ids, buckets=buckets)
        n_train = len(train.users)
        tokens: list[str] = []
        numeric: dict[str, tuple[list[float], list[str]]] = {}
        for info in table.fields:
            if info.kind == "numeric":
                numeric[info.name] = ([float(e) for e in info.edges], list(info.values))
            tokens.extend(f"{info.name}={v}" for v in info.values)
        gids = table.global_ids()  # (rows, columns), 0 = missing, else 1 + token index
        # users per token among training users with events
        has_events = np.zeros(len(row_ids) + 1, dtype=bool)
        has_events[np.unique(train.user_idx)] = True
        member = np.zeros((len(row_ids) + 1, len(tokens) + 1), dtype=bool)
        rows = np.repeat(np.arange(len(row_ids) + 1), gids.shape[1])
        member[rows, gids.ravel()] = True
        member[:, 0] = False
        counts = member[has_events].sum(axis=0)
        usable = np.flatnonzero(counts >= min_users)
        if len(usable) == 0:
            return None
        n_items = len(train.items)
        shares = np.zeros((len(usable), n_items + 1), dtype=np.float64)
        for g, col in enumerate(usable.tolist()):
            users_in = member[: n_train + 1, col]
            events = users_in[train.user_idx]
            if events.any():
                shares[g] = np.bincount(train.item_idx[events], minlength=n_items + 1) / events.sum()
        shares[:, 0] = 0.0
        kept = [tokens[c - 1] for c in usable.tolist()]
        user_groups: dict[str, list[str]] = {}
        for row, ident in enumerate(row_ids, start=1):
            own = [kept[j] for j in np.flatnonzero(member[row, usable]).tolist()]
            if own:
                user_groups[ident] = own
        return cls(kept, shares.astype(np.float32), counts[usable].astype(np.int64), numeric, user_groups, min_users)

    # ------------------------------------------------------------------ answering
    def tokens_for(self, values: Mapping[str, Any]) -> list[str]:
        """The usable group tokens of a user described at request time by ``{field: value}`` (a list value for a
        multi-valued field; numbers for numeric fields). Unknown fields and values are ignored."""
        known = set(self.groups)
        out: list[str] = []
        for name, value in values.items():
            cells = value if isinstance(value, list | tuple) else [value]
            for cell in cells:
                if cell is None or cell == "":
                    continue
                if name in self.numeric:
                    try:
                        number = float(cell)
                    except (TypeError, ValueError):
                        continue
                    edges, labels = self.numeric[name]
                    token = f"{name}={labels[int(np.searchsorted(np.asarray(edges), number, side='right'))]}"
                else:
                    token = f"{name}={cell}"
                if token in known and token not in out:
                    out.append(token)
        return out

    def scores(self, tokens: Sequence[str]) -> np.ndarray | None:
        """``(num_items + 1,)`` float32 mean share over the usable groups among ``tokens``; ``None`` when none is
        usable."""
        index = {g: j for j, g in enumerate(self.groups)}
        rows = sorted({index[t] for t in tokens if t in index})
        if not rows:
            return None
        return np.asarray(self.shares[rows].mean(axis=0), dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, meta)`` saved beside a model (:meth:`from_state` reads them)."""
        meta = {
            "groups": list(self.groups),
            "numeric": {k: {"edges": e, "labels": lab} for k, (e, lab) in self.numeric.items()},
            "user_groups": {k: list(v) for k, v in self.user_groups.items()},
            "min_users": self.min_users,
        }
        return {"shares": self.shares, "group_users": self.group_users}, meta

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> DemographicPopularity:
        try:
            groups = [str(g) for g in meta["groups"]]
            numeric = {
                str(k): ([float(x) for x in v["edges"]], [str(x) for x in v["labels"]])
                for k, v in dict(meta.get("numeric") or {}).items()
            }
            users = {str(k): [str(t) for t in v] for k, v in dict(meta.get("user_groups") or {}).items()}
            shares, group_users = arrays["shares"], arrays["group_users"]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PersistenceError(f"demographic popularity: invalid saved state ({exc})") from None
        if shares.ndim != 2 or shares.shape[0] != len(groups):
            raise PersistenceError(
                f"demographic popularity: {len(groups)} groups but shares of shape {tuple(shares.shape)}"
            )
        return cls(groups, shares, group_users, numeric, users, int(meta.get("min_users", DEFAULT_MIN_USERS)))


__all__ = ["DEFAULT_BUCKETS", "DEFAULT_MIN_USERS", "DemographicPopularity"]
