"""Training data of next-item models, shared by every sequential model: windows of histories and their batches.

A user's history ``i_1 ... i_n`` gives next-item pairs ``(i_1..i_t) -> i_{t+1}``; a model learns from windows of
at most ``max_len`` inputs with their shifted targets (:func:`training_windows`), served in batches cut to the
longest real window of the batch (:func:`window_batches`), with their loss (:func:`next_item_loss`). Models
whose training split has no pair at all say so before any work (:func:`check_next_item_pairs`). Inference pads
histories with :func:`pad_histories`; time inputs are buckets of the gaps between events (:func:`gap_buckets`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from attnrec.data.interactions import Interactions
from attnrec.errors import DataError

if TYPE_CHECKING:
    from attnrec.training.losses import ItemLoss
    from attnrec.training.trainer import LossFn

WindowBatches = Callable[[int, torch.Generator], Iterator[tuple[Tensor, ...]]]
"""``batches(epoch, generator)`` yields ``(inputs, targets)`` (plus ``extra`` when given), each ``(B, width)``
int64, right-padded with 0."""


def training_windows(sequences: Sequence[np.ndarray], max_len: int, step: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ``(R, max_len)`` inputs and next-item targets of every window of every sequence.

    Each sequence gives its last ``max_len + 1`` items (input = all but the last, target = shifted by one);
    with ``step > 0``, longer sequences also give windows ending ``step``, ``2 * step``, ... items earlier.
    """
    ends: list[tuple[int, int]] = []
    for s, seq in enumerate(sequences):
        n = len(seq)
        if n < 2:
            continue
        ends.append((s, n))
        if step > 0:
            ends.extend((s, e) for e in range(n - step, max_len + 1, -step))
    inputs = np.zeros((len(ends), max_len), dtype=np.int64)
    targets = np.zeros((len(ends), max_len), dtype=np.int64)
    for row, (s, e) in enumerate(ends):
        w = sequences[s][max(0, e - max_len - 1) : e]
        inputs[row, : len(w) - 1] = w[:-1]
        targets[row, : len(w) - 1] = w[1:]
    return inputs, targets


def check_next_item_pairs(train: Interactions, model: str) -> None:
    """Raise :class:`~attnrec.errors.DataError` when ``train`` holds no next-item pair (no user with 2+ events)."""
    counts = np.diff(train.sequence_offsets())[1:]
    if int(counts.max(initial=0)) < 2:
        users = int((counts > 0).sum())
        found = "is empty" if users == 0 else f"has {users} user{'s' if users != 1 else ''} with at most 1 event each"
        raise DataError(
            f"{model} needs at least one user with 2 or more training events to learn next-item transitions; "
            f"the training split {found}"
        )


