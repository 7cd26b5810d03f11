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
from collections.abc import Callable, Sequence
from typing import Any, Literal, Self

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data.interactions import Interactions
from attnrec.errors import ConfigError
from attnrec.nn.transformer import FastDropout, TransformerEncoder, attention_mask, positions_from_start
from attnrec.training.losses import ItemLoss, make_loss
from attnrec.training.options import TrainingOptions
from attnrec.training.sequences import WindowBatches, check_next_item_pairs, training_windows, window_batches
from attnrec.training.trainer import Trainer, TrainerConfig, native_bf16

CITATION = "Kang & McAuley. Self-Attentive Sequential Recommendation. ICDM 2018."


class SASRecConfig(ModelConfig):
    """Hyperparameters of SASRec (defaults: the fast ML-1M configuration of ``docs/models/sasrec.md``)."""

    embed_dim: int = Field(128, ge=4, description="Width of item/position embeddings and of every block.")
    num_layers: int = Field(2, ge=1, description="Number of self-attention blocks.")
    num_heads: int = Field(2, ge=1, description="Attention heads per block (must divide embed_dim).")
    ffn_dim: int | None = Field(None, ge=1, description="Hidden width of the feed-forward layer (None: 2 * embed_dim).")
    max_seq_len: int = Field(200, ge=1, description="Most recent items the model reads (training windows too).")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout on embeddings, sub-layer outputs and the FFN.")
    attn_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on attention probabilities (slow on CPU).")
    norm_first: bool = Field(True, description="Pre-LN blocks (true) or post-LN blocks (false, as in the paper).")
    loss: Literal["ce", "sampled", "bce", "gbce"] = Field(
        "ce", description="ce: full softmax (SASRec+); sampled: sampled softmax; bce: original; gbce: gSASRec."
    )
    num_negatives: int = Field(256, ge=1, description="Negatives per batch for 'sampled' and 'gbce'.")
    negative_sampling: Literal["uniform", "popularity"] = Field(
        "uniform", description="Negative distribution of 'sampled' (popularity uses the logQ correction)."
    )
    gbce_t: float = Field(0.75, ge=0, le=1, description="gSASRec calibration t (0: plain BCE, 1: full).")
    ce_chunk_size: int = Field(512, ge=1, description="Rows per block of the fused full cross-entropy.")
    exclude_window_items: bool | None = Field(
        None,
        description="Loss 'ce' only: the other items of the same training window (the user's own past and "
        "future items) are not negatives of a target (None: on with loss 'ce').",
    )
    lr: float = Field(2e-3, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (not on biases and LayerNorms).")
    batch_size: int = Field(64, ge=1, description="Training sequences per step.")
    epochs: int = Field(30, ge=1, description="Maximum training epochs.")
    patience: int = Field(0, ge=0, description="Stop after this many validations without improvement (0: off).")
    eval_every: int = Field(4, ge=1, description="Validate every this many epochs (needs validation data).")
    warmup_steps: int = Field(200, ge=0, description="Linear learning-rate warm-up steps.")
    cosine: bool = Field(True, description="Cosine learning-rate decay over all epochs after warm-up.")
    grad_clip: float | None = Field(1.0, gt=0, description="Clip the global gradient norm (None: off).")
    sliding_window_step: int | None = Field(
        None,
        ge=0,
        description="Extra training windows every this many items for histories longer than "
        "max_seq_len + 1 (None: max_seq_len, non-overlapping windows; 0: only the most recent window).",
    )
    batch_tokens: int | None = Field(
        None,
        ge=1,
        description="Target tokens per step instead of batch_size windows (None: batch_size windows). For "
        "short-session data: many short windows per step and fewer steps, which amortises the fixed cost of a "
        "step; it changes the optimisation (re-tune lr and epochs).",
    )
    length_bucketing: bool = Field(
        True, description="Batch sequences of similar length (fewer padded positions; batch order shuffled)."
    )
    bf16: bool | None = Field(
        None,
        description="bfloat16 autocast for training (None: on when the CPU has native bf16, AVX-512 BF16 "
        "or AMX; inference always runs in float32).",
    )
    compile: bool = Field(False, description="torch.compile the network for training.")
    eval_batch_size: int = Field(512, ge=1, description="Histories scored at once at inference.")


class SASRecNet(nn.Module):
    """Item + learned position embeddings, causal transformer blocks, scores against the item embeddings."""

    def __init__(self, num_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.item_emb = nn.Embedding(num_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_seq_len, d)
        self.drop = FastDropout(cfg.dropout)
        self.encoder = TransformerEncoder(
            d,
            cfg.num_heads,
            cfg.num_layers,
            ffn_dim=cfg.ffn_dim or 2 * d,
            dropout=cfg.dropout,
            attn_dropout=cfg.attn_dropout,
            norm_first=cfg.norm_first,
        )
        self.scale = math.sqrt(d)
        nn.init.normal_(self.item_emb.weight, std=d**-0.5)
        nn.init.normal_(self.pos_emb.weight, std=d**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def embed(self, items: Tensor) -> Tensor:
        """``(B, L)`` item indices (0 = padding) -> ``(B, L, D)`` input of the first block."""
        pos = positions_from_start(items > 0)
        return self.drop(self.item_emb(items) * self.scale + self.pos_emb(pos))

    def forward(self, items: Tensor, *, right_padded: bool = True) -> Tensor:
        """``(B, L)`` items -> ``(B, L, D)`` hidden states; position ``t`` sees items ``<= t`` only.

        Right-padded input needs only the causal mask; left-padded input adds the key-padding mask.
        """
        x = self.embed(items)
        if right_padded:
            return self.encoder(x, causal=True)  # type: ignore[no-any-return]
        return self.encoder(x, attention_mask(items > 0, causal=True))  # type: ignore[no-any-return]

    def last(self, items: Tensor) -> Tensor:
        """Right-padded ``(B, L)`` items -> ``(B, D)`` hidden state after each row's last item (the one that
        scores the next item); rows must hold at least one item."""
        query = ((items > 0).sum(1) - 1).clamp_min(0)
        return self.encoder.forward_at(self.embed(items), query)  # type: ignore[no-any-return]

    def scores(self, hidden: Tensor) -> Tensor:
        """``(B, D)`` -> ``(B, V + 1)`` dot products with every item embedding."""
        return hidden @ self.item_emb.weight.T


def sasrec_batches(config: SASRecConfig, inputs: Tensor, targets: Tensor, lengths: Tensor) -> WindowBatches:
    """The training batches of ``config`` (``batch_size`` windows or ``batch_tokens`` targets per step)."""
    return window_batches(
        inputs,
        targets,
        lengths,
        batch_size=config.batch_size,
        batch_tokens=config.batch_tokens,
        length_bucketing=config.length_bucketing,
    )


def resolved_sliding_window_step(config: SASRecConfig) -> int:
    """``sliding_window_step`` with None resolved (``max_seq_len``)."""
    return config.max_seq_len if config.sliding_window_step is None else config.sliding_window_step


def resolved_exclude_window_items(config: SASRecConfig) -> bool:
    """``exclude_window_items`` with None resolved (on with the full cross-entropy)."""
    return config.loss == "ce" if config.exclude_window_items is None else config.exclude_window_items


def next_item_loss(
    net: nn.Module, item_weight: Tensor, item_loss: ItemLoss, *, exclude_window: bool
) -> Callable[[tuple[Tensor, Tensor], torch.Generator], tuple[Tensor, int]]:
    """The training loss of a batch of right-padded windows ``(inputs, targets)``: ``item_loss`` at every
    non-padding position, and the number of targets. With ``exclude_window``, each target's softmax leaves
    out the other items of its window (the first input and every target)."""

    def loss_fn(batch: tuple[Tensor, Tensor], gen: torch.Generator) -> tuple[Tensor, int]:
        x, y = batch
        hidden = net(x)
        mask = y > 0
        if exclude_window:
            window = torch.cat([x[:, :1], y], dim=1)
            exclude = window[mask.nonzero(as_tuple=True)[0]]
            loss = item_loss(hidden[mask], y[mask], item_weight, gen, exclude)
        else:
            loss = item_loss(hidden[mask], y[mask], item_weight, gen)
        return loss, int(mask.sum())

    return loss_fn


class SASRec(Recommender):
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
    config: SASRecConfig

    def __init__(self, config: SASRecConfig | dict[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        c = self.config
        if c.embed_dim % c.num_heads:
            raise ConfigError(
                f"the 'embed_dim' parameter of SASRecConfig must be divisible by num_heads={c.num_heads}; "
                f"got {c.embed_dim}"
            )
        if c.exclude_window_items and c.loss != "ce":
            raise ConfigError(
                f"the 'exclude_window_items' parameter of SASRecConfig needs loss='ce'; got loss={c.loss!r}"
            )
        self.net_: SASRecNet | None = None
        self.history_: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ training
    def fit(
        self, train: Interactions, valid: Interactions | None = None, *, options: TrainingOptions | None = None
    ) -> Self:
        """Fit on ``train``; raises :class:`~attnrec.errors.DataError` before touching any state when no user has
        the 2 training events one next-item pair needs."""
        check_next_item_pairs(train, self.name)
        return super().fit(train, valid, options=options)

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        c = self.config
        inputs_np, targets_np = training_windows(train.sequences()[1:], c.max_seq_len, resolved_sliding_window_step(c))
        inputs, targets = torch.from_numpy(inputs_np), torch.from_numpy(targets_np)
        lengths = (inputs > 0).sum(1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            net = SASRecNet(self.num_items, c)
        self.net_ = net
        train_net: nn.Module = torch.compile(net) if c.compile else net  # type: ignore[assignment]
        item_loss = make_loss(
            c.loss,
            self.num_items,
            num_negatives=c.num_negatives,
            negative_sampling=c.negative_sampling,
            item_counts=train.item_counts(),
            gbce_t=c.gbce_t,
            chunk_size=c.ce_chunk_size,
        )

        exclude_window = resolved_exclude_window_items(c)
        loss_fn = next_item_loss(train_net, net.item_emb.weight, item_loss, exclude_window=exclude_window)

        validate = None
        if valid is not None and len(valid) > 0:
            from attnrec.evaluation import evaluate_interactions

            def validate() -> dict[str, float]:
                result = evaluate_interactions(self, train, valid, ks=(10,), batch_size=c.eval_batch_size)
                return {k: v for k, v in result.summary.items() if not k.startswith("coverage")}

        bf16 = native_bf16() if c.bf16 is None else c.bf16
        trainer = Trainer(
            TrainerConfig(
                lr=c.lr,
                weight_decay=c.weight_decay,
                epochs=c.epochs,
                patience=c.patience,
                eval_every=c.eval_every,
                warmup_steps=c.warmup_steps,
                cosine=c.cosine,
                grad_clip=c.grad_clip,
                bf16=bf16,
            ),
            options,
        )
        if c.batch_tokens is None:
            num_batches = math.ceil(len(inputs) / c.batch_size)
        else:
            num_batches = max(1, math.ceil(int(lengths.sum()) / c.batch_tokens))
        result = trainer.fit(
            net,
            sasrec_batches(c, inputs, targets, lengths),
            loss_fn,
            num_batches=num_batches,
            validate=validate,
            description="sasrec",
        )
        net.eval()
        self.history_ = result.history
        self.train_info_ = {
            "best_epoch": result.best_epoch,
            "best_metric": result.best_metric,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "train_windows": len(inputs),
            "train_tokens": int(lengths.sum()),
            "bf16": bf16,
            "exclude_window_items": exclude_window,
        }

    # ------------------------------------------------------------------ inference
    def _padded(self, histories: Sequence[np.ndarray], *, left: bool) -> Tensor:
        L = self.config.max_seq_len
        clipped = [np.asarray(h, dtype=np.int64)[-L:] for h in histories]
        width = max(1, max((len(h) for h in clipped), default=1))
        out = np.zeros((len(clipped), width), dtype=np.int64)
        for row, h in enumerate(clipped):
            if len(h):
                if left:
                    out[row, width - len(h) :] = h
                else:
                    out[row, : len(h)] = h
        return torch.from_numpy(out)

    def _net(self) -> SASRecNet:
        self._check_fitted()
        assert self.net_ is not None
        return self.net_

    @torch.inference_mode()
    def last_hidden(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``(B, D)`` representation after the last item of each history (zeros for empty histories)."""
        net = self._net()
        net.eval()
        out = np.zeros((len(histories), self.config.embed_dim), dtype=np.float32)
        bs = self.config.eval_batch_size
        for start in range(0, len(histories), bs):
            part = histories[start : start + bs]
            x = self._padded(part, left=False)
            last = net.last(x)
            last[(x > 0).sum(1) == 0] = 0.0
            out[start : start + len(part)] = last.float().numpy()
        return out

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Dot products of the last hidden state with every item embedding; ``user_idx`` is not used."""
        hidden = torch.from_numpy(self.last_hidden(histories))
        with torch.inference_mode():
            scores = self._net().scores(hidden).numpy().astype(np.float32, copy=False)
        scores[:, 0] = -np.inf
        return scores

    @torch.inference_mode()
    def attention_maps(self, histories: Sequence[np.ndarray]) -> list[Tensor]:
        """Attention probabilities of every layer for a batch of item-index histories.

        Histories are cut to their last ``max_seq_len`` items and left-padded to the longest one, ``L``. Returns
        one ``(B, num_heads, L, L)`` tensor per layer: row ``i`` holds how query position ``i`` attends to
        the keys; row ``-1`` belongs to the last item (the one whose output scores the next item); columns
        ``L - len(h) .. L - 1`` are the items of ``h[-max_seq_len:]`` and padding columns are 0.
        """
        net = self._net()
        net.eval()
        x = self._padded(histories, left=True)
        mask = attention_mask(x > 0, causal=True)
        return [m.float() for m in net.encoder.attention_maps(net.embed(x), mask)]

    def explain_indices(
        self, history: np.ndarray, items: np.ndarray, *, top: int = 5, method: str = "rollout-grad"
    ) -> list[list[tuple[int, float]]]:
        """History items (index, weight) that drove each of ``items``: by default the item-specific
        gradient-weighted attention rollout (``method="rollout-grad"``, different for every item), or the plain
        rollout of the last position (``"rollout"``: what the history emphasises, the same for every item); see
        :mod:`attnrec.explain.attention`."""
        from attnrec.explain.attention import explain_history

        return explain_history(self, history, items, top=top, method=method)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self._net().state_dict().items()}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        assert self.items_ is not None
        net = SASRecNet(len(self.items_), self.config)
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
        net.eval()
        self.net_ = net
        self.history_ = list(meta.get("history", []))
        self.train_info_ = dict(meta.get("train_info", {}))

    def _get_meta(self) -> dict[str, Any]:
        return {"history": self.history_, "train_info": self.train_info_}
