"""The shared part of every next-item model (SASRec, BERT4Rec, NARM): config fields, training windows, losses,
inference over histories on the model's device.

A sequential model supplies a network with this interface (:class:`SequentialNet`):

* ``forward(items)``: right-padded ``(B, L)`` item indices (0 = padding) -> ``(B, L, D)`` hidden states, the
  state at position ``t`` predicting the item at ``t + 1`` (what training uses);
* ``last(items)``: right-padded ``(B, L)`` histories -> ``(B, D)`` the state that scores the next item;
* ``item_emb``: the ``nn.Embedding`` of items (row 0 = padding) and ``head``: an ``nn.Linear`` sharing its
  weight (:func:`~attnrec.training.neural.item_scores_module`) that turns states into item scores.

With ``time_inputs`` (models whose network takes a ``gaps`` argument: SASRec, NARM), ``forward(items, gaps)`` and
``last(items, gaps)`` also receive, per position, the bucket of the time since the previous event
(:func:`~attnrec.training.sequences.gap_buckets`), and the network adds an embedding of it to the item's.

Everything else (windows, batching, the loss, validation, scoring, the device) is here, once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Protocol, Self

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError
from attnrec.models._data_rules import (  # noqa: F401  (re-exported: models.sequential.* in docs and tests)
    DENSE_DROPOUT,
    DENSE_WEIGHT_DECAY,
    MIN_RULE_BATCH,
    MIN_STEPS_PER_EPOCH,
    SPARSE_DROPOUT,
    SPARSE_EVENTS_PER_ITEM,
    SPARSE_WEIGHT_DECAY,
    small_data_batch_size,
    sparse_dropout,
    sparse_weight_decay,
)
from attnrec.training.losses import ItemLoss, make_loss
from attnrec.training.neural import NeuralConfig, NeuralRecommender
from attnrec.training.options import TrainingOptions
from attnrec.training.sequences import (
    WindowBatches,
    check_next_item_pairs,
    gap_buckets,
    next_item_loss,
    pad_histories,
    training_windows,
    window_batches,
)
from attnrec.training.trainer import BatchFn, LossFn


class SequentialNet(Protocol):
    item_emb: nn.Embedding
    head: nn.Linear

    def __call__(self, items: Tensor, gaps: Tensor | None = None) -> Tensor: ...

    def last(self, items: Tensor, gaps: Tensor | None = None) -> Tensor: ...


class SequentialConfig(NeuralConfig):
    """Hyperparameters every next-item model shares (besides :class:`~attnrec.training.neural.NeuralConfig`)."""

    patience: int = Field(
        2,
        ge=0,
        description="Stop after this many validations (every eval_every epochs) without a better validation "
        "NDCG@10; the best epoch's weights are kept (0: never stop early).",
    )
    embed_dim: int = Field(64, ge=4, description="Width of the item embeddings and of the hidden states.")
    max_seq_len: int = Field(200, ge=1, description="Most recent items the model reads (training windows too).")
    dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Dropout on embeddings and hidden states (None: a rule from the data, "
        "models.sequential.sparse_dropout: 0.5 when the training events per item are few, else 0.2).",
    )
    loss: Literal["ce", "sampled", "bce", "gbce"] = Field(
        "ce", description="ce: full softmax; sampled: sampled softmax; bce: one negative; gbce: gSASRec's gBCE."
    )
    num_negatives: int = Field(256, ge=1, description="Negatives per batch for 'sampled' and 'gbce'.")
    negative_sampling: Literal["uniform", "popularity"] = Field(
        "uniform", description="Negative distribution of 'sampled' (popularity uses the logQ correction)."
    )
    gbce_t: float = Field(0.75, ge=0, le=1, description="gSASRec calibration t (0: plain BCE, 1: full).")
    ce_chunk_size: int = Field(512, ge=1, description="Rows per block of the fused full cross-entropy (CPU).")
    ce_fused: bool | None = Field(
        None,
        description="Loss 'ce': the fused chunked kernel (fast on CPUs) or plain autograd over all logits "
        "(GPUs, per-sample-gradient tools); None: fused on the CPU only. Same value either way.",
    )
    exclude_window_items: bool | None = Field(
        None,
        description="Losses 'ce' and 'sampled': the other items of the same training window (the user's own "
        "past and future items) are not negatives of a target (None: on with 'ce' and 'sampled').",
    )
    sliding_window_step: int | None = Field(
        None,
        ge=0,
        description="Extra training windows every this many items for histories longer than "
        "max_seq_len + 1 (None: max_seq_len, non-overlapping windows; 0: only the most recent window).",
    )
    batch_size: int | None = Field(  # type: ignore[assignment]
        None,
        ge=1,
        description="Training windows per step (None: a rule from the data, models.sequential.small_data_batch_size: "
        "the model's base batch, halved down to 16 while an epoch would have fewer than 64 steps; models with "
        "a fixed default do not use it).",
    )
    base_batch_size: ClassVar[int] = 64
    """The batch ``batch_size=None`` starts from (each model's own; the rule only ever makes it smaller)."""
    batch_tokens: int | None = Field(
        None,
        ge=1,
        description="Target tokens per step instead of batch_size windows (None: batch_size windows).",
    )
    length_bucketing: bool = Field(
        True, description="Batch windows of similar length (fewer padded positions; batch order shuffled)."
    )
    compile: bool = Field(False, description="torch.compile the network for training.")
    time_inputs: bool = Field(
        False,
        description="Add an embedding of the time since the previous event (log-scale buckets, "
        "training.sequences.gap_buckets) to each history item; needs timestamps in the log. Histories given "
        "without times (explicit anonymous histories, explanations) read every gap as unknown.",
    )


def resolved_batch_size(config: SequentialConfig, num_windows: int) -> int:
    """``batch_size`` with None resolved by :func:`small_data_batch_size`."""
    if config.batch_size is not None:
        return config.batch_size
    return small_data_batch_size(num_windows, type(config).base_batch_size)[0]


def resolved_sliding_window_step(config: SequentialConfig) -> int:
    """``sliding_window_step`` with None resolved (``max_seq_len``)."""
    return config.max_seq_len if config.sliding_window_step is None else config.sliding_window_step


WINDOW_EXCLUDING_LOSSES = ("ce", "sampled")
"""The losses that can leave a window's own items out of a target's negatives."""


def resolved_exclude_window_items(config: SequentialConfig) -> bool:
    """``exclude_window_items`` with None resolved (on with the full cross-entropy)."""
    if config.exclude_window_items is None:
        return config.loss in WINDOW_EXCLUDING_LOSSES
    return config.exclude_window_items


def sequence_loss(config: SequentialConfig, num_items: int, train: Interactions) -> ItemLoss:
    """The item loss a config asks for."""
    return make_loss(
        config.loss,
        num_items,
        num_negatives=config.num_negatives,
        negative_sampling=config.negative_sampling,
        item_counts=train.item_counts(),
        gbce_t=config.gbce_t,
        chunk_size=config.ce_chunk_size,
        fused=config.ce_fused,
    )


def sequence_batches(
    config: SequentialConfig, inputs: Tensor, targets: Tensor, lengths: Tensor, gaps: Tensor | None = None
) -> WindowBatches:
    """The training batches of ``config`` (``batch_size`` windows or ``batch_tokens`` targets per step), with the
    time-gap windows ``gaps`` as a third tensor when given; also what the speed benchmark times."""
    return window_batches(
        inputs,
        targets,
        lengths,
        batch_size=resolved_batch_size(config, len(inputs)),
        batch_tokens=config.batch_tokens,
        length_bucketing=config.length_bucketing,
        extra=gaps,
    )


class SequentialRecommender(NeuralRecommender):
    """Base of next-item models: scores of the next item from the last ``max_seq_len`` items of a history.

    ``uses_history``: unknown users with a history are personalised, and new events change the next
    recommendation without retraining (``recommend(histories=[[...]])``).
    """

    uses_history = True
    config: SequentialConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        c = self.config
        self.uses_time = c.time_inputs
        if c.exclude_window_items and c.loss not in WINDOW_EXCLUDING_LOSSES:
            raise ConfigError(
                f"the 'exclude_window_items' parameter of {type(c).__name__} needs loss 'ce' or 'sampled'; "
                f"got loss={c.loss!r}"
            )

    # ------------------------------------------------------------------ training
    def fit(
        self, train: Interactions, valid: Interactions | None = None, *, options: TrainingOptions | None = None
    ) -> Self:
        """Fit on ``train``; raises :class:`~attnrec.errors.DataError` before touching any state when no user has
        the 2 training events one next-item pair needs."""
        check_next_item_pairs(train, self.name)
        if self.config.time_inputs and train.timestamp is None:
            raise ConfigError(
                f"the 'time_inputs' parameter of {type(self.config).__name__} needs event timestamps; the training "
                "log has none (use a format with a time column, or time_inputs=false)"
            )
        return super().fit(train, valid, options=options)

    def windows(self, train: Interactions) -> tuple[Tensor, Tensor, Tensor]:
        """``(inputs, targets, lengths)``: right-padded next-item training windows of every user."""
        c = self.config
        inputs, targets = training_windows(train.sequences()[1:], c.max_seq_len, resolved_sliding_window_step(c))
        x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
        return x, y, (x > 0).sum(1)

    def gap_windows(self, train: Interactions) -> Tensor:
        """``(R, max_len)`` time-gap buckets aligned with :meth:`windows`' inputs (time inputs only)."""
        c = self.config
        assert train.timestamp is not None
        off = train.sequence_offsets()
        gaps = [gap_buckets(train.timestamp[off[u] : off[u + 1]]) for u in range(1, len(off) - 1)]
        inputs, _ = training_windows(gaps, c.max_seq_len, resolved_sliding_window_step(c))
        return torch.from_numpy(inputs)

    def training_batches(self, train: Interactions) -> tuple[BatchFn, int]:
        c = self.config
        inputs, targets, lengths = self.windows(train)
        gaps = self.gap_windows(train) if c.time_inputs else None
        self._train_windows = (len(inputs), int(lengths.sum()))
        if c.batch_tokens is None:
            num_batches = math.ceil(len(inputs) / resolved_batch_size(c, len(inputs)))
        else:
            num_batches = max(1, math.ceil(int(lengths.sum()) / c.batch_tokens))
        return sequence_batches(c, inputs, targets, lengths, gaps), num_batches  # type: ignore[return-value]

    def training_module(self, net: nn.Module) -> nn.Module:
        """The module the loss calls (compiled when ``compile`` is set)."""
        return torch.compile(net) if self.config.compile else net  # type: ignore[return-value]

    def training_loss(self, net: nn.Module, train: Interactions) -> LossFn:
        c = self.config
        item_loss = sequence_loss(c, self.num_items, train)
        return next_item_loss(
            self.training_module(net),
            net.head.weight,  # type: ignore[arg-type,union-attr]
            item_loss,
            exclude_window=resolved_exclude_window_items(c),
        )

    def data_rules(self, train: Interactions, config: Any) -> dict[str, tuple[Any, str]]:
        rules: dict[str, tuple[Any, str]] = {}
        if config.dropout is None:
            rules["dropout"] = sparse_dropout(train)
        if config.weight_decay is None:  # a model whose default is the rule (SASRec)
            rules["weight_decay"] = sparse_weight_decay(train)
        if config.batch_size is None:
            inputs, _ = training_windows(
                train.sequences()[1:], config.max_seq_len, resolved_sliding_window_step(config)
            )
            rules["batch_size"] = small_data_batch_size(len(inputs), type(config).base_batch_size)
        return rules

    def training_info(self, train: Interactions) -> dict[str, Any]:
        windows, tokens = getattr(self, "_train_windows", (0, 0))
        return {
            "train_windows": windows,
            "train_tokens": tokens,
            "exclude_window_items": resolved_exclude_window_items(self.config),
        }

    # ------------------------------------------------------------------ inference
    def padded_gaps(self, histories: Sequence[np.ndarray], times: Sequence[np.ndarray | None] | None) -> Tensor:
        """Right-padded time-gap buckets of each history (unknown gaps where ``times`` is missing)."""
        if times is not None and len(times) != len(histories):
            raise ConfigError(f"'times' must have one array per history; got {len(times)} for {len(histories)}")
        rows = []
        for j, h in enumerate(histories):
            t = None if times is None else times[j]
            if t is not None and len(t) != len(h):
                raise ConfigError(f"times[{j}] has {len(t)} values for a history of {len(h)} items")
            rows.append(gap_buckets(t, len(h)))
        return self.tensor(pad_histories(rows, self.config.max_seq_len, left=False))

    def encode_last(self, histories: Sequence[np.ndarray], times: Sequence[np.ndarray | None] | None = None) -> Tensor:
        """``(B, D)`` states that score the next item of each (non-empty) history, on the model's device;
        ``times`` (epoch seconds per event) feed the time inputs when the config has them."""
        x = self.tensor(pad_histories(histories, self.config.max_seq_len, left=False))
        if self.config.time_inputs:
            return self._net().last(x, self.padded_gaps(histories, times))  # type: ignore[operator,no-any-return]
        return self._net().last(x)  # type: ignore[operator,no-any-return]

    @torch.inference_mode()
    def last_hidden(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``(B, D)`` float32 representation after the last item of each history (zeros for empty ones)."""
        net = self._net()
        net.eval()
        out = np.zeros((len(histories), self.config.embed_dim), dtype=np.float32)
        bs = self.config.eval_batch_size
        for start in range(0, len(histories), bs):
            part = histories[start : start + bs]
            rows = [j for j, h in enumerate(part) if len(h)]
            if rows:
                out[start + np.asarray(rows)] = self.numpy(self.encode_last([part[j] for j in rows]))
        return out

    @torch.inference_mode()
    def score_indices(
        self, user_idx: np.ndarray, histories: Sequence[np.ndarray], times: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """Scores of every item after each history (through the network's ``head``); ``user_idx`` is not used;
        ``times``: epoch seconds of each history's events (time inputs; without them gaps are unknown)."""
        net = self._net()
        net.eval()
        out = np.empty((len(histories), self.num_items + 1), dtype=np.float32)
        bs = self.config.eval_batch_size
        for start in range(0, len(histories), bs):
            part = histories[start : start + bs]
            hidden = torch.zeros(len(part), self.config.embed_dim, device=self.device_)
            rows = [j for j, h in enumerate(part) if len(h)]
            if rows:
                ts = None if times is None else [times[start + j] for j in rows]
                state = self.encode_last([part[j] for j in rows], ts)
                hidden[torch.as_tensor(rows, device=self.device_)] = state.float()
            out[start : start + len(part)] = self.numpy(net.head(hidden))  # type: ignore[operator]
        out[:, 0] = -np.inf
        return out