def shape_bucket(width: int) -> int:
    """``width`` rounded up to one of few sizes: itself up to 16, then four sizes per doubling (16, 20, 24, 28, 32,
    40, 48, ..., 128, 160, 192, 224, 256, ...): at most 25% more, about 10% on average.

    Batch widths come from this small set so that the CPU's matmul library (oneDNN, for bf16) sees a bounded set
    of shapes: it builds and caches a kernel per new shape, and with one width per batch (1 to ``max_seq_len``)
    its cache thrashed and the process slowed down epoch after epoch (ML-1M: 38 s -> 63 s per epoch in four
    epochs, +300 MB per epoch)."""
    if width <= 16:
        return width
    step = 1 << (width.bit_length() - 3)  # a quarter of the power of two below width
    return -(-width // step) * step


def window_batches(
    inputs: Tensor,
    targets: Tensor,
    lengths: Tensor,
    *,
    batch_size: int,
    batch_tokens: int | None = None,
    length_bucketing: bool = True,
    extra: Tensor | None = None,
) -> WindowBatches:
    """Batches of training windows for :class:`~attnrec.training.trainer.Trainer`.

    Args:
        inputs, targets: ``(R, max_len)`` right-padded windows (:func:`training_windows`).
        lengths: ``(R,)`` real length of each window.
        batch_size: windows per step.
        batch_tokens: instead, consecutive windows until about this many targets per step (a step exceeds it by
            less than one window); ``None``: ``batch_size`` windows.
        length_bucketing: sort windows by length within pools of 50 steps (fewer padded positions), then shuffle
            the order of the steps.
        extra: ``(R, max_len)`` windows aligned with ``inputs`` (e.g. time gaps), yielded third when given.

    Every batch is cut to its longest real window rounded up by :func:`shape_bucket` (right padding, capped at
    the windows' width); the draws depend only on the generator.
    """
    bs = batch_size
    if batch_tokens is not None:  # windows per step, for the size of the bucketing pools
        bs = max(1, math.ceil(batch_tokens * len(lengths) / max(int(lengths.sum()), 1)))

    def batches(epoch: int, gen: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
        perm = torch.randperm(len(inputs), generator=gen)
        if length_bucketing:  # sort within pools of 50 batches, then shuffle the batches
            pool = bs * 50
            parts = [p[torch.argsort(lengths[p], stable=True)] for p in perm.split(pool)]
            perm = torch.cat(parts)
        if batch_tokens is None:
            chunks = list(perm.split(bs))
        else:
            step_of = (lengths[perm].cumsum(0) - 1) // batch_tokens
            sizes = torch.bincount(step_of)
            chunks = list(perm.split(sizes[sizes > 0].tolist()))
        for j in torch.randperm(len(chunks), generator=gen).tolist():
            idx = chunks[j]
            width = min(shape_bucket(int(lengths[idx].max())), inputs.shape[1])
            if extra is None:
                yield inputs[idx, :width], targets[idx, :width]
            else:
                yield inputs[idx, :width], targets[idx, :width], extra[idx, :width]

    return batches


GAP_BUCKETS = 64
"""Size of the time-gap vocabulary: 0 = padding, 1 = first event or unknown time, 2 + floor(2 log2(1 + seconds))
for the others (half-octave buckets: 0 s -> 2, 1 minute -> 13, 1 day -> 34, 1 year -> 51), capped at 63."""


def gap_buckets(times: np.ndarray | None, length: int | None = None) -> np.ndarray:
    """``(n,)`` int64 bucket of the time since the previous event of each event (times in seconds, oldest first).

    ``times=None`` (an unknown timeline) gives ``length`` unknown buckets (1). Clock going backwards counts as 0 s.
    """
    if times is None:
        return np.ones(length or 0, dtype=np.int64)
    t = np.asarray(times, dtype=np.int64)
    out = np.ones(len(t), dtype=np.int64)
    if len(t) > 1:
        gap = np.maximum(np.diff(t), 0).astype(np.float64)
        out[1:] = np.minimum(2 + np.floor(2 * np.log2(1.0 + gap)), GAP_BUCKETS - 1).astype(np.int64)
    return out


def pad_histories(histories: Sequence[np.ndarray], max_len: int, *, left: bool, extra: int = 0) -> np.ndarray:
    """``(B, width)`` int64 histories cut to their last ``max_len`` items and padded with 0 (``left``: padding
    first); ``extra`` free columns after the longest history (a query position)."""
    clipped = [np.asarray(h, dtype=np.int64)[len(h) - min(len(h), max_len) :] for h in histories]
    width = max(1, max((len(h) for h in clipped), default=1) + extra)
    out = np.zeros((len(clipped), width), dtype=np.int64)
    for row, h in enumerate(clipped):
        if len(h):
            if left:
                out[row, width - len(h) - extra : width - extra] = h
            else:
                out[row, : len(h)] = h
    return out


def next_item_loss(net: Any, item_weight: Tensor, item_loss: ItemLoss, *, exclude_window: bool) -> LossFn:
    """The training loss of a batch of right-padded windows ``(inputs, targets)``: ``item_loss`` at every
    non-padding position, and the number of targets. With ``exclude_window``, each target's softmax leaves
    out the other items of its window (the first input and every target)."""

    def loss_fn(batch: tuple[Tensor, ...], gen: torch.Generator) -> tuple[Tensor, int]:
        x, y, *gaps = batch  # (inputs, targets) or, with time inputs, (inputs, targets, gaps)
        hidden = net(x, gaps[0]) if gaps else net(x)
        mask = y > 0
        if exclude_window:
            window = torch.cat([x[:, :1], y], dim=1)
            exclude = window[mask.nonzero(as_tuple=True)[0]]
            loss = item_loss(hidden[mask], y[mask], item_weight, gen, exclude)
        else:
            loss = item_loss(hidden[mask], y[mask], item_weight, gen)
        return loss, int(mask.sum())

    return loss_fn  # type: ignore[return-value]
