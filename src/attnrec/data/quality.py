"""Checks on a validated interaction frame: repeated (user, item) events and the rating scale.

Both are used by :func:`~attnrec.data.loaders.load_interactions_with_report`; they are public so that other
inputs (a service's event store, a frame built in a notebook) can be checked with the same rules.

The rating-scale rule (documented in ``docs/data.md``, "Ratings and their scale"):

1. Candidate scales, narrowest first: :data:`STANDARD_RATING_SCALES`.
2. A candidate fits the ratings when

   a. at most :func:`tolerated_outliers` ratings lie outside it (one in a thousand; a single one in logs of 20 to
      1,999 ratings; none in smaller logs);
   b. no rating lies *just above* it, in ``(max, max + width]``: values there mean the data run on past the bound
      (play counts, purchase counts), they are not typos;
   c. the top quarter of the candidate holds at least 1% of the ratings inside it (a scale whose top is never
      used is not the scale of the data: counts pile up at the bottom).

3. The first candidate that fits is the inferred scale; the ratings outside it are outliers (the loader rejects
   them). When none fits, the ratings are taken as unbounded weights (play counts, dwell times): the scale is the
   observed ``min..max`` and nothing is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

Dedup = Literal["first", "last", "none"]
"""What :func:`duplicate_mask` keeps of each repeated (user, item) pair."""

DEDUP_POLICIES: tuple[str, ...] = ("first", "last", "none")

STANDARD_RATING_SCALES: tuple[tuple[float, float], ...] = (
    (0.0, 1.0),
    (1.0, 5.0),
    (0.5, 5.0),
    (0.0, 5.0),
    (1.0, 10.0),
    (0.0, 10.0),
    (1.0, 100.0),
    (0.0, 100.0),
)
"""Rating scales the loader recognises, narrowest first (ties: the one starting higher)."""

_MIN_TOP_SHARE = 0.01


@dataclass(frozen=True)
class ScaleInference:
    """The outcome of :func:`infer_rating_scale`.

    Attributes:
        scale: ``(min, max)``: a member of :data:`STANDARD_RATING_SCALES`, or the observed range.
        standard: whether ``scale`` is a standard scale (``False``: observed ``min..max``, nothing rejected).
        outliers: ``(k,)`` int64 positions of the ratings outside ``scale`` (empty when ``standard`` is false).
    """

    scale: tuple[float, float]
    standard: bool
    outliers: np.ndarray


def tolerated_outliers(n: int) -> int:
    """How many of ``n`` ratings may lie outside an inferred scale (``n // 1000``, at least 1 from 20 ratings)."""
    if n < 20:
        return 0
    return max(1, n // 1000)


def infer_rating_scale(ratings: np.ndarray) -> ScaleInference:
    """Infer the rating scale of finite ratings (see the module docstring for the rule).

    Args:
        ratings: ``(n,)`` finite ratings, ``n >= 1``.

    Raises:
        ValueError: ``ratings`` is empty.
    """
    r = np.asarray(ratings, dtype=np.float64)
    n = int(r.size)
    if n == 0:
        raise ValueError("cannot infer the scale of zero ratings")
    tolerance = tolerated_outliers(n)
    for lo, hi in STANDARD_RATING_SCALES:
        width = hi - lo
        inside = (r >= lo) & (r <= hi)
        kept = int(inside.sum())
        if n - kept > tolerance:
            continue
        if kept < n and bool(np.any((r > hi) & (r <= hi + width))):
            continue
        if int((r[inside] >= lo + 0.75 * width).sum()) < _MIN_TOP_SHARE * kept:
            continue
        return ScaleInference((lo, hi), True, np.flatnonzero(~inside).astype(np.int64))
    return ScaleInference((float(r.min()), float(r.max())), False, np.zeros(0, dtype=np.int64))


def duplicate_mask(frame: pl.DataFrame, keep: Dedup) -> np.ndarray:
    """Which rows repeat a (user, item) pair, in the frame's row order.

    Events are ordered by ``timestamp`` when the frame has one, row order breaking ties (and standing in for time
    when there is none). ``keep="first"`` marks every event of a pair but the earliest, ``"last"`` every one but
    the latest, ``"none"`` marks the same rows as ``"first"`` (the caller decides whether to drop them).

    Args:
        frame: columns ``user_id``, ``item_id`` and optionally ``timestamp``.
        keep: ``"first"``, ``"last"`` or ``"none"``.

    Returns:
        ``(frame.height,)`` bool array, true for the repeated events.
    """
    if keep not in DEDUP_POLICIES:
        raise ValueError(f"keep must be one of {', '.join(DEDUP_POLICIES)}; got {keep!r}")
    mask = np.zeros(frame.height, dtype=bool)
    # fast exact answer for the common case: distinct hashes imply distinct pairs (a collision only sends a clean
    # log down the slower path below)
    if frame.select(pl.struct("user_id", "item_id").hash().n_unique()).item() == frame.height:
        return mask
    cols = ["user_id", "item_id"] + (["timestamp"] if "timestamp" in frame.columns else [])
    ordered = frame.select(cols).with_row_index("_row")
    if "timestamp" in frame.columns:
        ordered = ordered.sort(["timestamp", "_row"])
    pair = pl.struct("user_id", "item_id")
    unique = pair.is_last_distinct() if keep == "last" else pair.is_first_distinct()
    marked = ordered.filter(~unique)["_row"].to_numpy()
    mask[marked] = True
    return mask


def exact_duplicate_count(frame: pl.DataFrame) -> int:
    """Rows identical in every column to an earlier row."""
    return int(frame.select((~pl.struct(frame.columns).is_first_distinct()).sum()).item())
