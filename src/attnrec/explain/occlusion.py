"""Occlusion: how much the recommended item's score drops when one history item is removed.

Model-agnostic: it needs only ``score_indices``. For a history of ``n`` read items (the last ``max_seq_len``
for a windowed model), the full history and the ``n`` histories with one position removed are scored together
(one batched call, chunked for large catalogues); the relevance of position ``i`` for item ``r`` is
``score(r | h) - score(r | h without position i)``. A position whose removal raises the score has negative
relevance and no weight. Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014,
applied to history items.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnrec.explain.base import PositionExplainer, read_part

SCORE_CELLS = 1 << 24
"""Most score cells (histories x items) one ``score_indices`` call of occlusion may return (64 MiB)."""


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
    histories = [read, *(read[keep[i]] for i in range(n))]
    width = max(1, int(getattr(model, "num_items", 0)) + 1)
    chunk = max(1, SCORE_CELLS // width)
    picked = np.empty((n + 1, len(items)), dtype=np.float64)
    for start in range(0, n + 1, chunk):
        part = histories[start : start + chunk]
        scores = model.score_indices(np.full(len(part), user_idx, dtype=np.int64), part)
        picked[start : start + len(part)] = scores[:, items]
    return (picked[0][None, :] - picked[1:]).T


class OcclusionExplainer(PositionExplainer):
    """``occlusion``: score drop of each recommended item when one history item is removed (item-specific)."""

    name = "occlusion"
    item_specific = True

    def applies_to(self, model: Any) -> bool:
        return bool(getattr(model, "uses_history", False))

    def relevance(self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None) -> np.ndarray:
        return occlusion_drops(model, history, items)


def _scores_of(model: Any, histories: list[np.ndarray], items: np.ndarray, user_idx: int) -> np.ndarray:
    """``(len(histories), len(items))`` scores, in chunks of at most :data:`SCORE_CELLS` cells."""
    width = max(1, int(getattr(model, "num_items", 0)) + 1)
    chunk = max(1, SCORE_CELLS // width)
    out = np.empty((len(histories), len(items)), dtype=np.float64)
    for start in range(0, len(histories), chunk):
        part = histories[start : start + chunk]
        out[start : start + len(part)] = model.score_indices(np.full(len(part), user_idx, dtype=np.int64), part)[
            :, items
        ]
    return out


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
) -> tuple[np.ndarray, np.ndarray]:
    """Find ``steps`` history positions whose joint removal lowers ``item``'s score most, by beam search.

    Each step extends every kept set of removed positions by one more position and keeps the ``beam`` sets
    with the lowest score (``beam=1``: greedy). All candidates of a step are scored in one batched call.

    Args:
        steps: how many positions to remove.
        beam: sets kept per step.
        pool: after the first step, only the ``pool`` positions with the largest single-removal drop and the
            ``pool`` most recent positions are candidates (None: every position).
        single: ``(n,)`` drops of ``item``'s score when each read position alone is removed, when already known
            (:func:`occlusion_drops` computes them for many items at once); the first step then scores nothing.

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
        order = np.lexsort((-np.asarray([t[0][-1] for t in trials]), scores))
        if step == 0 and pool is not None and pool < n:
            best_single = np.asarray([trials[j][0][0] for j in order[:pool]])
            candidates = np.union1d(best_single, np.arange(max(0, n - pool), n))
        states = [(trials[j][0], (*trials[j][1], float(scores[j]))) for j in order[:beam]]
    removed, path = states[0]
    after = np.asarray(path)
    marginal = np.r_[base, after[:-1]] - after if len(after) else after
    return np.asarray(removed, dtype=np.int64), marginal


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
    is shared by all items). The default ``beam=1`` (greedy) was as faithful as ``beam=4`` and ``8`` on ML-100K
    (``docs/explanations.md``).
    """

    name = "occlusion-search"
    item_specific = True

    def __init__(self, *, steps: int = 5, beam: int = 1, pool: int | None = 16) -> None:
        self.steps = steps
        self.beam = beam
        self.pool = pool

    def applies_to(self, model: Any) -> bool:
        return bool(getattr(model, "uses_history", False))

    def relevance(self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None) -> np.ndarray:
        read = read_part(model, history)
        items = np.asarray(items, dtype=np.int64)
        out = np.full((len(items), len(read)), -np.inf)
        singles = occlusion_drops(model, read, items)  # the first step of every item in one batched call
        for row, item in enumerate(items.tolist()):
            positions, marginal = occlusion_search(
                model, read, item, steps=top or self.steps, beam=self.beam, pool=self.pool, single=singles[row]
            )
            # the greedy order is the explanation's ranking: a later removal never outweighs an earlier one
            out[row, positions] = np.minimum.accumulate(marginal) if len(marginal) else marginal
        return out
