"""Attention rollout for transformer recommenders, causal or bidirectional, queried at any position.

A transformer model explains itself through:

* ``attention_maps(histories) -> [(B, H, L, L) per layer]``: attention probabilities of every layer for
  left-padded histories (rows are queries, columns keys);
* the class attributes ``attention_mask_kind`` (``"causal"``: SASRec, or ``"bidirectional"``: BERT4Rec) and
  ``query_position`` (``"last"``: the newest history item's output scores the next item, so ``L = len(h)``;
  ``"mask"``: an extra mask position appended after the history does, so ``L = len(h) + 1``). Missing
  attributes mean ``"causal"`` / ``"last"``. In both cases the query row is the last row of the maps;
* for ``rollout-grad`` only, ``embedding_scores(histories) -> (emb, scores)``: the ``(B, L, D)`` input
  embeddings as a leaf tensor that requires grad (columns aligned with the attention maps) and the ``(B, V + 1)``
  item scores computed from them with autograd on. SASRec without that method is served by an adapter.

``rollout`` (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020)
    Per layer the heads are averaged, entries the mask forbids are zeroed (so a causal model's maps are read
    as causal whatever the padding rows hold), the residual connection is added as ``0.5 * A + 0.5 * I`` and
    rows are re-normalised; layers are multiplied from the first to the last (``R = A_L ... A_1``). The query
    row of ``R`` restricted to the history columns (the mask column excluded) and re-normalised is how much
    each history item flows into the state that scores every candidate: the same for every recommended item.

``rollout-grad`` (item-specific; after Chefer, Gur & Wolf, CVPR 2021)
    The rollout weights multiplied by the positive part of gradient x input of the recommended item's score
    with respect to each history position's input embedding, re-normalised. Items that the attention selects
    *and* that push this particular item's score up get the weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from attnrec.explain.base import ExplainError, PositionExplainer, read_part

MaskKind = Literal["causal", "bidirectional"]
QueryPosition = Literal["last", "mask"]
MASK_KINDS: tuple[str, ...] = ("causal", "bidirectional")
QUERY_POSITIONS: tuple[str, ...] = ("last", "mask")


@dataclass(frozen=True)
class RolloutSpec:
    """How to read a transformer's attention maps.

    Attributes:
        mask: ``"causal"`` (query ``i`` sees keys ``<= i``) or ``"bidirectional"`` (every key).
        query: ``"last"`` (the last history item is the query) or ``"mask"`` (a mask position after the history).
        residual: weight of the identity added for the residual connection.
    """

    mask: MaskKind = "causal"
    query: QueryPosition = "last"
    residual: float = 0.5

    def __post_init__(self) -> None:
        if self.mask not in MASK_KINDS:
            raise ExplainError(f"attention mask kind must be one of {', '.join(MASK_KINDS)}; got {self.mask!r}")
        if self.query not in QUERY_POSITIONS:
            raise ExplainError(f"query position must be one of {', '.join(QUERY_POSITIONS)}; got {self.query!r}")
        if not 0.0 <= self.residual < 1.0:
            raise ExplainError(f"rollout residual must be in [0, 1); got {self.residual}")

    def history_columns(self, width: int, n: int) -> slice:
        """Columns of the last ``n`` history items in maps of width ``width`` (the mask column excluded)."""
        end = width if self.query == "last" else width - 1
        if n > end:
            raise ExplainError(
                f"attention maps of width {width} cannot hold {n} history items with query position "
                f"{self.query!r} (expected width {n if self.query == 'last' else n + 1} or more)"
            )
        return slice(end - n, end)


def rollout_spec(model: Any) -> RolloutSpec:
    """The model's :class:`RolloutSpec` from its class attributes (``"causal"`` / ``"last"`` when absent)."""
    return RolloutSpec(
        mask=getattr(model, "attention_mask_kind", "causal"), query=getattr(model, "query_position", "last")
    )


def attention_rollout(maps: Sequence[Tensor], *, residual: float = 0.5, mask: MaskKind | None = None) -> Tensor:
    """Rollout of per-layer attention maps.

    Args:
        maps: one ``(B, H, L, L)`` tensor per layer (rows = queries, columns = keys), first layer first.
        residual: weight of the identity added for the residual connection.
        mask: ``"causal"`` zeroes every entry above the diagonal and re-normalises the rows before the residual
            is added; ``"bidirectional"`` or None uses the maps as they are.

    Returns:
        ``(B, L, L)``: row ``i`` is how much each input position flows into position ``i`` of the last layer.
    """
    rollout: Tensor | None = None
    for layer in maps:
        attn = torch.nan_to_num(layer.detach().float().cpu(), nan=0.0).mean(dim=1)
        if mask == "causal":  # as a softmax over the allowed keys would have given
            attn = attn.tril()
            attn = attn / attn.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(attn.shape[-1], dtype=attn.dtype).expand_as(attn)
        attn = residual * eye + (1.0 - residual) * attn
        attn = attn / attn.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        rollout = attn if rollout is None else attn @ rollout
    if rollout is None:
        raise ExplainError("attention rollout needs the maps of at least one layer; got none")
    return rollout


