"""Next-item losses over a shared item embedding table (options of the one training loop, not copies of it).

Every loss is called as ``loss(hidden, targets, item_weight, generator)`` with

* ``hidden``: ``(N, D)`` sequence representations at the positions that have a target (padding removed),
* ``targets``: ``(N,)`` int64 item indices ``>= 1``,
* ``item_weight``: ``(V + 1, D)`` output item embeddings (row 0 = padding, never a candidate),
* ``generator``: the ``torch.Generator`` negatives are drawn from (seeded by the trainer),

and returns the mean loss over the ``N`` targets. The full and the sampled cross-entropy also take ``exclude``,
``(N, W)`` item indices (0 = none) that are not negatives of that target (the target itself always stays in its
softmax).
Available (``make_loss``):

* ``"ce"``: full softmax cross-entropy over all items (SASRec+, Klenitskiy & Vasilev, RecSys 2023), computed
  in row chunks by a fused autograd function that never stores the ``(N, V)`` logits. With ``exclude``, the
  softmax of each target leaves out those items: SASRec passes the other items of the same training window (the
  user's own past and future items), as the SASRec+ variant of Klenitskiy & Vasilev whose 3,000 negatives are
  drawn from outside the sequence.
* ``"sampled"``: sampled softmax with ``num_negatives`` negatives shared by the batch, drawn uniformly or
  by popularity with the logQ correction (Yi et al., RecSys 2019); accidental hits are masked, and so are the
  ``exclude`` items of each target.
* ``"bce"``: the original SASRec loss, binary cross-entropy with one uniform negative per position.
* ``"gbce"``: generalised BCE of gSASRec (Petrov & Macdonald, RecSys 2023): ``num_negatives`` negatives and
  the positive probability raised to ``beta = alpha * (t * (1 - 1/alpha) + 1/alpha)``, ``alpha = K / (V - 1)``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("ce", "sampled", "bce", "gbce")


class ItemLoss(Protocol):
    def __call__(
        self,
        hidden: Tensor,
        targets: Tensor,
        item_weight: Tensor,
        generator: torch.Generator,
        exclude: Tensor | None = None,
    ) -> Tensor: ...


class _SampledLoss:
    """Base of the losses with sampled negatives: they take no ``exclude`` unless ``takes_exclude`` (the full
    cross-entropy and the sampled softmax do)."""

    name: str
    takes_exclude = False

    def __call__(
        self,
        hidden: Tensor,
        targets: Tensor,
        item_weight: Tensor,
        generator: torch.Generator,
        exclude: Tensor | None = None,
    ) -> Tensor:
        if exclude is not None and not self.takes_exclude:
            raise ValueError(
                f"the {self.name!r} loss does not take 'exclude' (only 'ce' and 'sampled' do); got an exclude tensor"
            )
        if exclude is not None and (exclude.ndim != 2 or exclude.shape[0] != hidden.shape[0]):
            raise ValueError(
                f"exclude must have shape (N, W) with N = {hidden.shape[0]} targets; got {tuple(exclude.shape)}"
            )
        return self._loss(hidden, targets, item_weight, generator, exclude)

    def _loss(
        self, hidden: Tensor, targets: Tensor, item_weight: Tensor, generator: torch.Generator, exclude: Tensor | None
    ) -> Tensor:
        raise NotImplementedError


CHUNK_ROW_MULTIPLE = 64
"""The rows of every matmul of the chunked cross-entropy are padded (with zero rows that carry no loss) to a multiple
of this. Without it the last chunk of each batch has a new row count almost every step (the batch's number of
targets modulo the chunk size), and oneDNN, which runs the bf16 matmuls on CPUs, builds and caches a kernel per
new shape: the process then grew by ~300 MB and slowed down by ~15% with every ML-1M epoch (38 s -> 63 s by the
4th epoch). With the padding the shapes come from a small fixed set."""


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight.T`` computed ``chunk`` rows at a time.

    The gradients are formed during the forward pass chunk by chunk (softmax minus one-hot), so peak memory is
    ``chunk x V`` instead of ``N x V`` and the work stays cache-sized; backward only scales them.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: Tensor, weight: Tensor, targets: Tensor, chunk: int, bf16: bool, exclude: Tensor | None
    ) -> Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            return _ChunkedSoftmaxCE._forward(ctx, hidden, weight, targets, chunk, bf16, exclude)

    @staticmethod
    def _forward(
        ctx: Any, hidden: Tensor, weight: Tensor, targets: Tensor, chunk: int, bf16: bool, exclude: Tensor | None
    ) -> Tensor:
        n = hidden.shape[0]
        dtype = torch.bfloat16 if bf16 else torch.float32
        hm = hidden.detach().to(dtype)
        wm = weight.detach().to(dtype)
        dev = hidden.device
        grad_h = torch.empty(hidden.shape, dtype=torch.float32, device=dev)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=dev)
        total = torch.zeros((), dtype=torch.float64, device=dev)
        tiny = torch.finfo(torch.float32).tiny
        for start in range(0, n, chunk):
            h = hm[start : start + chunk]
            c = h.shape[0]
            pad = -c % CHUNK_ROW_MULTIPLE
            if pad:  # zero rows up to a multiple: a bounded set of matmul shapes (see CHUNK_ROW_MULTIPLE)
                h = torch.cat([h, h.new_zeros((pad, h.shape[1]))])
            y = targets[start : start + chunk]
            rows = torch.arange(c, device=dev)
            logits = (h @ wm.T).float()  # (c + pad, V)
            if exclude is not None:  # exclude holds item indices 1..V (0 = none); logits column = item - 1
                ex = exclude[start : start + chunk]
                cols = torch.where(ex > 0, ex - 1, y[:, None])  # padding points at the target, restored below
                kept = logits[rows, y]
                logits[:c].scatter_(1, cols, float("-inf"))
                logits[rows, y] = kept
            probs = torch.softmax(logits, dim=1)
            if pad:
                probs[c:] = 0.0  # padding rows: no loss, no gradient
            total -= probs[rows, y].clamp_min(tiny).log().double().sum()
            probs[rows, y] -= 1.0  # d loss / d logits (times n)
            pm = probs.to(dtype)
            grad_h[start : start + c] = (pm @ wm).float()[:c]
            if bf16:
                grad_w += (pm.T @ h).float()
            else:
                grad_w.addmm_(pm.T, h)
        ctx.save_for_backward(grad_h.div_(max(n, 1)), grad_w.div_(max(n, 1)))
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return (total / max(n, 1)).float()

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        return (grad_h * grad_out).to(h_dtype), (grad_w * grad_out).to(w_dtype), None, None, None, None


def plain_cross_entropy(hidden: Tensor, targets: Tensor, logits: Tensor, exclude: Tensor | None = None) -> Tensor:
    """Mean softmax cross-entropy of ``(N, V + 1)`` item ``logits`` (column 0 = padding, never a candidate) by
    plain autograd: what per-sample-gradient tools (differential privacy) and GPUs use. ``exclude`` as in
    :class:`FullCrossEntropy`."""
    logits = logits.float()
    logits = logits.masked_fill(torch.arange(logits.shape[1], device=logits.device) == 0, float("-inf"))
    if exclude is not None:
        rows = torch.arange(len(targets), device=logits.device)
        kept = logits[rows, targets]
        logits = logits.scatter(1, exclude, float("-inf"))  # column 0 is -inf already
        logits = logits.index_put((rows, targets), kept)
    return F.cross_entropy(logits, targets)


class FullCrossEntropy:
    """Softmax cross-entropy over every item (index 0 excluded).

    Two paths with the same value: ``fused`` computes it ``chunk_size`` rows at a time with hand-written
    gradients (never stores the ``(N, V)`` logits; the fast path on CPUs), the other by plain autograd over the
    full logits (GPUs, which have memory and fast kernels for it, and per-sample-gradient tools). ``fused=None``:
    fused on the CPU only.

    ``exclude``: optional ``(N, W)`` item indices (0 = none) left out of the softmax of each target; the target
    itself is never left out.
    """

    def __init__(self, chunk_size: int = 512, fused: bool | None = None) -> None:
        self.chunk_size = chunk_size
        self.fused = fused

    def __call__(
        self,
        hidden: Tensor,
        targets: Tensor,
        item_weight: Tensor,
        generator: torch.Generator,
        exclude: Tensor | None = None,
    ) -> Tensor:
        if hidden.shape[0] == 0:
            return hidden.sum() * 0.0
        if exclude is not None and (exclude.ndim != 2 or exclude.shape[0] != hidden.shape[0]):
            raise ValueError(
                f"exclude must have shape (N, W) with N = {hidden.shape[0]} targets; got {tuple(exclude.shape)}"
            )
        fused = hidden.device.type == "cpu" if self.fused is None else self.fused
        if not fused:
            return plain_cross_entropy(hidden, targets, hidden @ item_weight.T, exclude)
        bf16 = torch.is_autocast_enabled(hidden.device.type)  # bf16 matmuls, float32 softmax
        return _ChunkedSoftmaxCE.apply(  # type: ignore[no-any-return]
            hidden, item_weight[1:], targets - 1, self.chunk_size, bf16, exclude
        )


class _NegativeSampler:
    """Draws item indices ``1..V`` uniformly or proportionally to ``counts ** power``."""

    def __init__(self, num_items: int, sampling: str, item_counts: np.ndarray | None, power: float = 1.0) -> None:
        if sampling not in ("uniform", "popularity"):
            raise ValueError(f"negative_sampling must be 'uniform' or 'popularity'; got {sampling!r}")
        self.num_items = num_items
        self.sampling = sampling
        self.probs: Tensor | None = None
        if sampling == "popularity":
            if item_counts is None:
                raise ValueError("negative_sampling='popularity' needs item counts")
            w = np.asarray(item_counts, dtype=np.float64)[1 : num_items + 1].clip(min=0) ** power + 1e-6
            self.probs = torch.as_tensor(w / w.sum(), dtype=torch.float32)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device | None = None) -> Tensor:
        """Draws from ``generator`` (a CPU generator, so that draws do not depend on the device), moved to
        ``device``."""
        if self.probs is None:
            out = torch.randint(1, self.num_items + 1, shape, generator=generator)
        else:
            n = math.prod(shape)
            out = (torch.multinomial(self.probs, n, replacement=True, generator=generator) + 1).view(shape)
        return out if device is None else out.to(device, non_blocking=True)

    def log_q(self, items: Tensor) -> Tensor:
        """Log sampling probability of each item (constant for uniform sampling), on ``items``' device."""
        if self.probs is None:
            return torch.full(items.shape, -math.log(self.num_items), device=items.device)
        if self.probs.device != items.device:
            self.probs = self.probs.to(items.device)
        return self.probs[items - 1].log()


