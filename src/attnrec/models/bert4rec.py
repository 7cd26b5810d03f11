"""BERT4Rec: sequential recommendation with bidirectional encoder representations from transformers.

Fei Sun, Jun Liu, Jian Wu, Changhua Pei, Xiao Lin, Wenwu Ou and Peng Jiang. "BERT4Rec: Sequential
Recommendation with Bidirectional Encoder Representations from Transformer." CIKM 2019.
https://arxiv.org/abs/1904.06690

A bidirectional transformer reads a user's items, some of them replaced by a ``[MASK]`` token, and predicts the
hidden items from both sides (the cloze task). A share of the training sequences masks only the last item, the
task of inference: there a ``[MASK]`` is appended after the history and its state scores the next item. Trained
with the shared losses (full softmax cross-entropy by default, as Klenitskiy & Vasilev, RecSys 2023, found best).
Deviations from the paper and the measurements: ``docs/models/bert4rec.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError
from attnrec.models._data_rules import BERT4REC_DROPOUT, LARGE_LOG_RECIPE, recipe_field
from attnrec.models._data_rules import small_log_rules as small_log_rules
from attnrec.models.sequential import (
    SequentialConfig,
    SequentialRecommender,
    resolved_exclude_window_items,
    resolved_sliding_window_step,
    sequence_loss,
)
from attnrec.nn.transformer import FastDropout, TransformerEncoder, attention_mask, normal_init_, positions_from_end
from attnrec.training.neural import item_scores_module
from attnrec.training.search_space import Choice, FloatRange, IntRange, SearchSpace
from attnrec.training.sequences import pad_histories, training_windows
from attnrec.training.trainer import BatchFn, LossFn

CITATION = (
    "Sun et al. BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from "
    "Transformer. CIKM 2019."
)


class BERT4RecConfig(SequentialConfig):
    """Hyperparameters of BERT4Rec (the fields shared by every next-item model are described in
    :class:`~attnrec.models.sequential.SequentialConfig` and :class:`~attnrec.training.neural.NeuralConfig`)."""

    embed_dim: int = Field(64, ge=4, description="Width of item/position embeddings and of every block.")
    num_layers: int = Field(2, ge=1, description="Number of bidirectional self-attention blocks.")
    num_heads: int = Field(2, ge=1, description="Attention heads per block (must divide embed_dim).")
    ffn_dim: int | None = Field(None, ge=1, description="Hidden width of the feed-forward layer (None: 4 * embed_dim).")
    dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Dropout on embeddings, sub-layer outputs and the FFN (None: a rule from the data, "
        "models.bert4rec.small_log_rules: 0.5 on small logs, else 0.1).",
    )
    attn_dropout: float | None = recipe_field("attn_dropout", "Dropout on attention probabilities, slow on CPU", lt=1)
    norm_first: bool = Field(True, description="Pre-LN blocks (true) or post-LN blocks (false, as in the paper).")
    init_std: float | None = Field(
        None,
        gt=0,
        description="Initialisation (None: item and position embeddings N(0, 1/embed_dim), layers PyTorch's "
        "defaults; a value: Hugging Face BERT's, every embedding and linear weight N(0, init_std), biases 0).",
    )
    output_transform: bool | None = recipe_field(
        "output_transform", "Linear, GELU, LayerNorm before the item scores (true, as in the paper) or none (false)"
    )
    mask_prob: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Probability that a training position is masked (None: from the mean training-window length "
        "L, 0.6 at L <= 8 falling log-linearly to 0.2 at L >= 160: the paper's Beauty and ML-1M values).",
    )
    last_mask_prob: float | None = recipe_field(
        "last_mask_prob", "Share of training sequences that mask only their last item, the next-item task", le=1
    )
    exclude_window_items: bool | None = Field(
        False,
        description="Losses 'ce' and 'sampled': the other items of the same training sequence are not negatives "
        "of a masked target (off: they are visible in the bidirectional context, and the model must learn to rank "
        "the hidden item above them).",
    )
    lr: float = Field(1e-3, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float | None = Field(  # type: ignore[assignment]
        None,
        ge=0,
        description="AdamW weight decay, not on biases and norms (None: a rule from the data, "
        "models.bert4rec.small_log_rules: on small logs 3.0 with a sparse catalogue and 1.0 with a dense one, "
        "else 0).",
    )
    batch_size: int | None = Field(  # type: ignore[assignment]
        None,
        ge=1,
        description="Training sequences per step (None: a rule from the data, models.bert4rec.small_log_rules: "
        "on small logs the shared models.sequential.small_data_batch_size from 128, else 128).",
    )
    base_batch_size: ClassVar[int] = 128
    epochs: int = Field(200, ge=1, description="Maximum training epochs (early stopping usually ends sooner).")
    eval_every: int = Field(2, ge=1, description="Validate every this many epochs (needs validation data).")
    patience: int = Field(
        10,
        ge=0,
        description="Stop after this many validations without a better validation NDCG@10; the best epoch's "
        "weights are kept (0: never stop early).",
    )
    warmup_steps: int | None = recipe_field("warmup_steps", "Linear learning-rate warm-up steps")  # type: ignore[assignment]
    grad_clip: float | None = recipe_field("grad_clip", "Clip the global gradient norm, 0: off")

    search_space: ClassVar[SearchSpace] = {
        "lr": FloatRange(3e-4, 5e-3, log=True),
        "embed_dim": Choice((32, 64, 128)),
        "num_layers": IntRange(1, 3),
        "dropout": FloatRange(0.05, 0.5),
        "mask_prob": FloatRange(0.1, 0.6),
        "weight_decay": Choice((0.0, 1e-3, 1e-2, 1e-1, 1.0)),
    }
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


def resolved_mask_prob(config: BERT4RecConfig, mean_length: float) -> float:
    """``mask_prob`` with None resolved from the mean training-sequence length (items per window)."""
    if config.mask_prob is not None:
        return config.mask_prob
    t = (math.log(max(mean_length, 1.0)) - math.log(8.0)) / (math.log(160.0) - math.log(8.0))
    return round(0.6 - 0.4 * min(max(t, 0.0), 1.0), 3)


def mask_sequences(
    seq: Tensor, generator: torch.Generator, *, mask_prob: float, last_mask_prob: float, mask_token: int
) -> tuple[Tensor, Tensor]:
    """The cloze task of a batch of right-padded item sequences.

    Args:
        seq: ``(B, L)`` int64 item indices, right-padded with 0, every row with at least one item.
        generator: the CPU generator every draw comes from (the same draws for the same state).
        mask_prob: probability that each real position is masked.
        last_mask_prob: probability that a row masks only its last real item.
        mask_token: the index of ``[MASK]``.

    Returns:
        ``(tokens, labels)``, both ``(B, L)``: ``tokens`` is ``seq`` with masked positions set to ``mask_token``;
        ``labels`` holds the hidden item at masked positions and 0 elsewhere. Every row has at least one masked
        position (a random one when no draw hit).
    """
    b, width = seq.shape
    valid = seq > 0
    n = valid.sum(1)
    rows = torch.arange(b)
    masked = (torch.rand(seq.shape, generator=generator) < mask_prob) & valid
    last_only = torch.rand(b, generator=generator) < last_mask_prob
    pick = (torch.rand(b, generator=generator) * n).long().clamp(max=width - 1)
    none = ~masked.any(1)
    masked[rows[none], pick[none]] = True
    masked[last_only] = False
    masked[rows[last_only], (n - 1).clamp_min(0)[last_only]] = True
    masked &= valid
    return seq.masked_fill(masked, mask_token), seq * masked


class BERT4RecNet(nn.Module):
    """Item + learned position embeddings, bidirectional transformer blocks, the BERT output transform
    (Linear, GELU, LayerNorm) and scores against the item embeddings.

    Token ``num_items + 1`` is ``[MASK]``: its input vector is :attr:`mask_emb`, so the item table (and the
    scores head that shares it) has ``num_items + 1`` rows and ``[MASK]`` is never a candidate.
    """

    def __init__(self, num_items: int, cfg: BERT4RecConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.num_items = num_items
        self.mask_token = num_items + 1
        self.item_emb = nn.Embedding(num_items + 1, d, padding_idx=0)
        self.mask_emb = nn.Parameter(torch.randn(d) * d**-0.5)
        self.pos_emb = nn.Embedding(cfg.max_seq_len + 1, d)  # max_seq_len items + the [MASK] of inference
        self.emb_norm = nn.LayerNorm(d)
        p = BERT4REC_DROPOUT if cfg.dropout is None else cfg.dropout  # None: fit applies the data rule first
        self.drop = FastDropout(p)
        self.encoder = TransformerEncoder(
            d,
            cfg.num_heads,
            cfg.num_layers,
            ffn_dim=cfg.ffn_dim or 4 * d,
            dropout=p,
            attn_dropout=LARGE_LOG_RECIPE["attn_dropout"][1] if cfg.attn_dropout is None else cfg.attn_dropout,
            norm_first=cfg.norm_first,
        )
        transform = LARGE_LOG_RECIPE["output_transform"][1] if cfg.output_transform is None else cfg.output_transform
        self.transform: nn.Module = (
            nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d)) if transform else nn.Identity()
        )
        self.head = item_scores_module(self.item_emb)
        if cfg.init_std is None:
            nn.init.normal_(self.item_emb.weight, std=d**-0.5)
            nn.init.normal_(self.pos_emb.weight, std=d**-0.5)
        else:
            normal_init_(self, cfg.init_std)
            nn.init.normal_(self.mask_emb, std=cfg.init_std)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def embed(self, tokens: Tensor) -> Tensor:
        """``(B, L)`` tokens (0 = padding, ``num_items + 1`` = ``[MASK]``) -> ``(B, L, D)`` input of the first
        block."""
        is_mask = (tokens == self.mask_token)[..., None]
        e = self.item_emb(tokens.clamp(max=self.num_items))
        e = torch.where(is_mask, self.mask_emb.to(e.dtype), e)
        return self.drop(self.emb_norm(e + self.pos_emb(positions_from_end(tokens > 0))))

    def encode(self, x: Tensor, tokens: Tensor) -> Tensor:
        """Embedded ``x`` ``(B, L, D)`` of ``tokens`` -> ``(B, L, D)`` output states (every position sees every
        real token)."""
        keys = (tokens > 0)[:, None, None, :]  # (B, 1, 1, L): key padding only, no causal mask
        return self.transform(self.encoder(x, keys))  # type: ignore[no-any-return]

    def forward(self, tokens: Tensor) -> Tensor:
        """``(B, L)`` tokens, left or right padded -> ``(B, L, D)`` states (at ``[MASK]`` positions they score
        the hidden item)."""
        return self.encode(self.embed(tokens), tokens)

    def last(self, items: Tensor) -> Tensor:
        """Right-padded ``(B, L)`` histories -> ``(B, D)`` state of a ``[MASK]`` appended after each row's last
        item (the state that scores the next item)."""
        n = (items > 0).sum(1)
        rows = torch.arange(items.shape[0], device=items.device)
        tokens = torch.cat([items, torch.zeros_like(items[:, :1])], dim=1)
        tokens[rows, n] = self.mask_token
        return self(tokens)[rows, n]  # type: ignore[no-any-return]

    def scores(self, hidden: Tensor) -> Tensor:
        """``(B, D)`` -> ``(B, V + 1)`` dot products with every item embedding."""
        return self.head(hidden)  # type: ignore[no-any-return]


class BERT4Rec(SequentialRecommender):
    """BERT4Rec recommender: next-item scores at a ``[MASK]`` appended after the last ``max_seq_len`` items of a
    history.

    ``uses_history``: unknown users with a history are personalised, and new events change the next
    recommendation without retraining (``recommend(histories=[[...]])``).
    """

    name = "bert4rec"
    config_class = BERT4RecConfig
    citation = CITATION
    supports_explain = True
    attention_mask_kind = "bidirectional"
    query_position = "mask"
    config: BERT4RecConfig
    net_: BERT4RecNet | None  # type: ignore[assignment]

    def __init__(self, config: BERT4RecConfig | dict[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        c = self.config
        if c.time_inputs:
            raise ConfigError(
                "the 'time_inputs' parameter of BERT4RecConfig is not supported yet (the final mask position has "
                "no event time); got true (sasrec and narm have time inputs)"
            )
        if c.embed_dim % c.num_heads:
            raise ConfigError(
                f"the 'embed_dim' parameter of BERT4RecConfig must be divisible by num_heads={c.num_heads}; "
                f"got {c.embed_dim}"
            )

    def build_net(self, train: Interactions | None) -> BERT4RecNet:
        return BERT4RecNet(self.num_items, self.config)

    def data_rules(self, train: Interactions, config: Any) -> dict[str, tuple[Any, str]]:
        """:func:`small_log_rules` of the training sequences (the shared next-item windows)."""
        inputs, _ = training_windows(train.sequences()[1:], config.max_seq_len, resolved_sliding_window_step(config))
        return small_log_rules(len(inputs), config, len(train) / max(train.num_items, 1))

    # ------------------------------------------------------------------ training: the cloze task
    def training_batches(self, train: Interactions) -> tuple[BatchFn, int]:
        """Batches ``(tokens, labels, sequences)`` of the shared training windows (each window's inputs plus its
        last target: up to ``max_seq_len + 1`` items), masked with the epoch's generator."""
        windows, num_batches = super().training_batches(train)
        count, tokens = self._train_windows
        p = resolved_mask_prob(self.config, (tokens + count) / max(count, 1))
        last_p, mask_token = self.config.last_mask_prob or 0.0, self.num_items + 1  # None: fit applied the rule
        self._mask_prob = p

        def batches(epoch: int, gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
            for x, y in windows(epoch, gen):
                seq = torch.cat([x[:, :1], y], dim=1)
                tok, labels = mask_sequences(seq, gen, mask_prob=p, last_mask_prob=last_p, mask_token=mask_token)
                yield tok, labels, seq

        return batches, num_batches

    def training_loss(self, net: nn.Module, train: Interactions) -> LossFn:
        """The item loss at the masked positions only; with ``exclude_window_items`` the other items of the
        sequence are not negatives of a target."""
        item_loss = sequence_loss(self.config, self.num_items, train)
        module = self.training_module(net)
        weight = net.head.weight  # type: ignore[union-attr]
        exclude_window = resolved_exclude_window_items(self.config)

        def loss_fn(batch: tuple[Tensor, Tensor, Tensor], gen: torch.Generator) -> tuple[Tensor, int]:
            tokens, labels, seq = batch
            hidden = module(tokens)
            m = labels > 0
            exclude = seq[m.nonzero(as_tuple=True)[0]] if exclude_window else None
            return item_loss(hidden[m], labels[m], weight, gen, exclude), int(m.sum())  # type: ignore[arg-type]

        return loss_fn  # type: ignore[return-value]

    def training_info(self, train: Interactions) -> dict[str, Any]:
        return {**super().training_info(train), "mask_prob": getattr(self, "_mask_prob", None)}

    # ------------------------------------------------------------------ explanations
    def _padded(self, histories: Sequence[np.ndarray]) -> Tensor:
        """Left-padded ``(B, L + 1)`` tokens: each history's last ``max_seq_len`` items, then ``[MASK]``."""
        x = self.tensor(pad_histories(histories, self.config.max_seq_len, left=True, extra=1))
        x[:, -1] = self.num_items + 1
        return x

    @torch.inference_mode()
    def attention_maps(self, histories: Sequence[np.ndarray]) -> list[Tensor]:
        """Attention probabilities of every layer for a batch of item-index histories.

        Histories are cut to their last ``max_seq_len`` items, left-padded to the longest one and followed by
        the ``[MASK]`` query, so ``L = len(longest) + 1``. Returns one ``(B, num_heads, L, L)`` tensor per layer:
        row ``-1`` is the ``[MASK]`` (the position that scores the next item); columns ``L - 1 - len(h) ..
        L - 2`` are the items of ``h`` and column ``L - 1`` the mask itself; padding columns are 0.
        """
        net = self._net()
        assert isinstance(net, BERT4RecNet)
        net.eval()
        x = self._padded(histories)
        return [m.float().cpu() for m in net.encoder.attention_maps(net.embed(x), attention_mask(x > 0, causal=False))]

    def embedding_scores(self, histories: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
        """``(emb, scores)``: the ``(B, L, D)`` input embeddings (a leaf that requires grad, columns as in
        :meth:`attention_maps`) and the ``(B, V + 1)`` item scores at the ``[MASK]`` computed from them."""
        net = self._net()
        assert isinstance(net, BERT4RecNet)
        net.eval()
        x = self._padded(histories)
        emb = net.embed(x).detach().requires_grad_(True)
        return emb, net.scores(net.encode(emb, x)[:, -1])
