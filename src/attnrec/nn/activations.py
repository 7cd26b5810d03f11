"""Activations of the click models' MLPs that act per channel of the last axis (DIN: Zhou et al., KDD 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Dice(nn.Module):
    """Dice (the paper's eq. 6): ``p(s) s + (1 - p(s)) alpha s`` with ``p = sigmoid(BN(s))`` over the last axis."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width, affine=False, eps=1e-8)
        self.alpha = nn.Parameter(torch.zeros(width))

    def forward(self, x: Tensor) -> Tensor:
        p = torch.sigmoid(self.norm(x.reshape(-1, x.shape[-1])).reshape(x.shape))
        return p * x + (1.0 - p) * self.alpha * x


class PReLU(nn.PReLU):
    """PReLU with one slope per channel of the last axis (torch's own reads channels from axis 1)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


__all__ = ["Dice", "PReLU"]