def query_weights(maps: Sequence[Tensor], lengths: Sequence[int], spec: RolloutSpec) -> list[np.ndarray]:
    """Rollout weights of the query over each row's last ``lengths[row]`` history items (oldest first), each
    summing to 1 (empty for an empty history)."""
    roll = attention_rollout(maps, residual=spec.residual, mask=spec.mask)[:, -1, :]  # (B, L): the query row
    out = []
    for row, n in enumerate(lengths):
        if n == 0:
            out.append(np.zeros(0))
            continue
        w = roll[row, spec.history_columns(roll.shape[1], n)].numpy().astype(np.float64)
        total = w.sum()
        out.append(w / total if total > 0 else w)
    return out


def last_position_weights(model: Any, histories: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Rollout weights of the model's query over each history's read positions, oldest first (sum to 1)."""
    reads = [read_part(model, h) for h in histories]
    return query_weights(model.attention_maps(reads), [len(h) for h in reads], rollout_spec(model))


def _sasrec_embedding_scores(model: Any, histories: Sequence[np.ndarray], spec: RolloutSpec) -> tuple[Tensor, Tensor]:
    """``embedding_scores`` for a SASRec-like model that lacks it (``_net()`` with ``embed``, ``encoder``,
    ``scores``; ``_padded``)."""
    from attnrec.nn.transformer import attention_mask

    net = model._net()
    net.eval()
    device = next(net.parameters()).device
    x = model._padded(list(histories), left=True).to(device)
    emb = net.embed(x).detach().requires_grad_(True)
    hidden = net.encoder(emb, attention_mask(x > 0, causal=spec.mask == "causal"))[:, -1]
    return emb, net.scores(hidden)


def gradient_relevance(model: Any, history: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``(len(items), n)`` positive gradient x input of each item's score w.r.t. the ``n`` read positions."""
    spec = rollout_spec(model)
    read = read_part(model, history)
    items = np.asarray(items, dtype=np.int64)
    with torch.enable_grad():
        if hasattr(model, "embedding_scores"):
            emb, scores = model.embedding_scores([read])
        else:
            emb, scores = _sasrec_embedding_scores(model, [read], spec)
        cols = spec.history_columns(emb.shape[1], len(read))
        picked = scores[0, torch.as_tensor(items, device=scores.device)]
        rows = []
        for j in range(len(items)):
            (grad,) = torch.autograd.grad(picked[j], emb, retain_graph=j < len(items) - 1)
            rel = (grad * emb).sum(-1)[0, cols].clamp_min(0.0)
            rows.append(rel.detach().float().cpu().numpy().astype(np.float64))
    return np.stack(rows) if rows else np.zeros((0, len(read)))


class RolloutExplainer(PositionExplainer):
    """``rollout``: the attention rollout of the query over the history (the same for every item)."""

    name = "rollout"
    item_specific = False

    def applies_to(self, model: Any) -> bool:
        return callable(getattr(model, "attention_maps", None))

    def relevance(
        self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None, user: int = 0
    ) -> np.ndarray:
        base = last_position_weights(model, [history])[0]
        return np.repeat(base[None, :], len(items), axis=0)


class RolloutGradExplainer(RolloutExplainer):
    """``rollout-grad``: rollout x positive gradient x input of each item's score (item-specific)."""

    name = "rollout-grad"
    item_specific = True

    def applies_to(self, model: Any) -> bool:
        if not super().applies_to(model):
            return False
        if callable(getattr(model, "embedding_scores", None)):
            return True
        return callable(getattr(model, "_net", None)) and callable(getattr(model, "_padded", None))

    def relevance(
        self, model: Any, history: np.ndarray, items: np.ndarray, *, top: int | None = None, user: int = 0
    ) -> np.ndarray:
        base = last_position_weights(model, [history])[0]
        weights = base[None, :] * gradient_relevance(model, history, items)
        totals = weights.sum(axis=1, keepdims=True)
        # an item no position pushes up: fall back to the plain rollout row
        return np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), base[None, :])
