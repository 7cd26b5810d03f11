"""Trains tiny modules with the Trainer; `python ddp_script.py OUT` writes OUT/rank<R>.json.

Run by tests/training/test_distributed.py in one process and under
`python -m torch.distributed.run --standalone --nproc-per-node 2` (the results must agree).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from attnrec.training import distributed
from attnrec.training.options import TrainingOptions
from attnrec.training.trainer import Trainer, TrainerConfig


def regression(seed: int = 5) -> tuple[nn.Module, Any, Any, Any, int]:
    """Least squares without dropout or noise. 91 rows in batches of 15: shards of 8 and 7 rows (unequal
    weights) and a last batch of 1 row (process 1 gets an empty shard). Batches are dicts of tensors."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(91, 4, generator=g)
    w = torch.randn(4, 1, generator=g)
    y = X @ w
    Xv = torch.randn(40, 4, generator=g)
    yv = Xv @ w
    torch.manual_seed(0 if distributed.rank() == 0 else 1)  # replicas start apart: DDP must sync them
    module = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    seen: list[str] = []

    def batches(epoch: int, gen: torch.Generator) -> Iterator[dict[str, Any]]:
        perm = torch.randperm(91, generator=gen)
        for idx in perm.split(15):
            yield {"x": X[idx], "target": (y[idx],), "scale": 1.0}

    def loss_fn(batch: dict[str, Any], gen: torch.Generator) -> tuple[Tensor, int]:
        xb, (yb,) = batch["x"], batch["target"]
        seen.append(str(xb.device))
        return ((module(xb) - yb) ** 2).mean() * batch["scale"], len(xb)

    def validate() -> dict[str, float]:
        with torch.no_grad():
            return {"neg_mse": -float(((module(Xv) - yv) ** 2).mean())}

    return module, batches, loss_fn, validate, 7


def weights(module: nn.Module) -> list[float]:
    return [float(v) for t in module.state_dict().values() for v in t.flatten()]


def run(out: Path) -> None:
    result: dict[str, Any] = {"rank": distributed.rank(), "world": distributed.world_size()}
    module, batches, loss_fn, validate, nb = regression()
    calls: list[int] = []

    def counted() -> dict[str, float]:
        calls.append(1)
        return validate()  # type: ignore[no-any-return]

    config = TrainerConfig(lr=2e-2, epochs=5, warmup_steps=3, cosine=True, grad_clip=1.0, metric="neg_mse")
    fit = Trainer(config, TrainingOptions(seed=2, threads=1, device="auto")).fit(
        module, batches, loss_fn, num_batches=nb, validate=counted
    )
    result["losses"] = [row["loss"] for row in fit.history]
    result["tokens"] = [row["tokens_per_second"] * row["seconds"] for row in fit.history]
    result["valid"] = [row.get("valid_neg_mse") for row in fit.history]
    result["best_metric"] = fit.best_metric
    result["weights"] = weights(module)
    result["validations"] = len(calls)

    # early stopping decided by rank 0 (scripted metrics) and broadcast; best weights restored everywhere
    module, batches, loss_fn, _, nb = regression(seed=6)
    scores = iter([1.0, 0.5, 0.4, 0.3])
    snapshots: list[list[float]] = []

    def scripted() -> dict[str, float]:
        snapshots.append(weights(module))
        return {"ndcg@10": next(scores)}

    fit = Trainer(TrainerConfig(lr=2e-2, epochs=10, patience=2), TrainingOptions(seed=3, threads=1)).fit(
        module, batches, loss_fn, num_batches=nb, validate=scripted
    )
    result["stop"] = {"stopped": fit.stopped_early, "epochs": fit.epochs_run, "best_epoch": fit.best_epoch}
    result["stop_weights"] = weights(module)
    result["stop_best_snapshot"] = snapshots[0] if snapshots else None
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{distributed.rank()}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    run(Path(sys.argv[1]))
