"""NARM: a recurrent encoder with attention (global + local interest) for next-item recommendation.

Jing Li, Pengjie Ren, Zhumin Chen, Zhaochun Ren, Tao Lian and Jun Ma. "Neural Attentive Session-based
Recommendation." CIKM 2017. https://arxiv.org/abs/1711.04725

A GRU (or LSTM) reads the item embeddings; the global encoder is its last hidden state ``h_t``, the local encoder
an attention of ``h_t`` over every hidden state ``h_j`` (``j <= t``); the concatenation ``[h_t; c_local]`` goes
through a projection ``B`` to the embedding width and is scored against the (tied) item embeddings, the paper's
bilinear decoder. Trained on every prefix of every window (the state at ``t`` predicts item ``t + 1``) with the
shared losses (full cross-entropy by default). Deviations from the paper and measurements: ``docs/models/narm.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from attnrec.data.interactions import Interactions
from attnrec.models.sequential import SequentialConfig, SequentialRecommender
from attnrec.training.neural import item_scores_module
from attnrec.training.search_space import Choice, FloatRange, SearchSpace
from attnrec.training.sequences import GAP_BUCKETS, pad_histories

CITATION = "Li, Ren, Chen, Ren, Lian & Ma. Neural Attentive Session-based Recommendation. CIKM 2017."

ADDITIVE_CHUNK_ELEMENTS = 1 << 22
"""Most ``(query, key, hidden)`` elements of one chunk of the all-prefix additive attention (16 MiB in float32);
chunks are recomputed in the backward pass instead of stored (``torch.utils.checkpoint``)."""


class NARMConfig(SequentialConfig):
    """Hyperparameters of NARM (the fields shared by every next-item model are described in
    :class:`~attnrec.models.sequential.SequentialConfig` and :class:`~attnrec.training.neural.NeuralConfig`)."""

    embed_dim: int = Field(64, ge=4, description="Width of the item embeddings (and of the scored state).")
    hidden_dim: int | None = Field(None, ge=4, description="Width of the recurrent states (None: embed_dim).")
    rnn: Literal["gru", "lstm"] = Field("gru", description="Recurrent encoder: gru (the paper's) or lstm.")
    num_layers: int = Field(1, ge=1, description="Stacked recurrent layers.")
    attention: Literal["dot", "additive"] = Field(
        "dot",
        description="Scoring of the local attention: scaled dot (A1 h_t) . (A2 h_j) / sqrt(hidden_dim), or "
        "additive v^T tanh(A1 h_t + A2 h_j) (about 20x the attention cost at 200 items); softmax over j <= t.",
    )
    dropout: float = Field(0.25, ge=0, lt=1, description="Dropout on the item embeddings (the paper's 0.25).")
    output_dropout: float = Field(
        0.5, ge=0, lt=1, description="Dropout on [h_t; c_local] before the projection B (the paper's 0.5)."
    )
    lr: float = Field(2e-3, gt=0, description="Peak AdamW learning rate.")
    epochs: int = Field(
        100, ge=1, description="Maximum training epochs (early stopping usually ends training much sooner)."
    )
    patience: int = Field(
        8,
        ge=0,
        description="Stop after this many validations without improvement (0: never stop early; 8: late in "
        "training validation NDCG@10 rises by less per epoch than it varies between epochs).",
    )
    grad_clip: float | None = Field(5.0, ge=0, description="Clip the global gradient norm (None or 0: off).")

    search_space: ClassVar[SearchSpace] = {
        "lr": FloatRange(5e-4, 1e-2, log=True),
        "embed_dim": Choice((32, 64, 128)),
        "dropout": FloatRange(0.0, 0.5),
        "output_dropout": FloatRange(0.0, 0.6),
        "weight_decay": Choice((0.0, 1e-3, 1e-2, 1e-1)),
    }
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


class NARMNet(nn.Module):
    """Item embeddings, a GRU/LSTM, attention of each state over the states before it, projection, tied scores."""

    def __init__(self, num_items: int, cfg: NARMConfig) -> None:
        super().__init__()
        d, h = cfg.embed_dim, cfg.hidden_dim or cfg.embed_dim
        self.attention = cfg.attention
        self.item_emb = nn.Embedding(num_items + 1, d, padding_idx=0)
        self.emb_drop = nn.Dropout(cfg.dropout)
        rnn_cls = nn.GRU if cfg.rnn == "gru" else nn.LSTM
        inner = cfg.dropout if cfg.num_layers > 1 else 0.0
        self.rnn = rnn_cls(d, h, num_layers=cfg.num_layers, batch_first=True, dropout=inner)
        self.a1 = nn.Linear(h, h, bias=False)  # query side: the last state h_t
        self.a2 = nn.Linear(h, h, bias=False)  # key side: every state h_j
        self.v = nn.Linear(h, 1, bias=False)  # additive scoring only
        self.out_drop = nn.Dropout(cfg.output_dropout)
        self.proj = nn.Linear(2 * h, d, bias=False)  # the paper's B
        self.head = item_scores_module(self.item_emb)
        self.scale = 1.0 / math.sqrt(h)
        nn.init.normal_(self.item_emb.weight, std=d**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.gap_emb: nn.Embedding | None = None
        if cfg.time_inputs:  # created last: without time inputs the initial weights are unchanged
            self.gap_emb = nn.Embedding(GAP_BUCKETS, d, padding_idx=0)
            nn.init.normal_(self.gap_emb.weight, std=d**-0.5)
            with torch.no_grad():
                self.gap_emb.weight[0].zero_()

    def states(self, items: Tensor, gaps: Tensor | None = None) -> Tensor:
        """Right-padded ``(B, L)`` items (and time-gap buckets) -> ``(B, L, H)`` recurrent states; state ``t``
        has read items ``<= t`` only, so the padding after a row's last item never reaches its real states."""
        x = self.item_emb(items)
        if self.gap_emb is not None:
            x = x + self.gap_emb((items > 0).long() if gaps is None else gaps)
        out, _ = self.rnn(self.emb_drop(x))
        return out  # type: ignore[no-any-return]

    def _scores(self, q: Tensor, k: Tensor) -> Tensor:
        """``q`` ``(B, Q, H)`` projected queries, ``k`` ``(B, K, H)`` projected keys -> ``(B, Q, K)`` scores."""
        if self.attention == "dot":
            return torch.matmul(q, k.transpose(1, 2)) * self.scale
        return self.v(torch.tanh(q.unsqueeze(2) + k.unsqueeze(1))).squeeze(-1)

    def _decode(self, h_t: Tensor, context: Tensor) -> Tensor:
        """``[h_t; c_local]`` -> dropout -> ``B`` -> the state scored against the item embeddings."""
        return self.proj(self.out_drop(torch.cat([h_t, context], dim=-1)))  # type: ignore[no-any-return]

    def _prefix_context(self, q: Tensor, k: Tensor, h: Tensor, start: int, stop: int) -> Tensor:
        """Local context of query positions ``start .. stop - 1`` over keys ``<= `` each query: ``(B, stop -
        start, H)``."""
        scores = self._scores(q[:, start:stop], k[:, :stop])
        rows = torch.arange(start, stop, device=h.device)[:, None]
        future = torch.arange(stop, device=h.device)[None, :] > rows
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        return torch.matmul(weights.to(h.dtype), h[:, :stop])

    def forward(self, items: Tensor, gaps: Tensor | None = None) -> Tensor:
        """Right-padded ``(B, L)`` items (and time-gap buckets) -> ``(B, L, D)`` states; position ``t`` sees
        items ``<= t`` only (the attention of ``h_t`` is over ``h_0 .. h_t``)."""
        h = self.states(items, gaps)
        q, k = self.a1(h), self.a2(h)
        length = h.shape[1]
        if self.attention == "dot":
            context = self._prefix_context(q, k, h, 0, length)
        else:
            # the additive scores of all prefixes are a (B, L, L, H) tensor: chunks of query positions, each
            # recomputed in the backward pass, keep memory at ADDITIVE_CHUNK_ELEMENTS per chunk
            chunk = max(1, ADDITIVE_CHUNK_ELEMENTS // max(1, h.shape[0] * length * h.shape[2]))
            parts = []
            for start in range(0, length, chunk):
                stop = min(length, start + chunk)
                if torch.is_grad_enabled() and h.requires_grad:
                    parts.append(
                        checkpoint(self._prefix_context, q, k, h, start, stop, use_reentrant=False)  # type: ignore[arg-type]
                    )
                else:
                    parts.append(self._prefix_context(q, k, h, start, stop))
            context = torch.cat(parts, dim=1)
        return self._decode(h, context)

    def attend_last(self, items: Tensor, gaps: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Right-padded ``(B, L)`` items (at least one per row) -> ``((B, D)`` state after each row's last item,
        ``(B, L)`` attention weights of that item's state over the row, 0 on padding``)``."""
        h = self.states(items, gaps)
        rows = torch.arange(items.shape[0], device=items.device)
        last = ((items > 0).sum(1) - 1).clamp_min(0)
        h_t = h[rows, last]
        scores = self._scores(self.a1(h_t).unsqueeze(1), self.a2(h)).squeeze(1)
        after = torch.arange(items.shape[1], device=items.device)[None, :] > last[:, None]
        weights = torch.softmax(scores.masked_fill(after, float("-inf")), dim=-1)
        context = torch.matmul(weights.unsqueeze(1).to(h.dtype), h).squeeze(1)
        return self._decode(h_t, context), weights

    def last(self, items: Tensor, gaps: Tensor | None = None) -> Tensor:
        """Right-padded ``(B, L)`` items (and time-gap buckets) -> ``(B, D)`` the state that scores each row's
        next item."""
        return self.attend_last(items, gaps)[0]


class NARM(SequentialRecommender):
    """NARM recommender: next-item scores from a recurrent encoder with attention over the last ``max_seq_len``
    items of a history.

    ``uses_history``: unknown users with a history are personalised, and new events change the next
    recommendation without retraining (``recommend(histories=[[...]])``).
    """

    name = "narm"
    config_class = NARMConfig
    citation = CITATION
    uses_history = True
    supports_explain = True
    config: NARMConfig
    net_: NARMNet | None  # type: ignore[assignment]

    def build_net(self, train: Interactions | None) -> NARMNet:
        return NARMNet(self.num_items, self.config)

    @torch.inference_mode()
    def attention_weights(self, histories: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Local attention of the last item's state over each history, one float32 weight per item the model
        reads (the last ``max_seq_len``), in history order; each array sums to 1 (empty histories: empty)."""
        net = self._net()
        assert isinstance(net, NARMNet)
        net.eval()
        out: list[np.ndarray] = [np.zeros(0, dtype=np.float32) for _ in histories]
        rows = [j for j, h in enumerate(histories) if len(h)]
        bs = self.config.eval_batch_size
        for start in range(0, len(rows), bs):
            part = rows[start : start + bs]
            padded = pad_histories([histories[j] for j in part], self.config.max_seq_len, left=False)
            _, weights = net.attend_last(self.tensor(padded))
            w = self.numpy(weights)
            for r, j in enumerate(part):
                out[j] = w[r, : int((padded[r] > 0).sum())]
        return out

    def explain_indices(
        self, history: np.ndarray, items: np.ndarray, *, top: int = 5, method: str | None = None
    ) -> list[list[tuple[int, float]]]:
        """History items ``(index, weight)`` that drove each of ``items``, largest first, repeated items summed:
        by :func:`attnrec.explain.explain` (``method="attention"``: the local attention weights, the same for
        every item; None: the default method of :mod:`attnrec.explain.methods`)."""
        from attnrec.explain.methods import explain_history

        return explain_history(self, history, items, top=top, method=method)


__all__ = ["CITATION", "NARM", "NARMConfig", "NARMNet"]
