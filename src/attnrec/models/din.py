"""DIN: Deep Interest Network.

Guorui Zhou, Xiaoqiang Zhu, Chenru Song, Ying Fan, Han Zhu, Xiao Ma, Yanghui Yan, Junqi Jin, Han Li and Kun Gai.
"Deep Interest Network for Click-Through Rate Prediction." KDD 2018. https://arxiv.org/abs/1706.06978

An item is the concatenation of its id embedding and one embedding per item feature field (mean over the values
of a multi-valued field such as genres; numeric fields by quantile bucket). For a candidate ``c`` and the user's
history items ``h_1..h_L`` (their positive events, most recent ``max_seq_len``, the candidate's own occurrences
left out), the local activation unit gives each history item a weight

    a_j = MLP([e_hj, e_c, e_hj - e_c, e_hj * e_c])     (unnormalised, as in the paper; ``attention_softmax``)

the user's interest in ``c`` is ``sum_j a_j e_hj``, and an MLP with Dice (or PReLU) activations maps
``[user fields, interest, e_c]`` to the click logit. Trained with binary cross-entropy on labelled impressions
(task ``ctr``); a plain log is turned into impressions with sampled negatives. Deviations and measurements:
``docs/models/din.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from attnrec.base import pair_indices
from attnrec.data.features import FeatureTable
from attnrec.data.interactions import Interactions
from attnrec.models._ctr import (
    ClickConfig,
    FeatureTablesState,
    FieldBag,
    PriorHistories,
    categorical_fields,
    ctr_validation,
    encode_features,
    impression_batches,
    padded,
    pair_histories,
)
from attnrec.nn.activations import Dice, PReLU
from attnrec.training.neural import NeuralRecommender
from attnrec.training.search_space import Choice, FloatRange, SearchSpace
from attnrec.training.trainer import BatchFn, LossFn, TrainerConfig, ValidateFn

CITATION = (
    "Zhou, Zhu, Song, Fan, Zhu, Ma, Yan, Jin, Li & Gai. Deep Interest Network for Click-Through Rate Prediction. "
    "KDD 2018."
)

CHUNK_ELEMENTS = 1 << 23
"""Most ``(user, candidate, history item, hidden)`` elements of one activation-unit chunk at inference."""


class DINConfig(ClickConfig):
    """Hyperparameters of DIN (training fields: :class:`~attnrec.models._ctr.ClickConfig`)."""

    embed_dim: int = Field(16, ge=1, description="Width of each embedding (item id, every feature field).")
    max_seq_len: int | None = Field(
        None, ge=1, description="Most recent positive events a user is represented by (None: data rule)."
    )
    attention_hidden: tuple[int, ...] = Field(
        (80, 40), description="Hidden widths of the activation unit (the authors' code: 80, 40)."
    )
    attention_softmax: bool = Field(
        False, description="Normalise the activation weights with a softmax (the paper keeps them unnormalised)."
    )
    hidden: tuple[int, ...] = Field((200, 80), description="Hidden widths of the output MLP (the paper's 200, 80).")
    activation: Literal["dice", "prelu"] = Field("dice", description="Activation of the output MLP (Dice or PReLU).")
    user_id: bool = Field(False, description="Also embed the user id (the paper uses user features only).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the output MLP's hidden layers.")
    eval_batch_size: int = Field(256, ge=1, description="Users (ranking) or impressions / 16 (pairs) at once.")

    search_space: ClassVar[SearchSpace] = {
        "lr": FloatRange(3e-4, 3e-3, log=True),
        "embed_dim": Choice((8, 16, 32)),
        "weight_decay": FloatRange(1e-6, 1e-2, log=True),
    }
    """What `attnrec tune` searches."""


class DINNet(nn.Module):
    """Embeddings, the activation unit and the output MLP; index 0 is padding / unknown."""

    def __init__(
        self, num_users: int, num_items: int, items: FeatureTable | None, users: FeatureTable | None, cfg: DINConfig
    ) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.softmax = cfg.attention_softmax
        self.item_id = nn.Embedding(num_items + 1, d, padding_idx=0)
        nn.init.normal_(self.item_id.weight, 0.0, 0.05)
        with torch.no_grad():
            self.item_id.weight[0].zero_()
        item_fields = categorical_fields(items, buckets=True)
        user_fields = categorical_fields(users, buckets=True)
        self.item_fields = FieldBag(items, item_fields, d) if items is not None and item_fields else None
        self.user_fields = FieldBag(users, user_fields, d) if users is not None and user_fields else None
        self.user_id = nn.Embedding(num_users + 1, d, padding_idx=0) if cfg.user_id else None
        width = d * (1 + len(item_fields if self.item_fields is not None else []))
        user_width = d * ((len(user_fields) if self.user_fields is not None else 0) + (1 if cfg.user_id else 0))
        self.item_width = width
        # activation unit: first layer on [h, c, h - c, h * c] computed as (W1 + W3) h + (W2 - W3) c + W4 (h * c)
        sizes = [4 * width, *cfg.attention_hidden]
        self.att_in = nn.Linear(4 * width, sizes[1] if len(sizes) > 1 else 1)
        self.att_rest = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[1:], [*sizes[2:], 1], strict=True))
        layers: list[nn.Module] = []
        prev = user_width + 2 * width
        for h in cfg.hidden:
            layers += [nn.Linear(prev, h), Dice(h) if cfg.activation == "dice" else PReLU(h)]
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            prev = h
        layers.append(nn.Linear(prev, 1))
        self.mlp = nn.Sequential(*layers)

    def embed_items(self, idx: Tensor) -> Tensor:
        """``idx`` ``(...)`` -> ``(..., item_width)``: id embedding and field embeddings side by side."""
        parts = [self.item_id(idx)]
        if self.item_fields is not None:
            parts.append(self.item_fields(idx).flatten(-2))
        return torch.cat(parts, -1)

    def embed_many(self, *indices: Tensor) -> tuple[Tensor, ...]:
        """:meth:`embed_items` of each tensor; with more indices than catalogue rows (a training batch), the item
        table is embedded once and gathered from: the same vectors, the field-bag work per row, not per slot."""
        rows = self.item_id.num_embeddings
        if self.item_fields is None or sum(i.numel() for i in indices) <= rows:
            return tuple(map(self.embed_items, indices))
        table = self.embed_items(torch.arange(rows, device=indices[0].device))
        return tuple(F.embedding(i, table) for i in indices)

    def embed_users(self, user: Tensor) -> Tensor:
        """``user`` ``(B,)`` -> ``(B, user_width)`` (width 0 without user fields and ids)."""
        parts = []
        if self.user_fields is not None:
            parts.append(self.user_fields(user).flatten(-2))
        if self.user_id is not None:
            parts.append(self.user_id(user))
        if not parts:
            return torch.zeros(user.shape[0], 0, device=user.device, dtype=self.item_id.weight.dtype)
        return torch.cat(parts, -1)

    def activation(self, h: Tensor, c: Tensor) -> Tensor:
        """Activation-unit logits: ``h`` ``(B, L, W)`` history, ``c`` ``(B, T, W)`` candidates -> ``(B, T, L)``. The
        first layer on ``[h, c, h - c, h * c]`` is ``(W1 + W3) h + (W2 - W3) c + W4 (h * c) + b``, the last term one
        batched matmul ``h (W4 * c)^T`` (no ``(B, T, L, W)`` tensor), kept in the matmul's ``(B, L, T, K)`` layout."""
        w = self.item_width
        weight = self.att_in.weight  # (K, 4W) over [h, c, h - c, h * c]
        w_h = weight[:, :w] + weight[:, 2 * w : 3 * w]
        w_c = weight[:, w : 2 * w] - weight[:, 2 * w : 3 * w]
        w_p = weight[:, 3 * w :]
        b, t, _ = c.shape
        k = weight.shape[0]
        wc = (c.unsqueeze(2) * w_p).reshape(b, t * k, w)  # (B, T*K, W)
        z = torch.bmm(h, wc.transpose(1, 2)).view(b, h.shape[1], t, k)  # (B, L, T, K)
        z = z + F.linear(h, w_h).unsqueeze(2) + F.linear(c, w_c, self.att_in.bias).unsqueeze(1)
        for layer in self.att_rest:
            z = layer(torch.sigmoid(z))
        return z.squeeze(-1).transpose(1, 2)

    def forward(self, user: Tensor, history: Tensor, candidates: Tensor) -> tuple[Tensor, Tensor]:
        """``user`` ``(B,)``, ``history`` ``(B, L)`` (0 = padding), ``candidates`` ``(B, T)`` -> ``(logits (B, T),
        weights (B, T, L))``; a candidate's own occurrences in the history get weight 0."""
        h, c = self.embed_many(history, candidates)
        keep = (history > 0).unsqueeze(1) & (history.unsqueeze(1) != candidates.unsqueeze(2))  # (B, T, L)
        logits = self.activation(h, c).float()
        if self.softmax:
            weights = torch.softmax(logits.masked_fill(~keep, float("-inf")), -1).nan_to_num(0.0)
        else:
            weights = logits.masked_fill(~keep, 0.0)
        interest = torch.matmul(weights.to(h.dtype), h)  # (B, T, W)
        u = self.embed_users(user).unsqueeze(1).expand(-1, candidates.shape[1], -1)
        x = torch.cat([u, interest, c], -1)
        return self.mlp(x).squeeze(-1), weights


