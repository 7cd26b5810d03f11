"""Occlusion: how much the recommended item's score drops when one history item is removed.

Model-agnostic: it needs only ``score_indices``; a model's ``score_candidates`` is used when it has one (every
``Recommender`` has it: by default the candidates' columns of ``score_indices``; DIN scores the candidates
alone). For a history of ``n`` read items (the last ``max_seq_len`` for a windowed model), the full history and
the ``n`` histories with one position removed are scored together (one batched call, chunked for large
catalogues); the relevance of position ``i`` for item ``r`` is ``score(r | h) - score(r | h without position
i)``. A position whose removal raises the score has negative relevance and no weight. Zeiler & Fergus,
"Visualizing and Understanding Convolutional Networks", ECCV 2014, applied to history items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnrec.base import catalogue_columns
from attnrec.explain.base import PositionExplainer, read_part


def occlusion_drops(model: Any, history: np.ndarray, items: np.ndarray, *, user_idx: int = 0) -> np.ndarray:
    """``(len(items), n)`` score drop of each item when each of the ``n`` read history positions is removed.

    Args:
        model: any fitted recommender.
        history: item indices, oldest first; only the part the model reads is perturbed.
        items: item indices to explain.
        user_idx: the user's index (0: anonymous), passed to ``score_indices``.
    """
    read = read_part(model, history)
    items = np.asarray(items, dtype=np.int64)
    n = len(read)
    if n == 0 or len(items) == 0:
        return np.zeros((len(items), n))
    keep = ~np.eye(n, dtype=bool)
    picked = _scores_of(model, [read, *(read[keep[i]] for i in range(n))], items, user_idx)
    return (picked[0][None, :] - picked[1:]).T


class OcclusionExplainer(PositionExplainer):
    """``occlusion``: score drop of each recommended item when one history item is removed (item-specific)."""

    name = "occlusion"
    item_specific = True

    def applies_to(self, model: Any) -> bool:
        return bool(getattr(model, "uses_history", False))

    def relevance(
        self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None, user: int = 0
    ) -> np.ndarray:
        return occlusion_drops(model, history, items, user_idx=user)


def _scores_of(model: Any, histories: list[np.ndarray], items: np.ndarray, user_idx: int) -> np.ndarray:
    """``(len(histories), len(items))`` scores of ``items`` after each history (``score_candidates``)."""
    users = np.full(len(histories), user_idx, dtype=np.int64)
    if hasattr(model, "score_candidates"):  # every Recommender; DIN's scores the candidates alone
        return np.asarray(model.score_candidates(users, histories, items), dtype=np.float64)
    return catalogue_columns(model, users, histories, items)


def occlusion_search(
    model: Any,
    history: np.ndarray,
    item: int,
    *,
    steps: int,
    beam: int = 1,
    pool: int | None = None,
    user_idx: int = 0,
    single: np.ndarray | None = None,
    swap_rounds: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Find ``steps`` history positions whose joint removal lowers ``item``'s score most, by beam search.

    Each step extends every kept set of removed positions by one more position and keeps the ``beam`` sets
    with the lowest score (``beam=1``: greedy). All candidates of a step are scored in one batched call.
    With ``swap_rounds > 0`` the found set is then improved by local search (:func:`_swap_search`): it starts
    from the better of the found set and the ``steps`` most recent positions, and each round replaces one
    position by a candidate when that lowers the score.

    Args:
        steps: how many positions to remove.
        beam: sets kept per step.
        pool: after the first step, only the ``pool`` positions with the largest single-removal drop and the
            ``pool`` most recent positions are candidates (None: every position).
        single: ``(n,)`` drops of ``item``'s score when each read position alone is removed, when already known
            (:func:`occlusion_drops` computes them for many items at once); the first step then scores nothing.
        swap_rounds: most rounds of the local search after the beam search (0: none).

    Returns:
        ``(positions, marginal)``: the removed positions of the read history in removal order, and the score
        drop each removal added along the best set's path.
    """
    read = read_part(model, history)
    n = len(read)
    # never remove the last item: an empty history is no explanation (a sequence model cannot score it and
    # its score collapses, which would credit whatever item happened to be removed last)
    steps = min(steps, max(n - 1, 1))
    items = np.asarray([item], dtype=np.int64)
    base = float(_scores_of(model, [read], items, user_idx)[0, 0])
    # a state: (removed positions in order, score after each removal)
    states: list[tuple[tuple[int, ...], tuple[float, ...]]] = [((), ())]
    candidates = np.arange(n)
    first_drops = np.zeros(n)
    for step in range(steps):
        trials: list[tuple[tuple[int, ...], tuple[float, ...]]] = []
        hists: list[np.ndarray] = []
        seen: set[frozenset[int]] = set()
        for removed, path in states:
            for c in candidates.tolist():
                key = frozenset((*removed, c))
                if c in removed or key in seen:
                    continue
                seen.add(key)
                keep = np.ones(n, dtype=bool)
                keep[[*removed, c]] = False
                trials.append(((*removed, c), path))
                hists.append(read[keep])
        if step == 0 and single is not None:
            scores = base - np.asarray(single, dtype=np.float64)
        else:
            scores = _scores_of(model, hists, items, user_idx)[:, 0]
        # lowest score first; on ties the more recent position (what a sequence model reads last)
        if step == 0:
            first_drops = base - scores  # position i alone (the first step's trials are positions 0..n-1)
        order = np.lexsort((-np.asarray([t[0][-1] for t in trials]), scores))
        if step == 0 and pool is not None and pool < n:
            best_single = np.asarray([trials[j][0][0] for j in order[:pool]])
            candidates = np.union1d(best_single, np.arange(max(0, n - pool), n))
        states = [(trials[j][0], (*trials[j][1], float(scores[j]))) for j in order[:beam]]
    removed, path = states[0]
    if swap_rounds > 0 and len(removed) > 0:
        removed, path = _swap_search(
            model, read, items, removed, path, base, candidates, swap_rounds, user_idx, first_drops
        )
    after = np.asarray(path)
    marginal = np.r_[base, after[:-1]] - after if len(after) else after
    return np.asarray(removed, dtype=np.int64), marginal


