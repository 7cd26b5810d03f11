"""Fusion: a weighted blend of fitted recommenders, its weights tuned on validation.

Score fusion in the CombSUM family (E. A. Fox and J. A. Shaw, "Combination of Multiple Searches", TREC-2, 1994)
and reciprocal rank fusion (G. V. Cormack, C. L. A. Clarke and S. Buettcher, "Reciprocal Rank Fusion
Outperforms Condorcet and Individual Rank Learning Methods", SIGIR 2009).

For one (user, history) row the fused score of item ``j`` is ``r_j = sum_i w_i * n_i(j) / sum_i w_i`` over the
members ``i`` that can score the row (:meth:`Recommender.can_personalise`), where ``n_i`` is member ``i``'s
score row after the blend's normalisation:

* ``rank``: ``(N - rank) / (N - 1)`` with rank 1 the best of the ``N`` items (ties share their mean rank), in
  ``[0, 1]``;
* ``zscore``: ``(s - mean) / sd`` over the row's finite scores (0 when the row is constant);
* ``minmax``: ``(s - min) / (max - min)`` (0 when the row is constant);
* ``rrf``: ``1 / (rrf_k + rank)``.

Items a member scores ``-inf`` (or NaN) get the row's lowest normalised value. A row that no member can
personalise gets the popularity fallback, flagged, as for any model. Members are trained on the fusion's
training events (``{"model": name, "params": {...}}``) or loaded from run folders trained on the same data
(``{"run": path}``: the data's sha256 and the training events must match). Weights are chosen on the
validation events only, with histories that end before them (``history_for("valid")``); with no validation
events, or with ``weights`` given, no tuning happens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data.interactions import Interactions
from attnrec.errors import PersistenceError
from attnrec.models._blend import NORMALISATIONS, blend, normalise, search_weights, weight_grid
from attnrec.models._members import (
    fit_members,
    jsonable,
    load_members,
    member_folder,
    member_pairs,
    save_members,
    write_fusion_json,
)
from attnrec.training.options import TrainingOptions

FUSION_JSON = "fusion.json"
_METRIC_RE = re.compile(r"^(ndcg|hr|recall|mrr|map|precision)@(\d+)$")


class MemberSpec(BaseModel):
    """One member: a model trained by the fusion (``model`` + ``params``) or a run folder (``run``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(None, description="Registry name of a model the fusion trains (e.g. 'sasrec').")
    params: dict[str, Any] = Field(default_factory=dict, description="Hyperparameters of that model.")
    run: str | None = Field(None, description="A run folder (attnrec train --out) trained on the same data.")

    @model_validator(mode="after")
    def _one_source(self) -> MemberSpec:
        if (self.model is None) == (self.run is None):
            raise ValueError(f"needs exactly one of 'model' or 'run'; got model={self.model!r}, run={self.run!r}")
        if self.run is not None and self.params:
            raise ValueError(f"a 'run' member takes its parameters from the run; got params {self.params!r}")
        return self


class FusionConfig(ModelConfig):
    """Hyperparameters of :class:`Fusion`."""

    members: tuple[MemberSpec, ...] = Field(
        (MemberSpec(model="sasrec", run=None), MemberSpec(model="ease", run=None)),
        min_length=1,
        description="The blended models: [{'model': name, 'params': {...}} or {'run': folder}, ...].",
    )
    normalisation: Literal["rank", "zscore", "minmax", "rrf"] = Field(
        "rank", description="How each member's score row is made comparable before blending (per user row)."
    )
    rrf_k: float = Field(60.0, gt=0.0, description="The k constant of reciprocal rank fusion (normalisation='rrf').")
    weights: tuple[float, ...] | None = Field(
        None, description="Fixed member weights (>= 0, not all 0); None = tune them on the validation events."
    )
    grid_points: int = Field(
        101,
        ge=2,
        le=1001,
        description="Weights tried per member on [0, 1] (2 members: alpha = 0, 0.01, ..., 1).",
    )
    max_candidates: int = Field(
        300, ge=2, description="At most this many weight vectors are tried (3+ members: a coarser simplex grid)."
    )
    tune_metric: str = Field("ndcg@10", description="Validation metric maximised by the weights (ndcg@10, hr@20...).")

    @model_validator(mode="after")
    def _check(self) -> FusionConfig:
        if self.weights is not None:
            if len(self.weights) != len(self.members):
                raise ValueError(f"'weights' needs one weight per member ({len(self.members)}); got {self.weights!r}")
            if any(not np.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(f"'weights' must be finite, >= 0 and not all 0; got {self.weights!r}")
        if not _METRIC_RE.match(self.tune_metric):
            raise ValueError(
                "'tune_metric' must look like 'ndcg@10' (ndcg, hr, recall, mrr, map, precision); "
                f"got {self.tune_metric!r}"
            )
        return self


@dataclass(frozen=True)
class MemberShare:
    """How much one member contributed to a fused item score.

    Attributes:
        member: position of the member in ``config.members``.
        model: the member's model name.
        share: its part of the item's fused score (``w_i * n_i(j)`` over the total; the shares of an item sum
            to 1, or are all 0 when no member scores it above its lowest value).
        top: the member's own top history attribution ``(item index, weight)``, or None.
    """

    member: int
    model: str
    share: float
    top: tuple[int, float] | None = None


class Fusion(Recommender):
    """Weighted blend of member models, weights tuned on validation (see the module docstring)."""

    name = "fusion"
    config_class = FusionConfig
    citation = "Cormack, Clarke and Buettcher, Reciprocal Rank Fusion, SIGIR 2009 (rrf); Fox and Shaw, TREC-2 1994"
    uses_history = True
    supports_explain = True
    config: FusionConfig

    def __init__(self, config: FusionConfig | dict[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.members_: list[Recommender] = []
        self.weights_: np.ndarray | None = None

    # ------------------------------------------------------------------ fitting
    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        members, info_members = fit_members(self.config.members, train, valid, options)
        self._set_members(members)
        tuning: dict[str, Any]
        if self.config.weights is not None:
            weights = np.asarray(self.config.weights, dtype=np.float64)
            tuning = {"tuned": False, "reason": "weights given"}
        elif len(members) == 1:
            weights = np.ones(1)
            tuning = {"tuned": False, "reason": "one member"}
        elif valid is None or len(valid) == 0:
            weights = np.full(len(members), 1.0 / len(members))
            tuning = {"tuned": False, "reason": "no validation events: equal weights"}
        else:
            weights, tuning = self._tune(train, valid, options)
        self.weights_ = weights / weights.sum()
        device = next((m.train_info_["device"] for m in members if "device" in m.train_info_), "cpu")
        self.train_info_ = {
            "device": device,
            "weights": [float(w) for w in self.weights_],
            "normalisation": self.config.normalisation,
            "members": info_members,
            "tuning": tuning,
        }

    def _set_members(self, members: list[Recommender]) -> None:
        self.members_ = members
        self.uses_history = any(m.uses_history for m in members)  # type: ignore[misc]
        self.uses_time = any(m.uses_time for m in members)  # members with time inputs get the event times

    def _tune(
        self, train: Interactions, valid: Interactions, options: TrainingOptions
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Grid search of the weights on ``valid`` with histories from ``train`` (events before the targets)."""
        assert self.users_ is not None and self.items_ is not None
        if valid.users != self.users_ or valid.items != self.items_:
            valid = valid.with_vocabularies(self.users_, self.items_)
        grid = weight_grid(len(self.members_), self.config.grid_points, self.config.max_candidates)
        return search_weights(
            self._member_rows,
            grid,
            train,
            valid,
            metric=self.config.tune_metric,
            num_items=self.num_items,
            uses_time=self.uses_time,
            progress=options.progress,
        )

    # ------------------------------------------------------------------ scoring
    def _member_rows(
        self, user_idx: np.ndarray, histories: Sequence[np.ndarray], times: Sequence[np.ndarray] | None = None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Each member's normalised scores and which rows it can score (``(members, B)`` bool); ``times`` reach
        the members with time inputs."""
        normed, ok = [], []
        for member in self.members_:
            scores, fallback = member.scores_with_fallback(user_idx, histories, times)
            normed.append(normalise(scores, self.config.normalisation, self.config.rrf_k))
            ok.append(~fallback)
        return normed, np.asarray(ok, dtype=bool).reshape(len(self.members_), len(user_idx))

    def can_personalise(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """A row is personalised when a member personalises it by the base rule (a popularity member counts
        only for known users, as any model that ignores histories)."""
        out = np.zeros(len(user_idx), dtype=bool)
        for member in self.members_:
            own = member.can_personalise(user_idx, histories)
            out |= own & Recommender.can_personalise(member, user_idx, histories)
        return out

    def score_indices(
        self, user_idx: np.ndarray, histories: Sequence[np.ndarray], times: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        assert self.weights_ is not None
        normed, ok = self._member_rows(np.asarray(user_idx, dtype=np.int64), histories, times)
        out = blend(normed, ok, self.weights_).astype(np.float32)
        out[:, 0] = -np.inf
        return out

    def set_histories(self, interactions: Interactions) -> None:
        super().set_histories(interactions)
        for member in getattr(self, "members_", []):
            member.set_histories(interactions)

    def to(self, device: str | Any) -> Fusion:
        super().to(device)
        for member in self.members_:
            member.to(device)
        return self

    # ------------------------------------------------------------------ explanations
    def member_shares(self, history: np.ndarray, items: np.ndarray, *, user_idx: int = 0) -> np.ndarray:
        """``(members, len(items))`` share of each member in each item's fused score after ``history``
        (columns sum to 1, or are 0 where no member scores the item above its lowest value)."""
        self._check_fitted()
        assert self.weights_ is not None
        history = np.asarray(history, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        normed, ok = self._member_rows(np.asarray([user_idx], dtype=np.int64), [history])
        w = self.weights_ * ok[:, 0]
        parts = np.asarray(
            [wi * np.clip(n[0, items] - n[0, 1:].min(), 0.0, None) for wi, n in zip(w, normed, strict=True)]
        )
        total = parts.sum(axis=0, keepdims=True)
        return np.where(total > 0, parts / np.where(total > 0, total, 1.0), 0.0)

    def explain_members(self, history: np.ndarray, items: np.ndarray, *, top: int = 1) -> list[list[MemberShare]]:
        """Per item, each member's share of its fused score and the member's own top history attribution."""
        history = np.asarray(history, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        shares = self.member_shares(history, items)
        pairs = [member_pairs(m, history, items, top, None) for m in self.members_]
        return [
            [
                MemberShare(i, m.name, float(shares[i, j]), tuple(pairs[i][j][0]) if pairs[i][j] else None)  # type: ignore[arg-type]
                for i, m in enumerate(self.members_)
            ]
            for j in range(len(items))
        ]

    def explain_indices(
        self, history: np.ndarray, items: np.ndarray, *, top: int = 5, method: str | None = None
    ) -> list[list[tuple[int, float]]]:
        """History items behind each fused item: each member's attributions (``method`` where the member
        supports it, else its default) scaled by the member's share of the item's score (:meth:`member_shares`),
        summed over members; largest first, at most ``top``."""
        from attnrec.explain.methods import get_explainer

        if method is not None:
            get_explainer(self, method)  # an unknown method is a one-line error, as for any model
        history = np.asarray(history, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if len(history) == 0 or len(items) == 0:
            return [[] for _ in items.tolist()]
        shares = self.member_shares(history, items)
        out: list[list[tuple[int, float]]] = []
        per_member = [member_pairs(m, history, items, top, method) for m in self.members_]
        for j in range(len(items)):
            total: dict[int, float] = {}
            for i in range(len(self.members_)):
                for idx, w in per_member[i][j]:
                    total[int(idx)] = total.get(int(idx), 0.0) + float(shares[i, j]) * float(w)
            ranked = sorted(total.items(), key=lambda kv: -kv[1])
            out.append([(idx, w) for idx, w in ranked[:top] if w > 0])
        return out

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        assert self.weights_ is not None
        state: dict[str, np.ndarray] = {"weights": self.weights_.astype(np.float64)}
        for i, digest in enumerate(getattr(self, "_member_digests", [])):
            state[f"member_{i}_sha256"] = np.frombuffer(bytes.fromhex(digest), dtype=np.uint8).copy()
        return state

    def _get_meta(self) -> dict[str, Any]:
        return {
            "weights": [float(w) for w in self.weights_] if self.weights_ is not None else None,
            "members": [member_folder(i, m) for i, m in enumerate(self.members_)],
            "train_info": jsonable(self.train_info_),
        }

    def save(self, path: str | Path) -> Path:
        """The fusion's own files, each member's :meth:`save` under ``members/<i>-<name>/`` and ``fusion.json``
        (weights, normalisation, tuning); ``model.safetensors`` holds each member's weights digest."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        digests = self._member_digests = save_members(folder, self.members_)
        super().save(folder)
        summary = {"normalisation": self.config.normalisation, "rrf_k": self.config.rrf_k}
        write_fusion_json(folder / FUSION_JSON, summary, self.weights_, self.members_, digests, self.train_info_)
        return folder

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.weights_ = np.asarray(arrays["weights"], dtype=np.float64)
        self._member_digests = [
            bytes(arrays[f"member_{i}_sha256"].astype(np.uint8)).hex() for i in range(len(self.config.members))
        ]
        self._member_folders = [str(f) for f in meta.get("members") or []]
        self.train_info_ = dict(meta.get("train_info") or {})

    def _load_parts(self, folder: Path) -> None:
        """Load the members saved next to the fusion (called by :meth:`Recommender.load`)."""
        members = load_members(folder, self._member_folders, self._member_digests, self)
        if len(members) != len(self.config.members):
            raise PersistenceError(
                f"{folder}: {len(members)} members saved, the config lists {len(self.config.members)}"
            )
        self._set_members(members)


__all__ = [
    "NORMALISATIONS",
    "Fusion",
    "FusionConfig",
    "MemberShare",
    "MemberSpec",
    "blend",
    "normalise",
    "weight_grid",
]