class DIN(FeatureTablesState, NeuralRecommender):
    """DIN click model: target attention over the user's positive history, conditioned on the candidate.

    Task ``ctr`` (trained on labelled impressions; probabilities), ``uses_history`` (an anonymous history is
    personalised). Ranks the whole catalogue too (:meth:`score_indices`, chunked). Explanations: method
    ``"occlusion-search"`` (the default), the history items whose joint removal lowers the candidate's click
    probability most, each shortened history scored against the explained items alone
    (:meth:`score_candidates`); :meth:`target_attention` (method ``"target-attention"``) gives the activation
    weights, which on real data say little about the prediction (``docs/models/din.md``).
    """

    name = "din"
    config_class = DINConfig
    citation = CITATION
    task = "ctr"
    predicts_probabilities = True
    uses_history = True
    supports_explain = True
    explain_method = "occlusion-search"
    validation_metric = "auc"
    config: DINConfig
    net_: DINNet | None  # type: ignore[assignment]

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.item_table_: FeatureTable | None = None
        self.user_table_: FeatureTable | None = None

    # ------------------------------------------------------------------ data
    def data_rules(self, train: Interactions, config: Any) -> dict[str, tuple[Any, str]]:
        rules: dict[str, tuple[Any, str]] = {}
        if config.max_seq_len is None:
            lengths = np.diff(train.positives().sequence_offsets())[1:]
            lengths = lengths[lengths > 0]
            p90 = int(np.percentile(lengths, 90)) if len(lengths) else 1
            value = int(min(100, max(10, p90)))
            rules["max_seq_len"] = (value, f"90th percentile of users' positive events ({p90}), within [10, 100]")
        return rules

    def build_net(self, train: Interactions | None) -> DINNet:
        if train is not None:
            self.item_table_, self.user_table_ = encode_features(self, train)
        return DINNet(self.num_users, self.num_items, self.item_table_, self.user_table_, self.config)

    def trainer_config(self, device: torch.device) -> TrainerConfig:
        mode: Literal["max", "min"] = "min" if self.config.valid_metric == "logloss" else "max"
        return dataclasses.replace(super().trainer_config(device), metric=self.config.valid_metric, mode=mode)

    def training_info(self, train: Interactions) -> dict[str, Any]:
        return {
            "metric": self.config.valid_metric,
            "labels": "given" if train.label is not None else "sampled per epoch",
        }

    # ------------------------------------------------------------------ training
    def training_batches(self, train: Interactions) -> tuple[BatchFn, int]:
        cfg = self.config
        assert cfg.max_seq_len is not None
        before = PriorHistories(train, cfg.max_seq_len)

        def make(users: np.ndarray, items: np.ndarray, labels: np.ndarray, keys: np.ndarray) -> dict[str, Tensor]:
            return {
                "user": torch.from_numpy(users),
                "history": torch.from_numpy(before(users, keys)),
                "item": torch.from_numpy(np.ascontiguousarray(items[:, None])),
                "label": torch.from_numpy(labels),
            }

        return impression_batches(train, cfg.num_negatives, cfg.batch_size, make)

    def training_loss(self, net: nn.Module, train: Interactions) -> LossFn:
        def loss_fn(batch: dict[str, Tensor], gen: torch.Generator) -> tuple[Tensor, int]:
            logits, _ = net(batch["user"], batch["history"], batch["item"])
            loss = F.binary_cross_entropy_with_logits(logits[:, 0].float(), batch["label"])
            return loss, int(batch["label"].shape[0])

        return loss_fn  # type: ignore[return-value]

    def validation(self, net: nn.Module, train: Interactions, valid: Interactions | None) -> ValidateFn | None:
        return ctr_validation(self, train, valid, negatives=self.config.num_negatives, seed=0)

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def _forward(self, user: np.ndarray, history: np.ndarray, candidates: np.ndarray) -> tuple[Tensor, Tensor]:
        """Probabilities ``(B, T)`` and weights ``(B, T, L)``, the candidates in chunks of bounded memory."""
        net = self._net()
        assert isinstance(net, DINNet)
        net.eval()
        u, h, c = self.tensor(user), self.tensor(history), self.tensor(candidates)
        per_candidate = max(1, h.shape[0] * h.shape[1] * max(self.config.attention_hidden or (1,)))
        chunk = max(1, CHUNK_ELEMENTS // per_candidate)
        parts = [net(u, h, c[:, s : s + chunk]) for s in range(0, c.shape[1], chunk)]
        return torch.sigmoid(torch.cat([p[0] for p in parts], 1)), torch.cat([p[1] for p in parts], 1)

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = self._score_rows(user_idx, histories, np.arange(self.num_items + 1, dtype=np.int64), 16)
        out[:, 0] = -np.inf
        return out.astype(np.float32)

    def score_candidates(self, user_idx: np.ndarray, histories: Sequence[np.ndarray], items: np.ndarray) -> np.ndarray:
        """Probabilities of the same candidate ``items`` after each history, each candidate scored against the
        history alone (no catalogue row): what the occlusion explanations score, one shortened history per row."""
        return self._score_rows(user_idx, histories, np.asarray(items, dtype=np.int64), 1)

    def _score_rows(
        self, user_idx: np.ndarray, histories: Sequence[np.ndarray], items: np.ndarray, per_batch: int
    ) -> np.ndarray:
        """``(len(histories), len(items))`` float64 probabilities, ``eval_batch_size // per_batch`` histories at a
        time, in order of history length (a batch is padded to its longest history, so similar lengths waste
        little of the activation unit's work)."""
        assert self.config.max_seq_len is not None
        out = np.empty((len(histories), len(items)), dtype=np.float64)
        if len(histories) == 0 or len(items) == 0:
            return out
        users = np.asarray(user_idx, dtype=np.int64)
        lengths = np.asarray([min(len(h), self.config.max_seq_len) for h in histories])
        order = np.argsort(lengths, kind="stable")
        bs = max(1, self.config.eval_batch_size // per_batch)
        for start in range(0, len(order), bs):
            rows = order[start : start + bs]
            hist = padded([histories[r] for r in rows.tolist()], self.config.max_seq_len)
            probs, _ = self._forward(users[rows], hist, np.tile(items, (len(rows), 1)))
            out[rows] = self.numpy(probs)
        return out

    def score_pairs(
        self,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        *,
        history: Interactions | None = None,
        batch_size: int = 256,
    ) -> np.ndarray:
        """Click probabilities of (user, item) pairs, each pair scored alone (no catalogue row). Users without a
        history are scored from the candidate (and user features) with an empty interest; item 0 gives NaN."""
        self._check_fitted()
        assert self.config.max_seq_len is not None
        users, items = pair_indices(user_idx, item_idx)
        out = np.full(len(users), np.nan, dtype=np.float64)
        if len(users) == 0:
            return out
        hists, inverse = pair_histories(self, users, history, self.config.max_seq_len)
        lengths = (hists > 0).sum(1)
        step = max(1, self.config.eval_batch_size * 16)
        order = np.argsort(lengths[inverse], kind="stable")  # similar lengths together: little padding
        for start in range(0, len(order), step):
            rows = order[start : start + step]
            width = max(1, int(lengths[inverse[rows]].max()))
            probs, _ = self._forward(users[rows], hists[inverse[rows], :width], items[rows][:, None])
            out[rows] = self.numpy(probs)[:, 0]
        out[items == 0] = np.nan
        return out

    def target_attention(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``(len(items), n)`` activation weights of each item over the ``n`` history items DIN reads (the last
        ``max_seq_len``, oldest first); 0 for the item's own occurrences. The paper's weights are unnormalised and
        may be negative: this returns their magnitude, each history item's share in the pooled interest
        ``sum_j a_j e_j`` (with ``attention_softmax`` they are the softmax weights themselves)."""
        assert self.config.max_seq_len is not None
        history = np.asarray(history, dtype=np.int64)[-self.config.max_seq_len :]
        items = np.asarray(items, dtype=np.int64)
        if len(history) == 0 or len(items) == 0:
            return np.zeros((len(items), len(history)), dtype=np.float32)
        _, weights = self._forward(np.zeros(1, dtype=np.int64), history[None, :], items[None, :])
        return np.abs(self.numpy(weights[0]))


__all__ = ["CITATION", "DIN", "DINConfig", "DINNet", "Dice", "PReLU"]
