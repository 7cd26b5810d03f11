"""The trainer's AdamW: the fused kernel (one pass per parameter) with the update of the for-loop AdamW."""

from __future__ import annotations

import torch
from torch import nn

from attnrec.training.trainer import Trainer, TrainerConfig


def test_trainer_adamw_is_fused_on_cpu_and_matches_the_reference_update() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Embedding(50, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    twin = nn.Sequential(nn.Embedding(50, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    twin.load_state_dict(net.state_dict())
    opt = Trainer(TrainerConfig(lr=1e-2, weight_decay=0.1))._optimizer(net)
    assert all(group["fused"] for group in opt.param_groups)
    ref = torch.optim.AdamW(
        [
            {"params": [twin[0].weight, twin[2].weight], "weight_decay": 0.1},
            {"params": [twin[1].weight, twin[1].bias, twin[2].bias], "weight_decay": 0.0},
        ],
        lr=1e-2,
        betas=(0.9, 0.98),
        foreach=False,
    )
    x = torch.randint(0, 50, (16, 4))
    for _ in range(5):
        for module, o in ((net, opt), (twin, ref)):
            o.zero_grad()
            module(x).square().mean().backward()
            o.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