def excluded_negatives(negs: Tensor, exclude: Tensor, num_items: int) -> Tensor:
    """``(N, K)`` booleans: whether negative ``negs[k]`` is among row ``n``'s ``exclude`` items (0 = none).

    Built without an ``(N, W, K)`` comparison: each distinct negative gets a column (1..U), ``exclude`` is looked
    up in a ``(V + 1,)`` table of those columns and scattered into an ``(N, U + 1)`` mask (column 0 collects the
    items that are no negative), which is then read for every (possibly repeated) negative."""
    uniq, inverse = torch.unique(negs, return_inverse=True)
    column = torch.zeros(num_items + 1, dtype=torch.long, device=negs.device)
    column[uniq] = torch.arange(1, uniq.numel() + 1, device=negs.device)
    mask = torch.zeros(exclude.shape[0], uniq.numel() + 1, dtype=torch.bool, device=negs.device)
    mask.scatter_(1, column[exclude], True)
    return mask[:, 1:][:, inverse]


class SampledSoftmax(_SampledLoss):
    """Softmax over the positive and ``num_negatives`` negatives shared by the batch (logQ-corrected).

    ``exclude``: optional ``(N, W)`` item indices (0 = none); a sampled negative among a target's excluded items
    is left out of that target's softmax, as the full cross-entropy leaves them out."""

    name = "sampled"
    takes_exclude = True

    def __init__(
        self, num_items: int, num_negatives: int, sampling: str = "uniform", item_counts: np.ndarray | None = None
    ) -> None:
        self.sampler = _NegativeSampler(num_items, sampling, item_counts)
        self.num_negatives = num_negatives

    def _loss(
        self, hidden: Tensor, targets: Tensor, item_weight: Tensor, generator: torch.Generator, exclude: Tensor | None
    ) -> Tensor:
        negs = self.sampler.sample((self.num_negatives,), generator, hidden.device)  # (K,)
        pos = (hidden * item_weight[targets]).sum(-1, keepdim=True)  # (N, 1)
        neg = hidden @ item_weight[negs].T  # (N, K)
        if self.sampler.probs is not None:  # logQ correction; a constant for uniform sampling
            pos = pos - self.sampler.log_q(targets)[:, None].to(pos.dtype)
            neg = neg - self.sampler.log_q(negs)[None, :].to(neg.dtype)
        hit = negs[None, :] == targets[:, None]
        if exclude is not None:
            hit = hit | excluded_negatives(negs, exclude, self.sampler.num_items)
        neg = neg.masked_fill(hit, float("-inf"))
        logits = torch.cat([pos, neg], dim=1).float()
        return -logits.log_softmax(dim=1)[:, 0].mean()


