"""NAIS: neural attentive item similarity.

Xiangnan He, Zhenkui He, Jingkuan Song, Zhenguang Liu, Yu-Gang Jiang and Tat-Seng Chua. "NAIS: Neural Attentive
Item Similarity Model for Recommendation." IEEE TKDE 30(12), 2018. https://arxiv.org/abs/1809.07053

Every item has a history-side embedding ``p`` and a target-side embedding ``q``. A user's score for item ``i``
is a weighted sum of the similarities of ``i`` to the items ``j`` of the user's history (``i`` itself left out):

    y_ui = b_i + sum_j a_ij (p_j . q_i),   a_ij = exp(f(p_j, q_i)) / (sum_j' exp(f(p_j', q_i)))^beta

with the attention network ``f(p, q) = h^T ReLU(W (p * q) + c)`` ("prod", the paper's best) or
``h^T ReLU(W [p; q] + c)`` ("concat"). ``beta < 1`` smooths the softmax so that long histories are not
over-penalised (the role of FISM's ``|R_u|^-alpha``). Trained on sampled negatives with the log loss (``num_negatives``
per positive, uniform over items outside the history), as in the paper. Without attention (``a_ij = 1 / n^beta``)
the model is FISM; ``pretrain_epochs`` trains that form first, the paper's pretraining. Deviations, cost and
measurements: ``docs/models/nais.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from attnrec.data.interactions import Interactions
from attnrec.training.neural import NeuralConfig, NeuralRecommender
from attnrec.training.search_space import Choice, FloatRange, SearchSpace
from attnrec.training.sequences import shape_bucket
from attnrec.training.trainer import BatchFn, LossFn, ValidateFn

CITATION = (
    "He, He, Song, Liu, Jiang & Chua. NAIS: Neural Attentive Item Similarity Model for Recommendation. IEEE TKDE 2018."
)

PAIR_CHUNK_ELEMENTS = 1 << 23
"""Most ``(user, candidate, history item, width)`` elements of one scoring chunk at inference (32 MiB float32)."""


class NAISConfig(NeuralConfig):
    """Hyperparameters of NAIS (training fields: :class:`~attnrec.training.neural.NeuralConfig`)."""

    embed_dim: int = Field(32, ge=2, description="Width of the item embeddings p (history side) and q (target).")
    attention_dim: int = Field(16, ge=1, description="Hidden width of the attention network f.")
    attention: Literal["prod", "concat"] = Field(
        "prod", description="Input of the attention network: p_j * q_i (prod, the paper's) or [p_j; q_i] (concat)."
    )
    beta: float = Field(0.5, gt=0, le=1, description="Smoothing exponent of the softmax denominator (1: softmax).")
    num_negatives: int = Field(4, ge=1, description="Sampled negatives per positive (log loss).")
    max_history: int = Field(200, ge=1, description="Most recent history items a user is represented by.")
    max_targets: int = Field(
        50, ge=1, description="Positives sampled per user and epoch (all of them when the user has fewer)."
    )
    pretrain_epochs: int = Field(
        0, ge=0, description="First epochs trained without attention (FISM, a_ij = n^-beta): the paper's pretraining."
    )
    item_bias: bool = Field(True, description="Learn an item bias b_i.")
    init_std: float = Field(0.01, gt=0, description="Standard deviation of the initial embeddings (the paper's).")
    valid_users: int | None = Field(
        1000, ge=1, description="Validation ranks this many random users (None: all); full ranking costs O(n x items)."
    )
    lr: float = Field(2e-3, gt=0, description="Peak AdamW learning rate.")
    batch_size: int = Field(2048, ge=1, description="(user, candidate) training examples per step.")
    epochs: int = Field(40, ge=1, description="Maximum training epochs.")
    patience: int = Field(
        0,
        ge=0,
        description="Stop after this many validations without improvement (0: train every epoch, keep the best).",
    )
    eval_batch_size: int = Field(64, ge=1, description="Users scored at once at inference.")

    search_space: ClassVar[SearchSpace] = {
        "embed_dim": Choice((16, 32, 64)),
        "beta": FloatRange(0.1, 1.0),
        "lr": FloatRange(3e-4, 1e-2, log=True),
        "weight_decay": FloatRange(1e-6, 1e-1, log=True),
    }
    """What `attnrec tune` searches (docs/training.md, "Hyperparameter search")."""


class NAISNet(nn.Module):
    """Embeddings ``p``, ``q``, item biases and the attention network; index 0 is padding."""

    def __init__(self, num_items: int, cfg: NAISConfig) -> None:
        super().__init__()
        d, k = cfg.embed_dim, cfg.attention_dim
        self.attention, self.beta = cfg.attention, cfg.beta
        self.p = nn.Embedding(num_items + 1, d, padding_idx=0)
        self.q = nn.Embedding(num_items + 1, d, padding_idx=0)
        self.bias = nn.Embedding(num_items + 1, 1, padding_idx=0)
        self.w = nn.Linear(d if cfg.attention == "prod" else 2 * d, k)
        self.h = nn.Linear(k, 1, bias=False)
        with torch.no_grad():
            for emb in (self.p, self.q):
                emb.weight.normal_(0.0, cfg.init_std)
                emb.weight[0].zero_()
            self.bias.weight.zero_()
        self.bias.weight.requires_grad_(cfg.item_bias)

    def logits(self, hp: Tensor, tq: Tensor) -> Tensor:
        """Attention logits ``f``: ``hp`` ``(B, L, D)`` history embeddings, ``tq`` ``(B, T, D)`` target embeddings
        -> ``(B, T, L)``."""
        if self.attention == "prod":
            # W (p_j * q_i) = (W * q_i) p_j: one batched matmul (B, L, D) x (B, D, T * K), no (B, T, L, D) tensor
            b, t, d = tq.shape
            wq = (tq.unsqueeze(2) * self.w.weight).reshape(b, t * self.w.out_features, d)
            z = torch.matmul(hp, wq.transpose(1, 2)).reshape(b, hp.shape[1], t, -1)  # (B, L, T, K)
            z = z.add_(self.w.bias).relu_()  # in place: the largest tensor of the model, written once
            return torch.matmul(z, self.h.weight[0]).transpose(1, 2)
        else:
            d = hp.shape[-1]
            wp = F.linear(hp, self.w.weight[:, :d])  # (B, L, K)
            wq = F.linear(tq, self.w.weight[:, d:], self.w.bias)  # (B, T, K)
            z = wq.unsqueeze(2) + wp.unsqueeze(1)
        return self.h(torch.relu(z)).squeeze(-1)  # type: ignore[no-any-return]

    def forward(self, history: Tensor, targets: Tensor, fism: bool = False) -> tuple[Tensor, Tensor]:
        """``history`` ``(B, L)`` item indices (0 = padding), ``targets`` ``(B, T)`` -> ``(scores (B, T), weights
        (B, T, L))``; a target's own occurrences in the history get weight 0 (leave-one-out of the paper)."""
        hp, tq = self.p(history), self.q(targets)
        keep = (history > 0).unsqueeze(1) & (history.unsqueeze(1) != targets.unsqueeze(2))  # (B, T, L)
        if fism:
            n = keep.sum(-1, keepdim=True).clamp_min(1).to(hp.dtype)
            weights = keep.to(hp.dtype) / n**self.beta
        else:
            f = self.logits(hp, tq).float().masked_fill(~keep, float("-inf"))
            top = f.amax(-1, keepdim=True)
            top = torch.where(torch.isfinite(top), top, torch.zeros_like(top)).clamp(max=60.0).detach()
            e = torch.exp(f - top)  # 0 where masked
            total = e.sum(-1, keepdim=True)
            # exp(f) / (sum exp f)^beta, computed stably: e * exp((1 - beta) top) / total^beta
            weights = e * torch.exp((1.0 - self.beta) * top) / total.clamp_min(1e-30) ** self.beta
        sims = torch.matmul(tq, hp.transpose(1, 2)).float()  # (B, T, L): q_i . p_j
        scores = (weights * sims).sum(-1) + self.bias(targets).squeeze(-1).float()
        return scores, weights


