"""Field embeddings of (user, item) pairs for click models: the user id, the item id and every feature field.

:class:`PairFields` gives one ``dim``-vector per field of a pair, split into the user side and the item side (so a
model whose score separates over the two sides, such as logistic regression or a factorization machine, can score
a user against the whole catalogue with one matrix product). Feature fields are embedded by
:class:`~attnrec.models._ctr.FieldBag` (the mean of a multi-valued field's value embeddings; numeric fields by
quantile bucket); index 0 (padding, an unknown user or item) and rows without features embed as zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnrec.data.features import FeatureTable
from attnrec.models._ctr import FieldBag, categorical_fields


class PairFields(nn.Module):
    """One ``dim``-vector per field of a (user, item) pair.

    Args:
        num_users: fitted users (indices ``1..num_users``; 0 = unknown).
        num_items: fitted items (indices ``1..num_items``; 0 = unknown).
        items: encoded item features (``None``: none).
        users: encoded user features (``None``: none).
        dim: embedding width (1: a bias per field value).
        id_fields: embed the user id and the item id as fields.
        init_std: standard deviation of the initial embeddings (0: all zeros).

    Attributes:
        user_names / item_names: field names of each side (``"user.id"``, ``"user.gender"``, ``"item.genre"`` ...),
            in the order of :meth:`user_side` / :meth:`item_side`.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        items: FeatureTable | None,
        users: FeatureTable | None,
        dim: int,
        *,
        id_fields: bool = True,
        init_std: float = 0.05,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.user_id = nn.Embedding(num_users + 1, dim, padding_idx=0) if id_fields else None
        self.item_id = nn.Embedding(num_items + 1, dim, padding_idx=0) if id_fields else None
        ufields = categorical_fields(users, buckets=True)
        ifields = categorical_fields(items, buckets=True)
        self.user_bag = FieldBag(users, ufields, dim) if users is not None and ufields else None
        self.item_bag = FieldBag(items, ifields, dim) if items is not None and ifields else None
        self.user_names = (["user.id"] if id_fields else []) + [f"user.{n}" for n, _ in ufields if self.user_bag]
        self.item_names = (["item.id"] if id_fields else []) + [f"item.{n}" for n, _ in ifields if self.item_bag]
        for module in (self.user_id, self.item_id, self.user_bag, self.item_bag):
            if module is None:
                continue
            emb = module if isinstance(module, nn.Embedding) else module.embedding
            if init_std > 0:
                nn.init.normal_(emb.weight, 0.0, init_std)
            else:
                nn.init.zeros_(emb.weight)
            emb.weight.data[0].zero_()

    @property
    def names(self) -> list[str]:
        """Every field name, user side first (the order of :meth:`forward`)."""
        return self.user_names + self.item_names

    @property
    def num_fields(self) -> int:
        return len(self.user_names) + len(self.item_names)

    def _side(self, index: Tensor, ident: nn.Embedding | None, bag: FieldBag | None) -> Tensor:
        parts: list[Tensor] = []
        if ident is not None:  # indices past the table (a vocabulary grown since the fit) read as unknown
            parts.append(ident(torch.where(index < ident.num_embeddings, index, 0)).unsqueeze(-2))
        if bag is not None:
            parts.append(bag(index))
        if not parts:
            return torch.zeros((*index.shape, 0, self.dim), device=index.device)
        return torch.cat(parts, dim=-2)

    def user_side(self, user: Tensor) -> Tensor:
        """``user`` ``(...)`` indices -> ``(..., user fields, dim)``."""
        return self._side(user, self.user_id, self.user_bag)

    def item_side(self, item: Tensor) -> Tensor:
        """``item`` ``(...)`` indices -> ``(..., item fields, dim)``."""
        return self._side(item, self.item_id, self.item_bag)

    def forward(self, user: Tensor, item: Tensor) -> Tensor:
        """``user``, ``item`` ``(B,)`` -> ``(B, fields, dim)`` in the order of :attr:`names`."""
        return torch.cat([self.user_side(user), self.item_side(item)], dim=-2)


__all__ = ["PairFields"]
