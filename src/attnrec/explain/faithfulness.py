"""Faithfulness of explanations: does removing what an explanation points at change the score?

For each user the model recommends its top item ``r`` after the history ``h`` (the part the model reads, its
last ``max_seq_len`` items; ``r`` is not in ``h``). Three shortened histories are scored:

* **explained**: ``h`` without the ``removed`` positions the method ranks highest for ``r``;
* **random**: ``h`` without ``removed`` positions drawn uniformly (seeded, one draw per user);
* **recent**: ``h`` without its ``removed`` most recent items (a recency explanation for free).

The drop of a removal is ``score(r | h) - score(r | h')``. The explanation *beats* a baseline for a user when its
drop is strictly larger (by more than a float tolerance); equal drops are *ties* (e.g. when the explanation
picks exactly the most recent items). The report gives, per method, the share of users where the explanation
beats the random baseline, the recent baseline and both, the ties, and the mean and median drops. Only histories
with more than ``removed`` read items are used.

Explanations by feature field (AutoInt's ``field-occlusion`` and ``field-attention``) remove fields instead of
history items (:func:`field_faithfulness`): the ``removed`` fields the explanation weighs most for ``r``
(``field-attention``: each field's share of the explained pairs it belongs to) are read as missing, against
``removed`` random fields and the ``removed`` fields the explanations name most often over all measured users
(**global**: one population-level explanation, the same for every user; a per-prediction explanation has
to beat it to say something about this prediction). Blocking the attention between an explained *pair* instead
would not remove their interaction: in AutoInt a third field that attends to both carries it
(``docs/explanations.md``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from attnrec.errors import ConfigError
from attnrec.explain.base import PositionExplainer, read_part
from attnrec.explain.fields import FieldExplainer
from attnrec.explain.methods import get_explainer

TIE_TOLERANCE = 1e-5
"""Drops closer than this (relative to ``max(1, |score(r | h)|)``) are ties."""


@dataclass(frozen=True)
class FaithfulnessReport:
    """Faithfulness of one method over ``users`` users (shares in [0, 1], drops in score units)."""

    method: str
    users: int
    removed: int
    beats_random: float
    beats_recent: float
    beats_both: float
    ties_random: float
    ties_recent: float
    same_as_recent: float
    mean_drop_explained: float
    mean_drop_random: float
    mean_drop_recent: float
    median_drop_explained: float
    median_drop_random: float
    median_drop_recent: float
    top1_changed_explained: float
    top1_changed_random: float
    top1_changed_recent: float
    seconds: float

    @property
    def fraction_top_drop_larger(self) -> float:
        """Share of users where the explanation beats the random baseline (name of attnrec 0.1)."""
        return self.beats_random

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _drops(
    model: Any, users: np.ndarray, base_hist: list[np.ndarray], hists: list[np.ndarray], top: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of ``top`` after ``hists``, and whether ``top`` is still the best item not in ``base_hist``."""
    scores = model.score_indices(users, hists).astype(np.float64)
    rows = np.arange(len(hists))
    picked = scores[rows, top]
    for row, h in enumerate(base_hist):  # exclude the original history, as the recommendation did
        scores[row, h] = -np.inf
    return picked, scores.argmax(axis=1) == top