def _padded(histories: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Right-padded ``(len(histories), length)`` int64 array of the most recent ``length`` items of each."""
    out = np.zeros((len(histories), max(1, length)), dtype=np.int64)
    for r, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)[-length:]
        out[r, : len(h)] = h
    return out


class NAIS(NeuralRecommender):
    """NAIS recommender: attention-weighted item similarity over the user's (last ``max_history``) items.

    ``uses_history``: scores follow from the history alone, so unknown users with a history are personalised and
    new events change the scores without retraining. Explanations: :meth:`target_contributions` (method
    ``"contribution"``, the default: the term each history item adds to the recommended item's score) and
    :meth:`target_attention` (method ``"target-attention"``: the attention weights alone).
    """

    name = "nais"
    config_class = NAISConfig
    citation = CITATION
    uses_history = True
    supports_explain = True
    explain_method = "contribution"
    validation_metric = "ndcg@10"
    config: NAISConfig
    net_: NAISNet | None  # type: ignore[assignment]

    def build_net(self, train: Interactions | None) -> NAISNet:
        return NAISNet(self.num_items, self.config)

    # ------------------------------------------------------------------ training
    def training_batches(self, train: Interactions) -> tuple[BatchFn, int]:
        cfg = self.config
        seqs = [s[-cfg.max_history :] for s in train.sequences()]
        users = np.asarray([u for u, s in enumerate(seqs) if len(s)], dtype=np.int64)
        per_user = np.asarray([min(len(seqs[u]), cfg.max_targets) * (1 + cfg.num_negatives) for u in users])
        num_items = train.num_items
        num_batches = max(1, math.ceil(int(per_user.sum()) / cfg.batch_size))

        def batches(epoch: int, gen: torch.Generator) -> Iterator[dict[str, Any]]:
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            order = rng.permutation(len(users))
            # pools of 256 users sorted by length keep the padding small; batches shuffled afterwards
            groups: list[list[int]] = []
            for start in range(0, len(order), 256):
                pool = sorted(order[start : start + 256].tolist(), key=lambda r: len(seqs[users[r]]))
                current: list[int] = []
                for r in pool:
                    if current and (len(current) + 1) * per_user[r] > cfg.batch_size:
                        groups.append(current)
                        current = []
                    current.append(r)
                groups.append(current)
            for g in rng.permutation(len(groups)).tolist():
                yield self._batch([seqs[users[r]] for r in groups[g]], num_items, rng, epoch < cfg.pretrain_epochs)

        return batches, num_batches

    def _batch(self, hists: list[np.ndarray], num_items: int, rng: np.random.Generator, fism: bool) -> dict[str, Any]:
        cfg = self.config
        neg = cfg.num_negatives
        # rows, history length and target width rounded up to a few sizes (zero padding: no loss, no gradient),
        # so that the bf16 kernels see a bounded set of shapes (see training.sequences.shape_bucket)
        rows = shape_bucket(len(hists))
        length = shape_bucket(max(len(h) for h in hists))
        width = shape_bucket(max(min(len(h), cfg.max_targets) for h in hists) * (1 + neg))
        history = np.zeros((rows, length), dtype=np.int64)
        history[: len(hists)] = _padded(hists, length)
        targets = np.zeros((rows, width), dtype=np.int64)
        labels = np.zeros((rows, width), dtype=np.float32)
        for r, h in enumerate(hists):
            pos = rng.choice(h, size=min(len(h), cfg.max_targets), replace=False)
            negs = rng.integers(1, num_items + 1, size=len(pos) * neg)
            for _ in range(3):  # resample negatives that are in the history (a few may stay when it is huge)
                bad = np.isin(negs, h)
                if not bad.any():
                    break
                negs[bad] = rng.integers(1, num_items + 1, size=int(bad.sum()))
            targets[r, : len(pos)] = pos
            labels[r, : len(pos)] = 1.0
            targets[r, len(pos) : len(pos) * (1 + neg)] = negs
        return {
            "history": torch.from_numpy(history),
            "targets": torch.from_numpy(targets),
            "labels": torch.from_numpy(labels),
            "fism": torch.tensor(fism),
        }

    def training_loss(self, net: nn.Module, train: Interactions) -> LossFn:
        def loss_fn(batch: dict[str, Tensor], gen: torch.Generator) -> tuple[Tensor, int]:
            scores, _ = net(batch["history"], batch["targets"], fism=bool(batch["fism"]))
            real = batch["targets"] > 0
            loss = F.binary_cross_entropy_with_logits(scores[real], batch["labels"][real])
            return loss, int(real.sum())

        return loss_fn  # type: ignore[return-value]

    def validation(self, net: nn.Module, train: Interactions, valid: Interactions | None) -> ValidateFn | None:
        limit = self.config.valid_users
        if valid is None or len(valid) == 0 or limit is None or valid.num_users <= limit:
            return super().validation(net, train, valid)
        users = np.unique(valid.user_idx)
        if len(users) > limit:
            users = np.sort(np.random.default_rng(0).choice(users, size=limit, replace=False))
        return super().validation(net, train, valid.subset(np.isin(valid.user_idx, users)))

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def _score_targets(
        self, histories: Sequence[np.ndarray], targets: np.ndarray | None, *, terms: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Scores ``(B, T)`` and weights ``(B, T, L)`` of ``targets`` (``(B, T)``; None: every item) for one batch;
        ``terms``: the terms ``a_ij p_j . q_i`` of the scores instead of the weights ``a_ij``."""
        net = self._net()
        assert isinstance(net, NAISNet)
        net.eval()
        cfg = self.config
        # the history length rounded up to a few sizes (bounded set of kernel shapes, as in training)
        length = min(shape_bucket(max(1, max(min(len(h), cfg.max_history) for h in histories))), cfg.max_history)
        history = self.tensor(_padded(histories, cfg.max_history)[:, :length])
        if targets is None:
            targets_t = torch.arange(self.num_items + 1, device=self.device_).expand(len(histories), -1)
        else:
            targets_t = self.tensor(np.asarray(targets, dtype=np.int64))
        width = cfg.embed_dim + cfg.attention_dim
        chunk = max(1, PAIR_CHUNK_ELEMENTS // max(1, len(histories) * length * width))
        parts = [net(history, targets_t[:, s : s + chunk]) for s in range(0, targets_t.shape[1], chunk)]
        scores, weights = torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)
        if terms:
            weights = weights * torch.matmul(net.q(targets_t), net.p(history).transpose(1, 2)).float()
        return scores, weights

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(histories), self.num_items + 1), dtype=np.float32)
        bs = self.config.eval_batch_size
        for start in range(0, len(histories), bs):
            scores, _ = self._score_targets(histories[start : start + bs], None)
            out[start : start + bs] = self.numpy(scores)
        out[:, 0] = -np.inf
        return out

    def target_attention(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``(len(items), n)`` attention weights ``a_ij`` of each item over the ``n`` history items NAIS reads
        (the last ``max_history``, oldest first); 0 for the item's own occurrences. Rows are the weights of the
        score ``sum_j a_ij p_j . q_i`` (they sum to at most ``n^(1 - beta)``, not to 1)."""
        history = np.asarray(history, dtype=np.int64)[-self.config.max_history :]
        items = np.asarray(items, dtype=np.int64)
        if len(history) == 0 or len(items) == 0:
            return np.zeros((len(items), len(history)), dtype=np.float32)
        _, weights = self._score_targets([history], items[None, :])
        return self.numpy(weights[0])[:, : len(history)]

    def target_contributions(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``(len(items), n)`` term ``a_ij p_j . q_i`` that each of the ``n`` history items NAIS reads (the last
        ``max_history``, oldest first) adds to each item's score: the score is the item bias plus their sum, so
        an item with a negative term holds the recommendation back. 0 for the item's own occurrences."""
        history = np.asarray(history, dtype=np.int64)[-self.config.max_history :]
        items = np.asarray(items, dtype=np.int64)
        if len(history) == 0 or len(items) == 0:
            return np.zeros((len(items), len(history)), dtype=np.float32)
        _, terms = self._score_targets([history], items[None, :], terms=True)
        return self.numpy(terms[0])[:, : len(history)]


__all__ = ["CITATION", "NAIS", "NAISConfig", "NAISNet"]