class BinaryCrossEntropy(_SampledLoss):
    """Original SASRec loss: ``-log s(pos) - log(1 - s(neg))`` with one uniform negative per position."""

    name = "bce"

    def __init__(self, num_items: int) -> None:
        self.sampler = _NegativeSampler(num_items, "uniform", None)

    def _loss(
        self, hidden: Tensor, targets: Tensor, item_weight: Tensor, generator: torch.Generator, exclude: Tensor | None
    ) -> Tensor:
        negs = self.sampler.sample((targets.shape[0],), generator, hidden.device)
        pos = (hidden * item_weight[targets]).sum(-1).float()
        neg = (hidden * item_weight[negs]).sum(-1).float()
        neg_loss = F.logsigmoid(-neg).masked_fill(negs == targets, 0.0)
        return -(F.logsigmoid(pos) + neg_loss).mean()


def gbce_beta(num_items: int, num_negatives: int, t: float) -> float:
    """gSASRec calibration: ``beta = alpha * (t * (1 - 1/alpha) + 1/alpha)``, ``alpha = K / (V - 1)``.

    ``t = 0`` gives ``beta = 1`` (plain BCE); ``t = 1`` gives ``beta = alpha`` (fully calibrated).
    """
    alpha = num_negatives / max(num_items - 1, 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


class GeneralisedBCE(_SampledLoss):
    """gBCE of gSASRec: ``-(beta * log s(pos) + sum_k log(1 - s(neg_k))) / (K + 1)``, negatives shared by the
    batch (gSASRec draws them per position; sharing keeps memory at ``N x K`` logits)."""

    name = "gbce"

    def __init__(self, num_items: int, num_negatives: int, t: float = 0.75) -> None:
        self.sampler = _NegativeSampler(num_items, "uniform", None)
        self.num_negatives = num_negatives
        self.beta = gbce_beta(num_items, num_negatives, t)

    def _loss(
        self, hidden: Tensor, targets: Tensor, item_weight: Tensor, generator: torch.Generator, exclude: Tensor | None
    ) -> Tensor:
        negs = self.sampler.sample((self.num_negatives,), generator, hidden.device)
        pos = (hidden * item_weight[targets]).sum(-1).float()
        neg = (hidden @ item_weight[negs].T).float()
        neg_loss = F.logsigmoid(-neg).masked_fill(negs[None, :] == targets[:, None], 0.0).sum(1)
        return -((self.beta * F.logsigmoid(pos) + neg_loss) / (self.num_negatives + 1)).mean()


def make_loss(
    name: str,
    num_items: int,
    *,
    num_negatives: int = 256,
    negative_sampling: str = "uniform",
    item_counts: np.ndarray | None = None,
    gbce_t: float = 0.75,
    chunk_size: int = 512,
    fused: bool | None = None,
) -> ItemLoss:
    """Build a loss by name (``"ce"``, ``"sampled"``, ``"bce"``, ``"gbce"``); ``fused``: see
    :class:`FullCrossEntropy`."""
    if name == "ce":
        return FullCrossEntropy(chunk_size, fused)
    if name == "sampled":
        return SampledSoftmax(num_items, num_negatives, negative_sampling, item_counts)
    if name == "bce":
        return BinaryCrossEntropy(num_items)
    if name == "gbce":
        return GeneralisedBCE(num_items, num_negatives, gbce_t)
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {name!r}")
