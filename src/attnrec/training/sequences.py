"""Training data of next-item models, shared by every sequential model: windows of histories and their batches.

A user's history ``i_1 ... i_n`` gives next-item pairs ``(i_1..i_t) -> i_{t+1}``; a model learns from windows of
at most ``max_len`` inputs with their shifted targets (:func:`training_windows`), served in batches cut to the
longest real window of the batch (:func:`window_batches`). Models whose training split has no pair at all say so
before any work (:func:`check_next_item_pairs`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from attnrec.data.interactions import Interactions
from attnrec.errors import DataError

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
