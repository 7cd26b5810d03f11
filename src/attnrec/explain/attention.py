"""Attention explanations for self-attentive sequence models (SASRec and any model with the same interface).

A model explains itself through two methods it provides:

* ``attention_maps(histories) -> [ (B, H, L, L) per layer ]``: explicit attention probabilities of every layer
  for left-padded histories (the last query row belongs to the newest history item, whose output scores the
  next item);
* ``_net()`` with ``embed``, ``encoder`` and ``scores`` (used by the gradient-weighted method).

Two ways of turning attention into "because" weights over the history, both returning one weight per history
position that sums to 1:

``rollout`` (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020)
    Per layer the heads are averaged, the residual connection is added as ``0.5 * A + 0.5 * I`` and rows are
    re-normalised; layers are multiplied from the first to the last (``R = A_L ... A_1``) and the row of the last
    position gives how much each history item flows into the state that scores every candidate. The same weights
    hold for every recommended item of one history.

``rollout-grad`` (item-specific; after Chefer, Gur & Wolf, "Transformer Interpretability Beyond Attention
Visualization", CVPR 2021)
    The rollout weights multiplied by the positive part of gradient x input of the recommended item's score
    with respect to each history position's input embedding, re-normalised. Items that the attention selects
    *and* that push this particular item's score up get the weight.

Repeated items in a history have their position weights summed. ``docs/explanations.md`` reports how faithful
each method is (the score drop when the top-3 items are removed, against 3 random items).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from attnrec.nn.transformer import attention_mask

Method = Literal["rollout", "rollout-grad"]
METHODS: tuple[str, ...] = ("rollout", "rollout-grad")


def attention_rollout(maps: Sequence[Tensor], *, residual: float = 0.5) -> Tensor:
    """Rollout of per-layer attention maps.

    Args:
        maps: one ``(B, H, L, L)`` tensor per layer (rows = queries, columns = keys), first layer first.
        residual: weight of the identity added for the residual connection.

    Returns:
        ``(B, L, L)``: row ``i`` is how much each input position flows into position ``i`` of the last layer.
    """
    rollout: Tensor | None = None
    for layer in maps:
        attn = torch.nan_to_num(layer.float(), nan=0.0).mean(dim=1)
        eye = torch.eye(attn.shape[-1], dtype=attn.dtype).expand_as(attn)
        attn = residual * eye + (1.0 - residual) * attn
        attn = attn / attn.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        rollout = attn if rollout is None else attn @ rollout
    if rollout is None:
        raise ValueError("attention_rollout needs at least one layer")
    return rollout


def last_position_weights(model: Any, histories: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Rollout weights of the last position over each history's (clipped) positions, oldest first."""
    maps = model.attention_maps(histories)
    roll = attention_rollout(maps)[:, -1, :]  # (B, L)
    out = []
    limit = model.config.max_seq_len
    for row, hist in enumerate(histories):
        n = min(len(hist), limit)
        w = roll[row, roll.shape[1] - n :].numpy().astype(np.float64) if n else np.zeros(0)
        total = w.sum()
        out.append(w / total if total > 0 else w)
    return out


def gradient_relevance(model: Any, history: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``(len(items), n)`` positive gradient x input of each item's score w.r.t. the history positions."""
    net = model._net()
    net.eval()
    x = model._padded([np.asarray(history)], left=True)
    n = int((x > 0).sum())
    with torch.enable_grad():
        emb = net.embed(x).detach().requires_grad_(True)
        hidden = net.encoder(emb, attention_mask(x > 0, causal=True))[:, -1]
        scores = net.scores(hidden)[0, torch.as_tensor(np.asarray(items, dtype=np.int64))]
        rows = []
        for j in range(len(items)):
            (grad,) = torch.autograd.grad(scores[j], emb, retain_graph=j < len(items) - 1)
            rel = (grad * emb).sum(-1)[0, emb.shape[1] - n :].clamp_min(0.0)
            rows.append(rel.detach().numpy().astype(np.float64))
    return np.stack(rows) if rows else np.zeros((0, n))


def position_weights(model: Any, history: np.ndarray, items: np.ndarray, *, method: Method = "rollout") -> np.ndarray:
    """``(len(items), n)`` weights over the last ``n = min(len(history), max_seq_len)`` positions; rows sum to 1."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    base = last_position_weights(model, [np.asarray(history)])[0]
    weights = np.repeat(base[None, :], len(items), axis=0)
    if method == "rollout-grad":
        weights = weights * gradient_relevance(model, history, items)
        totals = weights.sum(axis=1, keepdims=True)
        # an item no position pushes up: fall back to the plain rollout row
        weights = np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), base[None, :])
    return weights


def explain_history(
    model: Any, history: np.ndarray, items: np.ndarray, *, top: int = 5, method: Method = "rollout"
) -> list[list[tuple[int, float]]]:
    """Per recommended item, the ``top`` history items (index, weight) that drove it, largest first.

    Weights of repeated history items are summed; weights are fractions of the whole history's weight.
    """
    history = np.asarray(history, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if len(history) == 0 or len(items) == 0:
        return [[] for _ in items]
    weights = position_weights(model, history, items, method=method)
    clipped = history[-weights.shape[1] :]
    out: list[list[tuple[int, float]]] = []
    for row in weights:
        agg: dict[int, float] = {}
        for item, w in zip(clipped.tolist(), row.tolist(), strict=True):
            agg[item] = agg.get(item, 0.0) + w
        ranked = sorted(agg.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        out.append([(int(i), float(w)) for i, w in ranked])
    return out
