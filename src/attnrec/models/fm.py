"""Factorization machine for click prediction over user id, item id and every feature field.

Steffen Rendle. "Factorization Machines." ICDM 2010. https://doi.org/10.1109/ICDM.2010.127

Each field ``f`` of a (user, item) pair (the user id, the item id, each categorical user / item feature field; a
multi-valued field: the mean of its values' vectors, i.e. the values weighted ``1 / count``; a numeric field: its
quantile bucket) has a weight ``w_f`` and a factor vector ``v_f`` of width ``embed_dim``:

    logit(u, i) = b + sum_f w_f + sum_{f < g} <v_f, v_g>
                = b + sum_f w_f + 1/2 * sum_k [ (sum_f v_fk)^2 - sum_f v_fk^2 ]      (Rendle's eq. 5, O(k n))

The linear part is :class:`~attnrec.models.logreg.LogisticRegression`'s. The pairwise part splits into the user
side's own pairs, the item side's own pairs and ``<s_u, s_i>`` with ``s`` the sum of a side's factor vectors, so a
user is scored against the whole catalogue with one matrix product. Trained like logistic regression (binary
cross-entropy, AdamW weight decay as L2, early stopping on validation logloss). Docs: ``docs/models/ctr_baselines.md``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from torch import Tensor, nn

from attnrec.data.features import FeatureTable
from attnrec.data.interactions import Interactions
from attnrec.models._ctr import encode_features
from attnrec.models.logreg import LogisticRegression, LogRegConfig, LogRegNet, prior_logit
from attnrec.nn.fields import PairFields
from attnrec.training.neural import NeuralConfig
from attnrec.training.search_space import Choice, FloatRange, SearchSpace

CITATION = "Rendle. Factorization Machines. ICDM 2010."


class FMConfig(LogRegConfig):
    """Hyperparameters of the factorization machine (the rest: :class:`~attnrec.models.logreg.LogRegConfig`)."""

    embed_dim: int = Field(
        64,
        ge=1,
        description="Width k of the factor vectors (64: the best validation logloss of 4-64 on ML-100K; "
        "docs/models/ctr_baselines.md).",
    )
    init_std: float = Field(0.01, gt=0, description="Standard deviation of the initial factor vectors.")
    lr: float = Field(1e-3, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay on weights and factors (the L2 penalty).")

    search_space: ClassVar[SearchSpace] = {
        "lr": FloatRange(3e-4, 1e-2, log=True),
        "embed_dim": Choice((4, 8, 16, 32, 64)),
        "weight_decay": FloatRange(1e-6, 1e-2, log=True),
    }
    """What `attnrec tune` searches."""


class FMNet(LogRegNet):
    """Logistic regression's terms plus the factor vectors; each side returns its own pairs and its sum vector."""

    def __init__(
        self,
        num_users: int,
        num_items: int,
        items: FeatureTable | None,
        users: FeatureTable | None,
        cfg: FMConfig,
        bias: float,
    ) -> None:
        super().__init__(num_users, num_items, items, users, cfg.id_fields, bias)
        self.factors = PairFields(
            num_users, num_items, items, users, cfg.embed_dim, id_fields=cfg.id_fields, init_std=cfg.init_std
        )

    @staticmethod
    def _pairs(v: Tensor) -> tuple[Tensor, Tensor]:
        """``v`` ``(B, F, k)`` -> (``(B,)`` sum of <v_f, v_g> over the side's pairs f < g, ``(B, k)`` sum of v_f)."""
        s = v.sum(-2)
        return 0.5 * (s.square() - v.square().sum(-2)).sum(-1), s

    def user_terms(self, user: Tensor) -> tuple[Tensor, Tensor]:
        lin, _ = super().user_terms(user)
        own, s = self._pairs(self.factors.user_side(user))
        return lin + own, s

    def item_terms(self, item: Tensor) -> tuple[Tensor, Tensor]:
        lin, _ = super().item_terms(item)
        own, s = self._pairs(self.factors.item_side(item))
        return lin + own, s


class FactorizationMachine(LogisticRegression):
    """Factorization machine (degree 2) over user id, item id and user / item feature fields; task ``ctr``."""

    name = "fm"
    config_class: ClassVar[type[NeuralConfig]] = FMConfig
    citation = CITATION
    config: FMConfig  # type: ignore[assignment]

    def build_net(self, train: Interactions | None) -> nn.Module:
        if train is not None:
            self.item_table_, self.user_table_ = encode_features(self, train)
            self.prior_logit_ = prior_logit(train, self.config.num_negatives)
        return FMNet(self.num_users, self.num_items, self.item_table_, self.user_table_, self.config, self.prior_logit_)

    def training_info(self, train: Interactions) -> dict[str, Any]:
        return {**super().training_info(train), "embed_dim": self.config.embed_dim}


__all__ = ["CITATION", "FMConfig", "FMNet", "FactorizationMachine"]