def _without(read: np.ndarray, positions: Sequence[int]) -> np.ndarray:
    keep = np.ones(len(read), dtype=bool)
    keep[list(positions)] = False
    return read[keep]


def _swap_search(
    model: Any,
    read: np.ndarray,
    items: np.ndarray,
    removed: tuple[int, ...],
    path: tuple[float, ...],
    base: float,
    candidates: np.ndarray,
    rounds: int,
    user_idx: int,
    single_drops: np.ndarray,
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Local search over removal sets of ``len(removed)`` positions: start from the better of ``removed`` and
    the most recent positions; each round scores every set with one position swapped for a ``candidates``
    position (one batched call) and moves to the lowest score if it is lower (else stops). Returns the set in
    removal order with the score after each removal: the positions ordered by their single-removal drop
    (``single_drops``, indexed by position), the scores of the partial sets computed in one batched call."""
    n, size = len(read), len(removed)
    recent = tuple(range(n - size, n))
    current, score = tuple(removed), float(path[-1])
    if set(recent) != set(current):
        recent_score = float(_scores_of(model, [_without(read, recent)], items, user_idx)[0, 0])
        if recent_score < score:
            current, score = recent, recent_score
    for _ in range(rounds):
        trials: list[tuple[int, ...]] = []
        seen = {frozenset(current)}
        for k in range(size):
            for c in candidates.tolist():
                trial = (*current[:k], c, *current[k + 1 :])
                if c in current or frozenset(trial) in seen:
                    continue
                seen.add(frozenset(trial))
                trials.append(trial)
        if not trials:
            break
        scores = _scores_of(model, [_without(read, t) for t in trials], items, user_idx)[:, 0]
        best = int(np.argmin(scores))
        if not scores[best] < score:
            break
        current, score = trials[best], float(scores[best])
    by_position = {p: float(single_drops[p]) for p in current}
    # removal order: largest single drop first, the more recent position on ties
    ordered = tuple(sorted(current, key=lambda p: (-by_position[p], -p)))
    partial = [_without(read, ordered[: k + 1]) for k in range(size - 1)]
    after = _scores_of(model, partial, items, user_idx)[:, 0].tolist() if partial else []
    return ordered, (*after, score)


class OcclusionSearchExplainer(PositionExplainer):
    """``occlusion-search``: the set of history positions whose joint removal lowers each item's score most.

    A beam search (:func:`occlusion_search`) over removal sets: unlike ``occlusion``, which removes one
    position at a time, it finds items that matter together (the newest few items of a sequence model). The
    relevance of a chosen position is the score drop its removal added, capped by the drops of the positions
    removed before it (so the weights follow the order of removal); positions not chosen get none, and the last
    item of a history is never removed (an empty history cannot be scored). ``top``
    positions are chosen (``steps`` when no ``top`` is given); after the first step only the ``pool`` positions
    with the largest single-removal drop and the ``pool`` most recent ones are candidates, so an explanation
    costs about ``n + 2 * (top - 1) * beam * pool`` scored histories per item (the first step, ``n`` histories,
    is shared by all items). The default ``beam=1`` (greedy) was as faithful as ``beam=4`` and ``8`` on ML-100K;
    ``swap_rounds=1`` then improves the set by one round of swaps, starting from the most recent positions when
    they drop the score more: on ML-1M (SASRec, 200 users) the explanation beat recency for 79% of users instead
    of 76% and never lost to it, for about ``steps * 2 * pool`` more scored histories (``docs/explanations.md``).
    """

    name = "occlusion-search"
    item_specific = True

    def __init__(self, *, steps: int = 5, beam: int = 1, pool: int | None = 16, swap_rounds: int = 1) -> None:
        self.steps = steps
        self.beam = beam
        self.pool = pool
        self.swap_rounds = swap_rounds

    def applies_to(self, model: Any) -> bool:
        return bool(getattr(model, "uses_history", False))

    def relevance(
        self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None, user: int = 0
    ) -> np.ndarray:
        read = read_part(model, history)
        items = np.asarray(items, dtype=np.int64)
        out = np.full((len(items), len(read)), -np.inf)
        singles = occlusion_drops(model, read, items, user_idx=user)  # every item's first step, one call
        for row, item in enumerate(items.tolist()):
            positions, marginal = occlusion_search(
                model,
                read,
                item,
                steps=top or self.steps,
                beam=self.beam,
                pool=self.pool,
                single=singles[row],
                swap_rounds=self.swap_rounds,
                user_idx=user,
            )
            # the greedy order is the explanation's ranking: a later removal never outweighs an earlier one
            out[row, positions] = np.minimum.accumulate(marginal) if len(marginal) else marginal
        return out