def faithfulness(
    model: Any,
    histories: Sequence[np.ndarray],
    *,
    user_idx: np.ndarray | None = None,
    removed: int = 3,
    method: str | PositionExplainer | None = None,
    seed: int = 0,
) -> FaithfulnessReport:
    """Measure the faithfulness of ``method`` (None: the model's default) over ``histories``.

    Args:
        model: a fitted recommender that explains.
        histories: item-index histories, oldest first (use training histories: never the test split).
        user_idx: the users' indices for ``score_indices`` (None: 0, anonymous histories).
        removed: how many items each removal takes out (``>= 1``).
        method: explanation method (see :func:`attnrec.explain.methods.methods_for`), or an explainer
            instance (e.g. ``OcclusionSearchExplainer(beam=8)``).
        seed: seed of the random baseline.

    Raises:
        ConfigError: ``removed < 1`` or no history has more than ``removed`` read items.
        ExplainError: the model does not explain with ``method``.
    """
    if removed < 1:
        raise ConfigError(f"the 'removed' parameter of faithfulness must be >= 1; got {removed}")
    explainer = method if isinstance(method, PositionExplainer) else get_explainer(model, method)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    ids = np.zeros(len(histories), dtype=np.int64) if user_idx is None else np.asarray(user_idx, dtype=np.int64)
    keep_rows = [row for row, h in enumerate(histories) if len(read_part(model, h)) > removed]
    if not keep_rows:
        raise ConfigError(f"faithfulness needs histories longer than removed={removed}; got none of {len(histories)}")
    usable = [read_part(model, histories[row]) for row in keep_rows]
    users = ids[keep_rows]
    full = model.score_indices(users, usable).astype(np.float64)
    for row, h in enumerate(usable):
        full[row, h] = -np.inf
    full[:, 0] = -np.inf
    top = full.argmax(axis=1)
    base = full[np.arange(len(usable)), top]

    explained: list[np.ndarray] = []
    random_: list[np.ndarray] = []
    recent: list[np.ndarray] = []
    same_recent = np.zeros(len(usable), dtype=bool)
    for row, (h, r) in enumerate(zip(usable, top.tolist(), strict=True)):
        relevance = explainer.relevance(model, h, np.asarray([r]), top=removed, user=int(users[row]))[0]
        order = np.argsort(-relevance, kind="stable")[:removed]
        n = len(h)
        same_recent[row] = set(order.tolist()) == set(range(n - removed, n))
        for chosen, out in ((order, explained), (rng.choice(n, size=removed, replace=False), random_)):
            keep = np.ones(n, dtype=bool)
            keep[chosen] = False
            out.append(h[keep])
        recent.append(h[: n - removed])
    s_exp, still_exp = _drops(model, users, usable, explained, top)
    s_rand, still_rand = _drops(model, users, usable, random_, top)
    s_rec, still_rec = _drops(model, users, usable, recent, top)
    d_exp, d_rand, d_rec = base - s_exp, base - s_rand, base - s_rec
    tol = TIE_TOLERANCE * np.maximum(1.0, np.abs(base))

    def share(mask: np.ndarray) -> float:
        return float(np.mean(mask))

    return FaithfulnessReport(
        method=explainer.name,
        users=len(usable),
        removed=removed,
        beats_random=share(d_exp - d_rand > tol),
        beats_recent=share(d_exp - d_rec > tol),
        beats_both=share((d_exp - d_rand > tol) & (d_exp - d_rec > tol)),
        ties_random=share(np.abs(d_exp - d_rand) <= tol),
        ties_recent=share(np.abs(d_exp - d_rec) <= tol),
        same_as_recent=share(same_recent),
        mean_drop_explained=float(d_exp.mean()),
        mean_drop_random=float(d_rand.mean()),
        mean_drop_recent=float(d_rec.mean()),
        median_drop_explained=float(np.median(d_exp)),
        median_drop_random=float(np.median(d_rand)),
        median_drop_recent=float(np.median(d_rec)),
        top1_changed_explained=share(~still_exp),
        top1_changed_random=share(~still_rand),
        top1_changed_recent=share(~still_rec),
        seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class FieldFaithfulnessReport:
    """Faithfulness of a field method over ``users`` users: removing the explained fields against removing
    random fields and the most often named fields (shares in [0, 1], drops in score units)."""

    method: str
    users: int
    removed: int
    fields: int
    global_fields: list[str]
    beats_random: float
    beats_global: float
    beats_both: float
    ties_random: float
    ties_global: float
    same_as_global: float
    mean_drop_explained: float
    mean_drop_random: float
    mean_drop_global: float
    median_drop_explained: float
    median_drop_random: float
    median_drop_global: float
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def field_faithfulness(
    model: Any,
    user_idx: np.ndarray,
    histories: Sequence[np.ndarray] | None = None,
    *,
    removed: int = 3,
    method: str | None = None,
    seed: int = 0,
) -> FieldFaithfulnessReport:
    """Measure the faithfulness of a field method's explanations (None: the model's default) for ``user_idx``.

    For each user the recommended item ``r`` is the top of ``score_indices`` outside the user's history
    (``histories``: the training histories, excluded as a recommendation does; None: none excluded). The model
    provides ``score_without_fields(user, items, dropped)`` and what the method needs.

    Raises:
        ConfigError: ``removed < 1``, no users, a model that cannot read fields as missing, a method that does
            not weigh fields, or no more than ``removed`` fields.
        ExplainError: the model does not explain with ``method``.
    """
    if removed < 1:
        raise ConfigError(f"the 'removed' parameter of field_faithfulness must be >= 1; got {removed}")
    users = np.asarray(user_idx, dtype=np.int64)
    if len(users) == 0:
        raise ConfigError("field_faithfulness needs at least one user; got none")
    if not callable(getattr(model, "score_without_fields", None)):
        raise ConfigError(
            f"model {getattr(model, 'name', type(model).__name__)!r} does not explain by feature fields "
            "(it needs score_without_fields)"
        )
    explainer = get_explainer(model, method)
    if not isinstance(explainer, FieldExplainer):
        raise ConfigError(f"method {explainer.name!r} does not weigh feature fields: field_faithfulness needs one")
    start = time.perf_counter()
    hists = [np.zeros(0, dtype=np.int64)] * len(users) if histories is None else list(histories)
    full = model.score_indices(users, hists).astype(np.float64)
    for row, h in enumerate(hists):
        full[row, np.asarray(h, dtype=np.int64)] = -np.inf
    full[:, 0] = -np.inf
    top = full.argmax(axis=1)
    names = list(model.field_names)
    m = len(names)
    if m <= removed:
        raise ConfigError(f"field_faithfulness needs more than removed={removed} fields; the model has {m}")
    orders = np.stack(
        [
            explainer.field_order(model, int(u), np.asarray([r]), removed)[0]
            for u, r in zip(users.tolist(), top.tolist(), strict=True)
        ]
    )
    # global: the fields named most often among the users' explained fields (ties: the first field)
    counts = np.bincount(orders.ravel(), minlength=m)
    global_top = np.argsort(-counts, kind="stable")[:removed]
    rng = np.random.default_rng(seed)
    drops = np.zeros((len(users), 3))
    same_global = np.zeros(len(users), dtype=bool)
    for row, (u, r) in enumerate(zip(users.tolist(), top.tolist(), strict=True)):
        explained = orders[row]
        same_global[row] = set(explained.tolist()) == set(global_top.tolist())
        dropped = np.zeros((4, m), dtype=bool)  # row 0: nothing dropped (the score being explained)
        for k, fields in enumerate((explained, rng.choice(m, size=removed, replace=False), global_top), start=1):
            dropped[k, fields] = True
        scores = model.score_without_fields(int(u), np.full(4, r, dtype=np.int64), dropped).astype(np.float64)
        drops[row] = scores[0] - scores[1:]
    d_exp, d_rand, d_glob = drops[:, 0], drops[:, 1], drops[:, 2]
    tol = TIE_TOLERANCE * np.maximum(1.0, np.abs(full[np.arange(len(users)), top]))

    def share(mask: np.ndarray) -> float:
        return float(np.mean(mask))

    return FieldFaithfulnessReport(
        method=explainer.name,
        users=len(users),
        removed=removed,
        fields=m,
        global_fields=[names[j] for j in global_top.tolist()],
        beats_random=share(d_exp - d_rand > tol),
        beats_global=share(d_exp - d_glob > tol),
        beats_both=share((d_exp - d_rand > tol) & (d_exp - d_glob > tol)),
        ties_random=share(np.abs(d_exp - d_rand) <= tol),
        ties_global=share(np.abs(d_exp - d_glob) <= tol),
        same_as_global=share(same_global),
        mean_drop_explained=float(d_exp.mean()),
        mean_drop_random=float(d_rand.mean()),
        mean_drop_global=float(d_glob.mean()),
        median_drop_explained=float(np.median(d_exp)),
        median_drop_random=float(np.median(d_rand)),
        median_drop_global=float(np.median(d_glob)),
        seconds=time.perf_counter() - start,
    )
