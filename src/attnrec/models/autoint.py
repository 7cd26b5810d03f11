"""AutoInt: automatic feature interaction learning with multi-head self-attention over feature fields.

Weiping Song, Chence Shi, Zhiping Xiao, Zhijian Duan, Yewen Xu, Ming Zhang and Jian Tang. "AutoInt: Automatic
Feature Interaction Learning via Self-Attentive Neural Networks." CIKM 2019. https://arxiv.org/abs/1810.11921

Every field gets one ``embed_dim`` embedding: the user id, the item id, each categorical user / item field (a
multi-valued field such as genres: the mean of its values' embeddings), and each numeric field as ``value x
v_field`` (the value standardised on the feature file; 0 when missing), as in the paper. ``num_layers`` layers
of multi-head self-attention over the fields, each with a residual connection and ReLU (eq. 5-8):

    a_mk = softmax_k(<W_q e_m, W_k e_k>),   e'_m = ReLU(concat_heads(sum_k a_mk W_v e_k) + W_res e_m)

and a logistic output over all fields' final vectors (eq. 9). ``dnn_hidden`` adds a feed-forward network on the
embeddings whose logit is summed: the paper's AutoInt+, the default (``(200, 200)``, chosen on validation AUC;
``dnn_hidden=[]`` is plain AutoInt). A prediction is explained by the fields whose removal lowers it most
(method ``"field-search"``, through :meth:`AutoInt.score_without_fields`, which covers both paths); the
attention between fields (:meth:`AutoInt.field_attention`, ``"field-attention"``) is available and measured
unfaithful. Measurements: ``docs/models/autoint.md``.
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
from attnrec.errors import ConfigError
from attnrec.explain.fields import field_pairs
from attnrec.models._ctr import (
    ClickConfig,
    FeatureTablesState,
    FieldBag,
    categorical_fields,
    ctr_validation,
    encode_features,
    impression_batches,
    value_texts,
)
from attnrec.training.neural import NeuralRecommender
from attnrec.training.search_space import Choice, FloatRange, SearchSpace
from attnrec.training.trainer import BatchFn, LossFn, TrainerConfig, ValidateFn

CITATION = (
    "Song, Shi, Xiao, Duan, Xu, Zhang & Tang. AutoInt: Automatic Feature Interaction Learning via Self-Attentive "
    "Neural Networks. CIKM 2019."
)

PAIR_CHUNK = 1 << 16
"""(user, item) pairs scored at once at inference."""


class AutoIntConfig(ClickConfig):
    """Hyperparameters of AutoInt (training fields: :class:`~attnrec.models._ctr.ClickConfig`)."""

    embed_dim: int = Field(16, ge=1, description="Width of every field embedding (the paper's d = 16).")
    attention_dim: int = Field(32, ge=1, description="Width of each attention head (the paper's d' = 32).")
    num_heads: int = Field(2, ge=1, description="Attention heads per layer (the paper's 2).")
    num_layers: int = Field(3, ge=1, description="Self-attention layers (the paper's 3).")
    id_fields: bool = Field(True, description="Embed the user id and the item id as fields.")
    dnn_hidden: tuple[int, ...] = Field(
        (200, 200), description="Hidden widths of the AutoInt+ DNN (the default; empty: plain AutoInt)."
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the attention layers' outputs.")
    batch_size: int = Field(1024, ge=1, description="Impressions per step (the paper's 1024).")
    eval_batch_size: int = Field(64, ge=1, description="Users scored against the whole catalogue at once.")

    search_space: ClassVar[SearchSpace] = {
        "lr": FloatRange(3e-4, 3e-3, log=True),
        "embed_dim": Choice((8, 16, 32)),
        "num_layers": Choice((1, 2, 3)),
        "weight_decay": FloatRange(1e-6, 1e-2, log=True),
    }
    """What `attnrec tune` searches."""


class AutoIntNet(nn.Module):
    """Field embeddings, interacting layers and the output; ``forward(user, item)`` -> logits, attention maps."""

    def __init__(
        self,
        num_users: int,
        num_items: int,
        items: FeatureTable | None,
        users: FeatureTable | None,
        cfg: AutoIntConfig,
    ) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.names: list[str] = []
        self.user_id = self.item_id = None
        if cfg.id_fields:
            self.user_id = nn.Embedding(num_users + 1, d, padding_idx=0)
            self.item_id = nn.Embedding(num_items + 1, d, padding_idx=0)
            for emb in (self.user_id, self.item_id):
                nn.init.normal_(emb.weight, 0.0, 0.05)
            self.names += ["user.id", "item.id"]
        ufields, ifields = categorical_fields(users, buckets=False), categorical_fields(items, buckets=False)
        self.user_fields = FieldBag(users, ufields, d) if users is not None and ufields else None
        self.item_fields = FieldBag(items, ifields, d) if items is not None and ifields else None
        self.names += [f"user.{n}" for n, _ in (ufields if self.user_fields is not None else [])]
        self.names += [f"item.{n}" for n, _ in (ifields if self.item_fields is not None else [])]
        self.user_numeric = self._numeric(users, "user", d)
        self.item_numeric = self._numeric(items, "item", d)
        if not self.names:
            raise ConfigError("AutoInt needs at least one field: set id_fields=true or give user or item features")
        m, width = len(self.names), cfg.num_heads * cfg.attention_dim
        self.heads, self.head_dim = cfg.num_heads, cfg.attention_dim
        self.qkv, self.res = nn.ModuleList(), nn.ModuleList()
        prev = d
        for _ in range(cfg.num_layers):
            self.qkv.append(nn.Linear(prev, 3 * width, bias=False))
            self.res.append(nn.Linear(prev, width, bias=False))
            prev = width
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(m * prev, 1)
        dnn: list[nn.Module] = []
        size = m * d
        for h in cfg.dnn_hidden:
            dnn += [nn.Linear(size, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            size = h
        self.dnn = nn.Sequential(*dnn, nn.Linear(size, 1)) if cfg.dnn_hidden else None

    def _numeric(self, table: FeatureTable | None, side: str, d: int) -> nn.Parameter | None:
        if table is None or table.numeric.shape[1] == 0:
            return None
        values = table.numeric[table.present] if table.present.any() else table.numeric
        mean = np.nanmean(values, axis=0) if len(values) else np.zeros(table.numeric.shape[1])
        std = np.nanstd(values, axis=0) if len(values) else np.ones(table.numeric.shape[1])
        mean, std = np.nan_to_num(mean), np.where(np.nan_to_num(std) > 0, np.nan_to_num(std), 1.0)
        z = np.nan_to_num((table.numeric - mean) / std, nan=0.0).astype(np.float32)
        self.register_buffer(f"{side}_values", torch.from_numpy(z), persistent=False)
        self.names += [f"{side}.{n}" for n in table.numeric_fields]
        return nn.Parameter(torch.randn(table.numeric.shape[1], d) * 0.05)

    def embed(self, user: Tensor, item: Tensor) -> Tensor:
        """``user``, ``item`` ``(B,)`` -> ``(B, fields, embed_dim)`` in the order of :attr:`names`."""
        parts: list[Tensor] = []
        if self.user_id is not None and self.item_id is not None:
            parts += [self.user_id(user).unsqueeze(1), self.item_id(item).unsqueeze(1)]
        if self.user_fields is not None:
            parts.append(self.user_fields(user))
        if self.item_fields is not None:
            parts.append(self.item_fields(item))
        for side, idx, vec in (("user", user, self.user_numeric), ("item", item, self.item_numeric)):
            if vec is not None:
                values: Tensor = getattr(self, f"{side}_values")
                idx = torch.where(idx < values.shape[0], idx, torch.zeros_like(idx))
                parts.append(values[idx].unsqueeze(-1) * vec)
        return torch.cat(parts, 1)

    def forward(self, user: Tensor, item: Tensor, dropped: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        """``(B,)`` user and item indices -> ``(logits (B,), [attention (B, heads, fields, fields)] per layer)``.

        ``dropped`` (optional, ``(B, fields)`` bool): fields read as missing (a zero embedding, as a feature value
        absent from the feature file or an unknown id is read). It removes a field from one prediction the way the
        occlusions remove a history item: the faithfulness check of ``field-attention`` explanations
        (:func:`attnrec.explain.faithfulness.field_faithfulness`)."""
        e = self.embed(user, item)
        if dropped is not None:
            e = e.masked_fill(dropped.unsqueeze(-1), 0.0)
        x, maps = e, []
        b, m, _ = e.shape
        for qkv, res in zip(self.qkv, self.res, strict=True):
            q, k, v = qkv(x).view(b, m, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
            logits = torch.matmul(q, k.transpose(-1, -2))  # (B, H, M, M), unscaled as in the paper
            att = torch.softmax(logits, -1)
            maps.append(att)
            out = torch.matmul(att, v).transpose(1, 2).reshape(b, m, -1)
            x = torch.relu(self.dropout(out) + res(x))
        logit = self.out(x.reshape(b, -1)).squeeze(-1)
        if self.dnn is not None:
            logit = logit + self.dnn(e.reshape(b, -1)).squeeze(-1)
        return logit, maps


class AutoInt(FeatureTablesState, NeuralRecommender):
    """AutoInt+ click model (plain AutoInt with ``dnn_hidden=[]``) over user id, item id and the user / item
    feature fields.

    Task ``ctr`` (probabilities). It does not read histories (``uses_history`` false): unknown users get the
    popularity fallback in rankings. Explanations: by default ``"field-search"``, the fields whose removal
    (:meth:`score_without_fields`) lowers the score most together; ``"field-occlusion"``, each field's drop alone;
    ``"field-attention"`` (:meth:`field_attention`), the attention between pairs of fields, averaged over layers
    and heads, which is not what drives the score (``docs/explanations.md``, faithfulness).
    """

    name = "autoint"
    config_class = AutoIntConfig
    citation = CITATION
    task = "ctr"
    predicts_probabilities = True
    uses_history = False
    supports_explain = True
    explain_method = "field-search"
    validation_metric = "auc"
    config: AutoIntConfig
    net_: AutoIntNet | None  # type: ignore[assignment]

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.item_table_: FeatureTable | None = None
        self.user_table_: FeatureTable | None = None

    def build_net(self, train: Interactions | None) -> AutoIntNet:
        if train is not None:
            self.item_table_, self.user_table_ = encode_features(self, train)
        return AutoIntNet(self.num_users, self.num_items, self.item_table_, self.user_table_, self.config)

    def trainer_config(self, device: torch.device) -> TrainerConfig:
        mode: Literal["max", "min"] = "min" if self.config.valid_metric == "logloss" else "max"
        return dataclasses.replace(super().trainer_config(device), metric=self.config.valid_metric, mode=mode)

    def training_info(self, train: Interactions) -> dict[str, Any]:
        net = self.net_
        fields = list(net.names) if net is not None else []
        return {"metric": self.config.valid_metric, "fields": fields}

    # ------------------------------------------------------------------ training
    def training_batches(self, train: Interactions) -> tuple[BatchFn, int]:
        def make(users: np.ndarray, items: np.ndarray, labels: np.ndarray, keys: np.ndarray) -> dict[str, Tensor]:
            return {"user": torch.from_numpy(users), "item": torch.from_numpy(items), "label": torch.from_numpy(labels)}

        return impression_batches(train, self.config.num_negatives, self.config.batch_size, make)

    def training_loss(self, net: nn.Module, train: Interactions) -> LossFn:
        def loss_fn(batch: dict[str, Tensor], gen: torch.Generator) -> tuple[Tensor, int]:
            logits, _ = net(batch["user"], batch["item"])
            return F.binary_cross_entropy_with_logits(logits.float(), batch["label"]), int(batch["label"].shape[0])

        return loss_fn  # type: ignore[return-value]

    def validation(self, net: nn.Module, train: Interactions, valid: Interactions | None) -> ValidateFn | None:
        return ctr_validation(self, train, valid, negatives=self.config.num_negatives, seed=0)

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def _probabilities(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        net = self._net()
        net.eval()
        out = np.empty(len(users), dtype=np.float32)
        for s in range(0, len(users), PAIR_CHUNK):
            logits, _ = net(self.tensor(users[s : s + PAIR_CHUNK]), self.tensor(items[s : s + PAIR_CHUNK]))
            out[s : s + PAIR_CHUNK] = self.numpy(torch.sigmoid(logits))
        return out

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        n = self.num_items + 1
        users = np.asarray(user_idx, dtype=np.int64)
        out = np.empty((len(users), n), dtype=np.float32)
        bs = self.config.eval_batch_size
        for s in range(0, len(users), bs):
            part = users[s : s + bs]
            probs = self._probabilities(np.repeat(part, n), np.tile(np.arange(n, dtype=np.int64), len(part)))
            out[s : s + len(part)] = probs.reshape(len(part), n)
        out[:, 0] = -np.inf
        return out

    def score_pairs(
        self,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        *,
        history: Interactions | None = None,
        batch_size: int = 256,
    ) -> np.ndarray:
        """Click probabilities of (user, item) pairs, each pair scored alone; histories are not read. Unknown
        users (0) are scored with an empty user id and no user features; item 0 gives NaN."""
        self._check_fitted()
        users, items = pair_indices(user_idx, item_idx)
        out = self._probabilities(users, items).astype(np.float64)
        out[items == 0] = np.nan
        return out

    @torch.inference_mode()
    def field_attention(self, user_idx: int, items: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """``((len(items), M, M), names)``: attention of field ``m`` (row) to field ``k`` (column) for the pair
        (user, item), averaged over layers and heads; rows sum to 1. ``names``: ``"user.gender"``, ``"item.genre"``,
        ``"user.id"`` ..."""
        net = self._net()
        assert isinstance(net, AutoIntNet)
        net.eval()
        items = np.asarray(items, dtype=np.int64)
        users = np.full(len(items), int(user_idx), dtype=np.int64)
        _, maps = net(self.tensor(users), self.tensor(items))
        mean = torch.stack([m.float().mean(1) for m in maps]).mean(0)
        return self.numpy(mean), list(net.names)

    @property
    def field_names(self) -> list[str]:
        """The model's fields in input order: ``"user.id"``, ``"item.id"``, ``"user.gender"``, ``"item.genre"`` ..."""
        net = self._net()
        assert isinstance(net, AutoIntNet)
        return list(net.names)

    def field_values(self, user_idx: int, item_idx: int) -> list[str]:
        """The value of each field (in :attr:`field_names` order) for the pair, as text: the ids, a categorical
        field's values joined by ``|``, a numeric field's raw value; ``""`` where missing (unknown user, no
        feature value). Explanations name a field with it: ``"user.gender=M"``."""
        net = self._net()
        assert isinstance(net, AutoIntNet)
        out: list[str] = []
        known_user = 0 < user_idx <= self.num_users and self.users_ is not None
        known_item = 0 < item_idx <= self.num_items and self.items_ is not None
        if net.user_id is not None:
            out += [self.users_.id(user_idx) if known_user else "", self.items_.id(item_idx) if known_item else ""]  # type: ignore[union-attr]

        if net.user_fields is not None:
            out += value_texts(self.user_table_, user_idx, numeric=False)
        if net.item_fields is not None:
            out += value_texts(self.item_table_, item_idx, numeric=False)
        if net.user_numeric is not None:
            out += value_texts(self.user_table_, user_idx, numeric=True)
        if net.item_numeric is not None:
            out += value_texts(self.item_table_, item_idx, numeric=True)
        return out

    @torch.inference_mode()
    def score_without_fields(self, user_idx: int, items: np.ndarray, dropped: np.ndarray) -> np.ndarray:
        """Click probabilities of (user, item) for each item when the fields ``dropped[i]`` (``(len(items), M)``
        bool, in the order of :meth:`field_attention`'s names) are read as missing (zero embeddings)."""
        net = self._net()
        assert isinstance(net, AutoIntNet)
        net.eval()
        items = np.asarray(items, dtype=np.int64)
        m = len(net.names)
        dropped = np.asarray(dropped, dtype=bool)
        if dropped.shape != (len(items), m):
            raise ConfigError(f"'dropped' must have the shape (items, fields) = {(len(items), m)}; got {dropped.shape}")
        users = np.full(len(items), int(user_idx), dtype=np.int64)
        logits, _ = net(self.tensor(users), self.tensor(items), self.tensor(dropped))
        return self.numpy(torch.sigmoid(logits)).astype(np.float32)

    def explain_fields(self, user_idx: int, items: np.ndarray, *, top: int = 5) -> list[list[tuple[str, float]]]:
        """Per item, the ``top`` field pairs that attended to each other most (``"user.age x item.genre"``,
        share of the off-diagonal attention), largest first."""
        att, names = self.field_attention(user_idx, items)
        return [pairs[:top] for pairs in field_pairs(att, names)]


__all__ = ["CITATION", "AutoInt", "AutoIntConfig", "AutoIntNet"]
