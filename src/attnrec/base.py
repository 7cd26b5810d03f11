"""The one contract every recommender follows.

A model is fitted on :class:`~attnrec.data.Interactions` (indexed events), keeps the histories it was fitted on
(replaceable with :meth:`Recommender.set_histories`), scores all items for a batch of (user, history) pairs and
recommends the top k. Subclasses implement :meth:`_fit`, :meth:`score_indices` and, for persistence,
:meth:`_get_state` / :meth:`_set_state`.

Conventions:

* Item index 0 is padding. Score arrays have shape ``(batch, num_items + 1)`` and column 0 is ``-inf``.
* ``user_idx == 0`` means an unknown/anonymous user. A model personalises from the history when it can
  (``uses_history``); otherwise, and for an empty history, it falls back, flagged per row: to the most popular
  items among users of the same demographic groups (``"demographic"``, when the model was given user features
  and the user is described, :mod:`attnrec.data.demographics`), else to global popularity (``"popularity"``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from attnrec import __version__
from attnrec.config import ModelConfig
from attnrec.data.interactions import Interactions
from attnrec.data.vocab import IdVocabulary
from attnrec.errors import ConfigError, NotFittedError, PersistenceError
from attnrec.io import FORMAT_NAME, FORMAT_VERSION, load_arrays, read_json, save_arrays, write_json
from attnrec.training.options import TrainingOptions

MODEL_JSON = "model.json"
MODEL_WEIGHTS = "model.safetensors"
VOCAB_JSON = "vocab.json"
SCORE_CELLS = 1 << 24
"""Most score cells (rows x catalogue) one ``score_indices`` call of :meth:`Recommender.score_candidates` may
return (64 MiB of float32)."""


@dataclass(frozen=True)
class Recommendations:
    """Top-k results for a batch of requests.

    Attributes:
        users: the requested user ids (``""`` for an anonymous history).
        item_idx: ``(batch, k)`` item indices; 0 where fewer than k items could be recommended.
        items: ``(batch, k)`` external item ids (``""`` where ``item_idx`` is 0).
        scores: ``(batch, k)`` float32 scores (``-inf`` where ``item_idx`` is 0).
        fallback: ``(batch,)`` bool, true where a fallback answered (the model could not personalise).
        fallback_kind: ``(batch,)`` str, which fallback answered: ``""`` (none, the model's own scores),
            ``"popularity"`` (global popularity) or ``"demographic"`` (popularity within the user's demographic
            groups); ``None`` in results built before 0.3 (read :meth:`fallback_name`).
    """

    users: list[str]
    item_idx: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    fallback: np.ndarray
    fallback_kind: np.ndarray | None = None

    def fallback_name(self, i: int) -> str | None:
        """The fallback that answered row ``i`` (``"popularity"``, ``"demographic"``) or ``None``."""
        if not bool(self.fallback[i]):
            return None
        if self.fallback_kind is None or not str(self.fallback_kind[i]):
            return "popularity"
        return str(self.fallback_kind[i])

    def row(self, i: int) -> list[tuple[str, float]]:
        """``[(item_id, score), ...]`` of row ``i`` without padding."""
        return [
            (str(item), float(score))
            for item, score, idx in zip(self.items[i], self.scores[i], self.item_idx[i], strict=True)
            if idx > 0
        ]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest scores per row, best first (ties: lower index first)."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64), np.zeros((scores.shape[0], 0), dtype=scores.dtype)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    # argpartition keeps an arbitrary subset of a tie at the k-th place: redo such rows with a stable sort
    tie = (scores >= vals.min(axis=1, keepdims=True)).sum(axis=1) > k
    if tie.any():
        rows = np.flatnonzero(tie)
        part[rows] = np.argsort(-scores[rows], axis=1, kind="stable")[:, :k]
        vals[rows] = np.take_along_axis(scores[rows], part[rows], axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx.astype(np.int64), np.take_along_axis(scores, idx, axis=1)


def catalogue_columns(
    model: Any, user_idx: np.ndarray, histories: Sequence[np.ndarray], items: np.ndarray
) -> np.ndarray:
    """``(len(histories), len(items))`` float64: the ``items`` columns of ``model.score_indices``, computed in
    chunks of at most :data:`SCORE_CELLS` cells (the default :meth:`Recommender.score_candidates`, and what any
    object with only ``score_indices`` gets)."""
    items = np.asarray(items, dtype=np.int64)
    users = np.asarray(user_idx, dtype=np.int64)
    width = max(1, int(getattr(model, "num_items", 0)) + 1)
    chunk = max(1, SCORE_CELLS // width)
    out = np.empty((len(histories), len(items)), dtype=np.float64)
    for start in range(0, len(histories), chunk):
        part = list(histories[start : start + chunk])
        out[start : start + len(part)] = model.score_indices(users[start : start + len(part)], part)[:, items]
    return out


def pair_indices(user_idx: Any, item_idx: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(users, items)``: the (user, item) index pairs of :meth:`Recommender.score_pairs` as flat int64 arrays;
    a one-line :class:`ConfigError` when their lengths differ."""
    users = np.asarray(user_idx, dtype=np.int64).ravel()
    items = np.asarray(item_idx, dtype=np.int64).ravel()
    if users.shape != items.shape:
        raise ConfigError(f"'user_idx' and 'item_idx' must have the same length; got {len(users)} and {len(items)}")
    return users, items


class Recommender(ABC):
    """Base class of every attnrec model.

    Class attributes a subclass sets:
        name: registry name (``--model``).
        config_class: its :class:`~attnrec.config.ModelConfig` subclass.
        citation: the paper (or ``""`` for plain baselines).
        uses_history: true when scores for a user follow from the item history alone (so unknown users
            with a history are personalised and new events change results without retraining).
        predicts_ratings: true for explicit-rating models (MAE/RMSE apply).

    ``uses_time`` (an attribute, may depend on the config): true when :meth:`score_indices` reads the times of
    the history events (its ``times`` argument); callers that know them pass them through
    :meth:`scores_with_fallback` / :meth:`recommend_indices`, and other models never receive them.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    citation: ClassVar[str] = ""
    uses_history: ClassVar[bool] = True
    predicts_ratings: ClassVar[bool] = False
    supports_explain: ClassVar[bool] = False
    uses_time: bool = False
    task: ClassVar[str] = "ranking"
    """The task the model is made for, its default ``--task``: ``"ranking"`` (top-k over the catalogue, trained on
    a log) or ``"ctr"`` (click prediction, trained on labelled impressions: ``train.label`` is set)."""
    predicts_probabilities: ClassVar[bool] = False
    """True when :meth:`score_pairs` returns click probabilities in ``[0, 1]`` (logloss is reported only then)."""
    fit_kind: ClassVar[str] = "closed-form"
    """How ``fit`` works, for reports: ``"closed-form"`` (one solve or count), ``"iterations"`` (a fixed number
    of sweeps, ``config.iterations``) or ``"epochs"`` (gradient epochs with validation and early stopping)."""

    def __init__(self, config: ModelConfig | dict[str, Any] | None = None, **overrides: Any) -> None:
        if isinstance(config, self.config_class):
            self.config = config.with_updates(**overrides) if overrides else config
        elif config is None or isinstance(config, dict):
            self.config = self.config_class.create(config or {}, **overrides)
        else:
            raise ConfigError(
                f"the 'config' parameter of {type(self).__name__} must be a {self.config_class.__name__} or a "
                f"dict; got {type(config).__name__}"
            )
        self.users_: IdVocabulary | None = None
        self.items_: IdVocabulary | None = None
        self.popularity_: np.ndarray | None = None
        self._hist_offsets: np.ndarray | None = None
        self._hist_items: np.ndarray | None = None
        self._hist_times: np.ndarray | None = None
        self.fit_seconds_: float = 0.0
        self.train_info_: dict[str, Any] = {}
        self.requested_config_: ModelConfig = self.config
        """The config as given; ``config`` becomes it with the data rules (:meth:`data_rules`) applied once fitted."""
        self.data_rules_: dict[str, tuple[Any, str]] = {}
        """The rules applied by the last fit: ``{field: (value, reason)}``."""
        self.item_features_: Any | None = None
        self.user_features_: Any | None = None
        self.demographics_: Any | None = None
        """:class:`~attnrec.data.demographics.DemographicPopularity` learned at fit from ``user_features_``
        (``None`` without user features); saved with the model."""

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        *,
        options: TrainingOptions | None = None,
    ) -> Self:
        """Fit on ``train`` (``valid`` is used by models that early-stop). Returns ``self``.

        Labelled impressions (``train.label`` set, task ``ctr``) reach :meth:`_fit` whole only for models whose
        ``task`` is ``"ctr"``; other models are fitted on the positive impressions. Popularity and the stored
        histories always count positives only.
        """
        if len(train) == 0:
            raise ConfigError("cannot fit on an empty set of interactions")
        options = options or TrainingOptions()
        before = dict(self.__dict__)  # a failed fit leaves the model as it found it (unfitted stays unfitted)
        try:
            self._fit_all(train, valid, options)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        return self

    def _fit_all(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        if self.task != "ctr":
            train = train.positives()
            valid = None if valid is None else valid.positives()
        self.users_ = train.users
        self.items_ = train.items
        counts = train.positives().item_counts().astype(np.float32)
        counts[0] = 0.0
        self.popularity_ = counts
        self.demographics_ = None
        if self.user_features_ is not None and len(self.user_features_):
            from attnrec.data.demographics import DemographicPopularity

            self.demographics_ = DemographicPopularity.fit(self.user_features_, train)
        self.set_histories(train)
        # a config assigned since the last fit is the new request; otherwise the last request applies again
        changed = self.config is not getattr(self, "_ruled_config", None)
        requested = self.config if changed else self.requested_config_
        rules = self.data_rules(train, requested)
        self.config = requested.with_updates(**{k: v for k, (v, _) in rules.items()}) if rules else requested
        self.requested_config_, self._ruled_config, self.data_rules_ = requested, self.config, rules
        start = time.perf_counter()
        self._fit(train, valid, options)
        self.fit_seconds_ = time.perf_counter() - start
        if rules:
            self.train_info_ = {
                **self.train_info_,
                "data_rules": {k: {"value": v, "why": why} for k, (v, why) in rules.items()},
            }

    def rules_for(self, train: Interactions) -> dict[str, tuple[Any, str]]:
        """The data rules a :meth:`fit` on ``train`` (as given to it) would apply to the config as it is now
        (``{field: (value, reason)}``), without fitting."""
        return self.data_rules(train if self.task == "ctr" else train.positives(), self.config)

    def data_rules(self, train: Interactions, config: Any) -> dict[str, tuple[Any, str]]:
        """Values for the config fields left at ``None`` that a rule derives from the training data:
        ``{field: (value, reason)}``. Fitting replaces ``config`` by the requested config with these values (so
        the saved model and its run record what was used); the reasons go to ``train_info_["data_rules"]``."""
        return {}

    @abstractmethod
    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        """Learn the parameters (attributes ending in ``_``)."""

    def set_histories(self, interactions: Interactions) -> None:
        """Replace the per-user histories the model knows (for ``recommend(users=...)``) without refitting."""
        if self.users_ is not None and interactions.users is not self.users_ and interactions.users != self.users_:
            interactions = interactions.with_vocabularies(self.users_, self.items_)  # type: ignore[arg-type]
        interactions = interactions.positives()
        self._hist_offsets = interactions.sequence_offsets().copy()
        self._hist_items = interactions.item_idx.copy()
        keep_times = self.uses_time and interactions.timestamp is not None
        self._hist_times = interactions.timestamp.copy() if keep_times else None  # type: ignore[union-attr]

    def history(self, user_idx: int) -> np.ndarray:
        """The known item-index history of a user (empty for 0 or an unknown index)."""
        self._check_fitted()
        assert self._hist_offsets is not None and self._hist_items is not None
        if not 0 < user_idx < len(self._hist_offsets) - 1:
            return np.zeros(0, dtype=np.int64)
        return self._hist_items[self._hist_offsets[user_idx] : self._hist_offsets[user_idx + 1]]

    def history_times(self, user_idx: int) -> np.ndarray | None:
        """Epoch seconds of the events of :meth:`history` (``None`` when the histories carry no time)."""
        self._check_fitted()
        if self._hist_times is None:
            return None
        assert self._hist_offsets is not None
        if not 0 < user_idx < len(self._hist_offsets) - 1:
            return np.zeros(0, dtype=np.int64)
        return self._hist_times[self._hist_offsets[user_idx] : self._hist_offsets[user_idx + 1]]

    def _known_times(self, user_idx: np.ndarray) -> list[np.ndarray] | None:
        """The stored event times of each user (``None`` unless the model uses time and the histories have it)."""
        if not self.uses_time or self._hist_times is None:
            return None
        return [self.history_times(int(u)) for u in user_idx]  # type: ignore[misc]

    # ------------------------------------------------------------------ scoring
    @abstractmethod
    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every item for each (user, history) pair.

        Args:
            user_idx: ``(batch,)`` int64 user indices, 0 for unknown/anonymous users.
            histories: ``batch`` int64 arrays of item indices, oldest first (may be empty).

        Returns:
            ``(batch, num_items + 1)`` float32 scores, column 0 = ``-inf``. Rows the model cannot personalise
            may hold anything: :meth:`scores_with_fallback` replaces them.
        """

    def score_candidates(self, user_idx: np.ndarray, histories: Sequence[np.ndarray], items: np.ndarray) -> np.ndarray:
        """Scores of the same candidate ``items`` after each (user, history) pair, what occlusion explanations
        score many times over (one history with items removed per row).

        The default scores every item (:meth:`score_indices`) in chunks of at most :data:`SCORE_CELLS` cells and
        keeps the candidates' columns. Models whose score of an item does not need the whole catalogue (DIN
        scores each candidate against the history) override it, so an explanation costs what its candidates
        cost, not a catalogue per shortened history.

        Args:
            user_idx: ``(batch,)`` int64 user indices, 0 for unknown/anonymous users.
            histories: ``batch`` int64 arrays of item indices, oldest first.
            items: ``(k,)`` int64 item indices (>= 1).

        Returns:
            ``(batch, k)`` float64 scores, the same values as ``score_indices(user_idx, histories)[:, items]``.
        """
        return catalogue_columns(self, user_idx, histories, items)

    def can_personalise(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``(batch,)`` bool: rows the model personalises (others get the popularity fallback)."""
        has_history = np.asarray([len(h) > 0 for h in histories], dtype=bool)
        known = np.asarray(user_idx) > 0
        return has_history if self.uses_history else known

    def scores_with_fallback(
        self,
        user_idx: np.ndarray,
        histories: Sequence[np.ndarray],
        times: Sequence[np.ndarray] | None = None,
        *,
        demographics: Sequence[Sequence[str] | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores as :meth:`score_indices`, with a fallback in the rows that cannot be personalised.

        ``times``: epoch seconds of each history's events, passed on to models that use time (``uses_time``).
        ``demographics``: per row, the user's demographic group tokens (:meth:`demographic_groups`), or ``None``
        to look them up by ``user_idx``. Returns ``(scores, fallback)`` where ``fallback`` is a ``(batch,)`` bool
        array; :meth:`scores_and_fallbacks` also says which fallback answered.
        """
        scores, kinds = self.scores_and_fallbacks(user_idx, histories, times, demographics=demographics)
        return scores, kinds != ""

    def scores_and_fallbacks(
        self,
        user_idx: np.ndarray,
        histories: Sequence[np.ndarray],
        times: Sequence[np.ndarray] | None = None,
        *,
        demographics: Sequence[Sequence[str] | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`scores_with_fallback`, returning ``(scores, kinds)``: ``kinds`` is a ``(batch,)`` str array,
        ``""`` where the model personalised, ``"demographic"`` where the user's demographic groups answered and
        ``"popularity"`` where global popularity did."""
        self._check_fitted()
        user_idx = np.asarray(user_idx, dtype=np.int64)
        ok = self.can_personalise(user_idx, histories)
        kinds = np.full(len(user_idx), "", dtype="<U11")
        scores = np.empty((len(user_idx), self.num_items + 1), dtype=np.float32)
        if ok.any():
            rows = np.flatnonzero(ok)
            part = [histories[int(r)] for r in rows]
            if self.uses_time and times is not None:
                ts = [times[int(r)] for r in rows]
                scores[rows] = self.score_indices(user_idx[rows], part, times=ts)  # type: ignore[call-arg]
            else:
                scores[rows] = self.score_indices(user_idx[rows], part)
        for r in np.flatnonzero(~ok).tolist():
            assert self.popularity_ is not None
            tokens = demographics[r] if demographics is not None else None
            if tokens is None and user_idx[r] > 0 and self.users_ is not None:
                tokens = self.demographic_groups(self.users_.id(int(user_idx[r])))
            demo = None if tokens is None or self.demographics_ is None else self.demographics_.scores(tokens)
            if demo is not None:
                scores[r], kinds[r] = demo, "demographic"
            else:
                scores[r], kinds[r] = self.popularity_, "popularity"
        scores[:, 0] = -np.inf
        return scores, kinds

    def demographic_groups(self, user_id: str, features: Any | None = None) -> list[str] | None:
        """The demographic group tokens (``gender=F``, ...) that answer for ``user_id`` when the model cannot
        personalise: from ``features`` (``{field: value}`` given at request time) when given, else from the user
        features the model was fitted with. ``None`` when the model has no user features or no usable group
        matches (then global popularity answers)."""
        if self.demographics_ is None:
            return None
        if features is not None:
            tokens = self.demographics_.tokens_for(features)
        else:
            tokens = self.demographics_.user_groups.get(str(user_id), [])
        return tokens or None

    def recommend(
        self,
        users: Sequence[str] | None = None,
        *,
        histories: Sequence[Sequence[str]] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        user_features: Sequence[Any | None] | None = None,
    ) -> Recommendations:
        """Top-``k`` items for known users and/or explicit histories.

        Args:
            users: external user ids. Known users use their stored history; unknown users get a fallback
                (flagged) unless ``histories`` gives them one: popularity within their demographic groups when
                the model was fitted with user features that describe them (or ``user_features`` does), else
                global popularity.
            histories: external item ids per request, oldest first; when given with ``users`` (same length) it
                replaces the stored history; alone it describes anonymous sessions. Unknown items are ignored.
            k: number of items per request (``>= 1``).
            exclude_seen: drop items of the history from the results.
            user_features: per request, ``{field: value}`` demographics given now (e.g. ``{"gender": "F", "age":
                25}``) for users the model cannot personalise, or ``None`` to use the fitted user features.
        """
        self._check_fitted()
        assert self.users_ is not None and self.items_ is not None
        if k < 1:
            raise ConfigError(f"the 'k' parameter of recommend must be >= 1; got {k}")
        if users is None and histories is None:
            raise ConfigError("recommend needs 'users', 'histories' or both")
        if users is not None and isinstance(users, str):
            raise ConfigError("the 'users' parameter of recommend must be a sequence of ids, not a string")
        if users is not None and histories is not None and len(users) != len(histories):
            raise ConfigError(
                f"'users' and 'histories' must have the same length; got {len(users)} and {len(histories)}"
            )
        n = len(users) if users is not None else len(histories)  # type: ignore[arg-type]
        user_ids = [str(u) for u in users] if users is not None else [""] * n
        uidx = np.asarray([self.users_.get(u) for u in user_ids], dtype=np.int64)
        if histories is not None:
            hist = [self.items_.indices(h, unknown="drop") for h in histories]
        else:
            hist = [self.history(int(u)) for u in uidx]
        times = None if histories is not None else self._known_times(uidx)
        if user_features is not None and len(user_features) != n:
            raise ConfigError(f"'user_features' must have one entry per request ({n}); got {len(user_features)}")
        demographics = [
            self.demographic_groups(u, None if user_features is None else user_features[r])
            for r, u in enumerate(user_ids)
        ]
        return self.recommend_indices(
            uidx, hist, k=k, exclude_seen=exclude_seen, user_ids=user_ids, times=times, demographics=demographics
        )

    def recommend_indices(
        self,
        user_idx: np.ndarray,
        histories: Sequence[np.ndarray],
        *,
        k: int = 10,
        exclude_seen: bool = True,
        user_ids: list[str] | None = None,
        times: Sequence[np.ndarray] | None = None,
        demographics: Sequence[Sequence[str] | None] | None = None,
    ) -> Recommendations:
        """Index-level :meth:`recommend` (used by evaluation and serving); ``times`` and ``demographics`` as in
        :meth:`scores_with_fallback`."""
        assert self.items_ is not None
        scores, kinds = self.scores_and_fallbacks(user_idx, histories, times, demographics=demographics)
        if exclude_seen:
            for row, h in enumerate(histories):
                if len(h):
                    scores[row, h] = -np.inf
        idx, vals = top_k(scores, k)
        idx = np.where(np.isfinite(vals), idx, 0)
        if user_ids is None:
            assert self.users_ is not None
            user_ids = [self.users_.id(int(u)) if u > 0 else "" for u in user_idx]
        return Recommendations(user_ids, idx, self.items_.ids(idx), vals.astype(np.float32), kinds != "", kinds)

    def set_features(self, items: Any | None = None, users: Any | None = None) -> Self:
        """Give the model side information before :meth:`fit`: :class:`~attnrec.data.features.ItemFeatures` and
        :class:`~attnrec.data.features.UserFeatures` (``attnrec train --items/--users`` calls it). Stored as
        ``item_features_`` / ``user_features_``; models that use features read them in ``_fit`` (e.g.
        ``self.item_features_.table(train.items)``) and save what they need. User features also give every model
        the ``"demographic"`` fallback for users it cannot personalise (learned at fit, saved with the model).
        ``None`` leaves that part unchanged. Returns ``self``."""
        if items is not None:
            self.item_features_ = items
        if users is not None:
            self.user_features_ = users
        return self

    def score_pairs(
        self,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        *,
        history: Interactions | None = None,
        batch_size: int = 256,
    ) -> np.ndarray:
        """Scores of explicit (user, item) index pairs, for click prediction and candidate re-ranking.

        The default scores each distinct user's row once (:meth:`scores_with_fallback`, popularity for users the
        model cannot personalise), ``batch_size`` users at a time, and picks the pairs' items: memory is
        ``batch_size x (num_items + 1)``, never ``n_pairs x (num_items + 1)``. Models that score a pair cheaply
        (click models) override it. A model with ``predicts_probabilities`` returns probabilities.

        Args:
            user_idx: ``(n,)`` int64 user indices (0 = unknown user).
            item_idx: ``(n,)`` int64 item indices (0 = unknown item: NaN).
            history: the events each user's history is taken from (positives only); ``None``: the stored
                histories (:meth:`set_histories`).
            batch_size: distinct users scored at once.

        Returns:
            ``(n,)`` float64 scores aligned with the pairs; NaN for item index 0.
        """
        self._check_fitted()
        users, items = pair_indices(user_idx, item_idx)
        if batch_size < 1:
            raise ConfigError(f"the 'batch_size' parameter of score_pairs must be >= 1; got {batch_size}")
        out = np.full(len(users), np.nan, dtype=np.float64)
        if len(users) == 0:
            return out
        if history is not None:
            history = history.positives()
            if history.users != self.users_ or history.items != self.items_:
                history = history.with_vocabularies(self.users_, self.items_)  # type: ignore[arg-type]
            offsets, hist_items = history.sequence_offsets(), history.item_idx
        distinct, inverse = np.unique(users, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(distinct) + 1))
        for start in range(0, len(distinct), batch_size):
            chunk = distinct[start : start + batch_size]
            if history is None:
                hists = [self.history(int(u)) for u in chunk]
            else:
                hists = [
                    hist_items[offsets[u] : offsets[u + 1]] if 0 < u < len(offsets) - 1 else hist_items[:0]
                    for u in chunk.tolist()
                ]
            scores, _ = self.scores_with_fallback(chunk, hists)
            rows = order[bounds[start] : bounds[min(start + batch_size, len(distinct))]]
            out[rows] = scores[inverse[rows] - start, items[rows]]
        out[items == 0] = np.nan
        return out

    def score(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        """Score of each (user, item) pair (same length); unknown users get popularity, unknown items NaN."""
        self._check_fitted()
        assert self.users_ is not None and self.items_ is not None
        if len(users) != len(items):
            raise ConfigError(f"'users' and 'items' must have the same length; got {len(users)} and {len(items)}")
        uidx = np.asarray([self.users_.get(u) for u in users], dtype=np.int64)
        iidx = np.asarray([self.items_.get(i) for i in items], dtype=np.int64)
        return self.score_pairs(uidx, iidx)

    def to(self, device: str | Any) -> Self:
        """Move the model's weights to ``device`` (``"auto"``, ``"cpu"``, ``"cuda[:N]"``) for inference; models
        without torch weights stay where they are. Returns ``self``."""
        from attnrec.training.options import resolve_device

        resolve_device(device)
        return self

    def explain_indices(
        self, history: np.ndarray, items: np.ndarray, *, top: int = 5, method: str | None = None
    ) -> list[list[tuple[int, float]]]:
        """Why each of ``items`` is recommended after ``history``: per item, up to ``top`` ``(history item
        index, weight)`` pairs, largest weight first, by one of the methods of :mod:`attnrec.explain` (``None``:
        the model's default). A model without explanations raises a one-line
        :class:`~attnrec.explain.base.ExplainError` naming the models that explain."""
        from attnrec.explain.methods import explain_history

        return explain_history(self, history, items, top=top, method=method)

    def explain_attributions(
        self,
        history: np.ndarray,
        items: np.ndarray,
        *,
        top: int = 5,
        method: str | None = None,
        user_idx: int | None = None,
    ) -> list[Any]:
        """Why each of ``items`` is recommended after ``history``: one
        :class:`~attnrec.explain.base.Explanation` per item whose attributions may credit history items, item
        attributes or feature fields (what ``recommend --explain`` and the service's ``because`` show). A model
        that overrides :meth:`explain_indices` with its own history-item reasons gets those. ``user_idx``: the
        user asking (0 / None: anonymous), for methods that depend on it (AutoInt's field attention)."""
        from attnrec.explain.base import Attribution, Explanation
        from attnrec.explain.methods import explain

        if type(self).explain_indices is Recommender.explain_indices:
            return explain(self, history, items, top=top, method=method, user=user_idx)
        history = np.asarray(history, dtype=np.int64)
        last = {int(h): pos for pos, h in enumerate(history.tolist())}
        pairs = self.explain_indices(history, np.asarray(items, dtype=np.int64), top=top, method=method)
        return [
            Explanation(
                int(item),
                method or "model",
                tuple(
                    Attribution("history_item", float(w), index=int(h), position=last.get(int(h), 0))
                    for h, w in per_item
                ),
            )
            for item, per_item in zip(np.asarray(items).tolist(), pairs, strict=True)
        ]

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predicted ratings for (user, item) index pairs; only models with ``predicts_ratings``."""
        raise NotImplementedError(f"{type(self).__name__} does not predict ratings")

    # ------------------------------------------------------------------ sizes
    @property
    def num_items(self) -> int:
        self._check_fitted()
        assert self.items_ is not None
        return len(self.items_)

    @property
    def num_users(self) -> int:
        self._check_fitted()
        assert self.users_ is not None
        return len(self.users_)

    @property
    def is_fitted(self) -> bool:
        return self.items_ is not None

    def _check_fitted(self) -> None:
        if self.items_ is None:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' (or 'load') before using it."
            )

    def get_config(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (names without dots are fine)."""
        return {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:  # noqa: B027
        """Restore learned arrays saved by :meth:`_get_state`."""

    def _get_meta(self) -> dict[str, Any]:
        """Extra JSON-serialisable facts to save (e.g. training info)."""
        return {}

    def _load_parts(self, folder: Path) -> None:  # noqa: B027
        """Load what a model saved beside its own files (e.g. a fusion's members); called last by :meth:`load`."""

    def save(self, path: str | Path) -> Path:
        """Write ``model.json``, ``model.safetensors`` and ``vocab.json`` into folder ``path``."""
        self._check_fitted()
        assert self.users_ is not None and self.items_ is not None and self.popularity_ is not None
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f"model.{k}": v for k, v in self._get_state().items()}
        arrays["base.popularity"] = self.popularity_
        arrays["base.hist_offsets"] = self._hist_offsets  # type: ignore[assignment]
        arrays["base.hist_items"] = self._hist_items  # type: ignore[assignment]
        if self._hist_times is not None:
            arrays["base.hist_times"] = self._hist_times
        demographics = None
        if self.demographics_ is not None:
            demo_arrays, demographics = self.demographics_.to_state()
            arrays.update({f"base.demographics.{k}": v for k, v in demo_arrays.items()})
        save_arrays(folder / MODEL_WEIGHTS, arrays)
        write_json(folder / VOCAB_JSON, {"users": self.users_.to_json(), "items": self.items_.to_json()})
        write_json(
            folder / MODEL_JSON,
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "attnrec_version": __version__,
                "model": self.name,
                "config": self.get_config(),
                "fit_seconds": self.fit_seconds_,
                "meta": self._get_meta(),
                **({"demographics": demographics} if demographics is not None else {}),
            },
        )
        return folder

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model saved by :meth:`save` (dispatching on the saved model name when called on the base)."""
        from attnrec.registry import get_model_class

        folder = Path(path)
        if not folder.is_dir():
            raise PersistenceError(f"{folder}: not a model folder (directory not found)")
        info = read_json(folder / MODEL_JSON)
        if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
            raise PersistenceError(f"{folder / MODEL_JSON}: not an attnrec model file")
        if info.get("format_version") != FORMAT_VERSION:
            raise PersistenceError(
                f"{folder / MODEL_JSON}: format_version {info.get('format_version')!r} is not supported "
                f"(this attnrec reads version {FORMAT_VERSION})"
            )
        model_cls = get_model_class(str(info.get("model")))
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise PersistenceError(f"{folder}: holds a {info.get('model')!r} model, not {cls.name!r}")
        try:
            model = model_cls(info.get("config") or {})
        except ConfigError as exc:
            raise PersistenceError(f"{folder / MODEL_JSON}: invalid config ({exc})") from None
        vocab = read_json(folder / VOCAB_JSON)
        try:
            model.users_ = IdVocabulary.from_json(vocab["users"])
            model.items_ = IdVocabulary.from_json(vocab["items"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PersistenceError(f"{folder / VOCAB_JSON}: invalid vocabulary ({exc})") from None
        arrays = load_arrays(folder / MODEL_WEIGHTS)
        try:
            model.popularity_ = arrays["base.popularity"]
            model._hist_offsets = arrays["base.hist_offsets"]
            model._hist_items = arrays["base.hist_items"]
            model._hist_times = arrays.get("base.hist_times")
        except KeyError as exc:
            raise PersistenceError(f"{folder / MODEL_WEIGHTS}: missing array {exc}") from None
        if model.popularity_.shape[0] != len(model.items_) + 1:
            raise PersistenceError(f"{folder}: weights do not match the item vocabulary size")
        if isinstance(info.get("demographics"), dict):
            from attnrec.data.demographics import DemographicPopularity

            prefix = "base.demographics."
            model.demographics_ = DemographicPopularity.from_state(
                {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}, info["demographics"]
            )
        state = {k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")}
        try:
            model._set_state(state, dict(info.get("meta") or {}))
        except (KeyError, ValueError, RuntimeError) as exc:
            raise PersistenceError(f"{folder}: cannot restore model weights ({exc})") from None
        model._load_parts(folder)
        model.fit_seconds_ = float(info.get("fit_seconds") or 0.0)
        return model
