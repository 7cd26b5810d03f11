"""SASRec: self-attentive sequential recommendation.

Wang-Cheng Kang and Julian McAuley. "Self-Attentive Sequential Recommendation." ICDM 2018.
https://arxiv.org/abs/1808.09781

Trained by default with full softmax cross-entropy over all items except the user's other items of the same
training window, on sliding windows ("SASRec+", Klenitskiy & Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec
really better than SASRec?", RecSys 2023); the original BCE loss, sampled
softmax and gBCE (Petrov & Macdonald, "gSASRec", RecSys 2023) are options. Deviations from the paper and the
speed measurements: ``docs/models/sasrec.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError
from attnrec.models.sequential import (
    DENSE_DROPOUT,
    SequentialConfig,
    SequentialRecommender,
)
from attnrec.nn.transformer import FastDropout, TransformerEncoder, attention_mask, positions_from_start
from attnrec.training.neural import item_scores_module
from attnrec.training.search_space import Choice, FloatRange, IntRange, SearchSpace
from attnrec.training.sequences import GAP_BUCKETS, pad_histories

CITATION = "Kang & McAuley. Self-Attentive Sequential Recommendation. ICDM 2018."


class SASRecConfig(SequentialConfig):
    """Hyperparameters of SASRec (defaults: the fast ML-1M configuration of ``docs/models/sasrec.md``; the
    fields shared by every next-item model are described in :class:`~attnrec.models.sequential.SequentialConfig`
    and :class:`~attnrec.training.neural.NeuralConfig`)."""

    embed_dim: int = Field(128, ge=4, description="Width of item/position embeddings and of every block.")
    num_layers: int = Field(2, ge=1, description="Number of self-attention blocks.")
    num_heads: int = Field(2, ge=1, description="Attention heads per block (must divide embed_dim).")
    ffn_dim: int | None = Field(None, ge=1, description="Hidden width of the feed-forward layer (None: 2 * embed_dim).")
    attn_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on attention probabilities (slow on CPU).")
    norm_first: bool = Field(True, description="Pre-LN blocks (true) or post-LN blocks (false, as in the paper).")
    lr: float = Field(2e-3, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float | None = Field(  # type: ignore[assignment]
        None,
        ge=0,
        description="AdamW weight decay, not on biases and norms (None: a rule from the data, "
        "models.sequential.sparse_weight_decay: 1.0 when the training events per item are few, else 0).",
    )
    epochs: int = Field(30, ge=1, description="Maximum training epochs.")
    eval_every: int = Field(4, ge=1, description="Validate every this many epochs (needs validation data).")
    warmup_steps: int = Field(200, ge=0, description="Linear learning-rate warm-up steps.")
    cosine: bool = Field(True, description="Cosine learning-rate decay over all epochs after warm-up.")
    grad_clip: float | None = Field(1.0, ge=0, description="Clip the global gradient norm (None or 0: off).")

    search_space: ClassVar[SearchSpace] = {
        "lr": FloatRange(3e-4, 1e-2, log=True),
        "embed_dim": Choice((32, 64, 128)),
        "num_layers": IntRange(1, 3),
        "dropout": FloatRange(0.1, 0.6),
        "weight_decay": Choice((0.0, 0.01, 0.1, 0.3, 1.0, 3.0)),
    }
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


class SASRecNet(nn.Module):
    """Item + learned position embeddings, causal transformer blocks, scores against the item embeddings."""

    def __init__(self, num_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        p = DENSE_DROPOUT if cfg.dropout is None else cfg.dropout  # None: SASRec.fit applies the data rule first
        self.item_emb = nn.Embedding(num_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_seq_len, d)
        self.drop = FastDropout(p)
        self.encoder = TransformerEncoder(
            d,
            cfg.num_heads,
            cfg.num_layers,
            ffn_dim=cfg.ffn_dim or 2 * d,
            dropout=p,
            attn_dropout=cfg.attn_dropout,
            norm_first=cfg.norm_first,
        )
        self.head = item_scores_module(self.item_emb)
        self.scale = math.sqrt(d)
        nn.init.normal_(self.item_emb.weight, std=d**-0.5)
        nn.init.normal_(self.pos_emb.weight, std=d**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.gap_emb: nn.Embedding | None = None
        if cfg.time_inputs:  # created last: without time inputs the initial weights stay those of 0.1
            self.gap_emb = nn.Embedding(GAP_BUCKETS, d, padding_idx=0)
            nn.init.normal_(self.gap_emb.weight, std=d**-0.5)
            with torch.no_grad():
                self.gap_emb.weight[0].zero_()

    def embed(self, items: Tensor, gaps: Tensor | None = None) -> Tensor:
        """``(B, L)`` item indices (0 = padding) and optional time-gap buckets -> ``(B, L, D)`` input of the
        first block (gaps are read as unknown when the network has time inputs and none are given)."""
        pos = positions_from_start(items > 0)
        x = self.item_emb(items) * self.scale + self.pos_emb(pos)
        if self.gap_emb is not None:
            x = x + self.gap_emb((items > 0).long() if gaps is None else gaps)
        return self.drop(x)

    def forward(self, items: Tensor, gaps: Tensor | None = None, *, right_padded: bool = True) -> Tensor:
        """``(B, L)`` items (and time-gap buckets) -> ``(B, L, D)`` hidden states; position ``t`` sees items
        ``<= t`` only.

        Right-padded input needs only the causal mask; left-padded input adds the key-padding mask.
        """
        x = self.embed(items, gaps)
        if right_padded:
            return self.encoder(x, causal=True)  # type: ignore[no-any-return]
        return self.encoder(x, attention_mask(items > 0, causal=True))  # type: ignore[no-any-return]

    def last(self, items: Tensor, gaps: Tensor | None = None) -> Tensor:
        """Right-padded ``(B, L)`` items (and time-gap buckets) -> ``(B, D)`` hidden state after each row's last
        item (the one that scores the next item); rows must hold at least one item."""
        query = ((items > 0).sum(1) - 1).clamp_min(0)
        return self.encoder.forward_at(self.embed(items, gaps), query)  # type: ignore[no-any-return]

    def scores(self, hidden: Tensor) -> Tensor:
        """``(B, D)`` -> ``(B, V + 1)`` dot products with every item embedding."""
        return self.head(hidden)  # type: ignore[no-any-return]


class SASRec(SequentialRecommender):
    """SASRec recommender: next-item scores from the last ``max_seq_len`` items of a history.

    ``uses_history``: unknown users with a history are personalised, and new events change the next
    recommendation without retraining (``recommend(histories=[[...]])``).
    """

    name = "sasrec"
    config_class = SASRecConfig
    fit_kind = "epochs"
    citation = CITATION
    uses_history = True
    supports_explain = True
    attention_mask_kind = "causal"
    query_position = "last"
    config: SASRecConfig
    net_: SASRecNet | None  # type: ignore[assignment]

    def __init__(self, config: SASRecConfig | dict[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        c = self.config
        if c.embed_dim % c.num_heads:
            raise ConfigError(
                f"the 'embed_dim' parameter of SASRecConfig must be divisible by num_heads={c.num_heads}; "
                f"got {c.embed_dim}"
            )

    def build_net(self, train: Interactions | None) -> SASRecNet:
        return SASRecNet(self.num_items, self.config)

    def _padded(self, histories: Sequence[np.ndarray], *, left: bool) -> Tensor:
        return self.tensor(pad_histories(histories, self.config.max_seq_len, left=left))

    @torch.inference_mode()
    def attention_maps(self, histories: Sequence[np.ndarray]) -> list[Tensor]:
        """Attention probabilities of every layer for a batch of item-index histories.

        Histories are cut to their last ``max_seq_len`` items and left-padded to the longest one, ``L``. Returns
        one ``(B, num_heads, L, L)`` tensor per layer: row ``i`` holds how query position ``i`` attends to
        the keys; row ``-1`` belongs to the last item (the one whose output scores the next item); columns
        ``L - len(h) .. L - 1`` are the items of ``h[-max_seq_len:]`` and padding columns are 0.
        """
        net = self._net()
        assert isinstance(net, SASRecNet)
        net.eval()
        x = self._padded(histories, left=True)
        mask = attention_mask(x > 0, causal=True)
        return [m.float().cpu() for m in net.encoder.attention_maps(net.embed(x), mask)]
