"""The one training loop of every neural model.

A model hands the :class:`Trainer` an ``nn.Module``, a function producing the batches of an epoch, a loss
function and (optionally) a validation function; the trainer does the rest: AdamW, warm-up + cosine schedule,
gradient clipping, bf16 autocast, early stopping on a validation metric with restore of the best weights,
per-epoch checkpoints that a killed run resumes from, NaN detection, seeding, progress and history rows.

Determinism: each epoch reseeds torch's global generator (dropout) and the batch/negative generator from
``(options.seed, epoch)``, so a resumed run repeats exactly the epochs an uninterrupted run would have done.
The global torch RNG state is restored when :meth:`Trainer.fit` returns.

Checkpoint folder layout (``options.checkpoint_dir``)::

    state.json          epoch, global step, best metric/epoch, epochs without improvement, seed, history rows
    weights.safetensors module weights after the last finished epoch
    best.safetensors    module weights of the best validation epoch
    optimizer.pt        AdamW state_dict (tensors and numbers only; loaded with ``weights_only=True``)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from attnrec.errors import ModelFitError, PersistenceError
from attnrec.io import read_json, write_json
from attnrec.training.options import TrainingOptions

STATE_JSON = "state.json"
WEIGHTS = "weights.safetensors"
BEST_WEIGHTS = "best.safetensors"
OPTIMIZER = "optimizer.pt"

BatchFn = Callable[[int, torch.Generator], Iterable[Any]]
"""``batches(epoch, generator)``: the batches of one epoch, shuffled with ``generator``."""
LossFn = Callable[[Any, torch.Generator], "Tensor | tuple[Tensor, int]"]
"""``loss_fn(batch, generator)``: scalar loss, or ``(loss, tokens)`` to report tokens per second."""
ValidateFn = Callable[[], dict[str, float]]
"""``validate()``: validation metrics of the module in its current state (e.g. ``{"ndcg@10": 0.18}``)."""


@dataclass(frozen=True)
class TrainerConfig:
    """Optimisation hyperparameters shared by every neural model (models copy them from their config).

    Attributes:
        lr: peak AdamW learning rate.
        weight_decay: AdamW decoupled weight decay, applied to parameters with 2+ dimensions whose name
            contains none of ``no_decay`` (so not to biases and LayerNorm weights).
        betas: AdamW betas.
        epochs: maximum number of epochs.
        patience: stop after this many validations without improvement (``0`` = never stop early).
        metric: key of the validation dict to maximise.
        eval_every: validate every ``eval_every`` epochs (and after the last one).
        warmup_steps: linear warm-up steps from 0 to ``lr`` (at most a tenth of all steps, so that short
            runs on small data still train at full rate).
        cosine: cosine decay of the learning rate to ``min_lr_ratio * lr`` over all ``epochs``.
        min_lr_ratio: floor of the cosine schedule.
        grad_clip: clip the global gradient norm to this value (``None`` = no clipping).
        bf16: run forward/backward under ``torch.autocast(dtype=bfloat16)`` (weights stay float32).
        restore_best: load the weights of the best validation epoch at the end.
        no_decay: parameter-name fragments exempt from weight decay.
    """

    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    epochs: int = 10
    patience: int = 0
    metric: str = "ndcg@10"
    eval_every: int = 1
    warmup_steps: int = 0
    cosine: bool = False
    min_lr_ratio: float = 0.0
    grad_clip: float | None = None
    bf16: bool = False
    restore_best: bool = True
    no_decay: tuple[str, ...] = field(default=("bias", "norm"))


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did."""

    history: list[dict[str, Any]]
    best_epoch: int
    best_metric: float | None
    epochs_run: int
    stopped_early: bool
    seconds: float


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1, dtype=np.uint64)[0] % (2**63))


class Trainer:
    """Train ``module`` with AdamW. See the module docstring for the features and the checkpoint layout.

    Example::

        trainer = Trainer(TrainerConfig(lr=1e-3, epochs=50, patience=5), options)
        result = trainer.fit(module, batches, loss_fn, num_batches=len(loader), validate=validate)
    """

    def __init__(self, config: TrainerConfig, options: TrainingOptions | None = None) -> None:
        self.config = config
        self.options = options or TrainingOptions()

    # ------------------------------------------------------------------ helpers
    def _optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            lname = name.lower()
            skip = param.ndim < 2 or any(tag in lname for tag in self.config.no_decay)
            (no_decay if skip else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=self.config.lr, betas=self.config.betas)

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate at optimizer step ``step`` (0-based) of ``total_steps``."""
        cfg = self.config
        warmup = min(cfg.warmup_steps, total_steps // 10)
        if warmup > 0 and step < warmup:
            return cfg.lr * (step + 1) / warmup
        if not cfg.cosine:
            return cfg.lr
        span = max(total_steps - warmup, 1)
        progress = min(max(step - warmup, 0) / span, 1.0)
        floor = cfg.min_lr_ratio
        return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))

    @staticmethod
    def _weights(module: nn.Module) -> dict[str, Tensor]:
        return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}

    def _save_checkpoint(
        self, folder: Path, module: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any],
        best: dict[str, Tensor] | None,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{WEIGHTS}.tmp"
        save_file(self._weights(module), str(tmp))
        tmp.replace(folder / WEIGHTS)
        if best is not None:
            tmp = folder / f".{BEST_WEIGHTS}.tmp"
            save_file(best, str(tmp))
            tmp.replace(folder / BEST_WEIGHTS)
        tmp = folder / f".{OPTIMIZER}.tmp"
        torch.save(opt.state_dict(), tmp)
        tmp.replace(folder / OPTIMIZER)
        write_json(folder / STATE_JSON, state)  # written last: its presence marks a complete checkpoint

    def _load_checkpoint(
        self, folder: Path, module: nn.Module, opt: torch.optim.Optimizer
    ) -> tuple[dict[str, Any], dict[str, Tensor] | None]:
        state = read_json(folder / STATE_JSON)
        try:
            module.load_state_dict(load_file(str(folder / WEIGHTS)))
            opt.load_state_dict(torch.load(folder / OPTIMIZER, weights_only=True))
            best = load_file(str(folder / BEST_WEIGHTS)) if (folder / BEST_WEIGHTS).is_file() else None
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise PersistenceError(f"{folder}: cannot resume from checkpoint ({exc})") from None
        return state, best

    # ------------------------------------------------------------------ the loop
    def fit(
        self,
        module: nn.Module,
        batches: BatchFn,
        loss_fn: LossFn,
        *,
        num_batches: int,
        validate: ValidateFn | None = None,
        description: str = "train",
    ) -> TrainResult:
        """Train ``module`` in place and return the per-epoch history.

        Args:
            module: the ``nn.Module`` whose parameters are optimised.
            batches: ``batches(epoch, generator)`` yields the batches of one epoch.
            loss_fn: ``loss_fn(batch, generator)`` returns the scalar loss (or ``(loss, tokens)``).
            num_batches: batches per epoch (for progress and the cosine schedule).
            validate: returns validation metrics; early stopping and best-weight restore use
                ``config.metric``. Without it the last epoch's weights are kept.
            description: progress label.

        Raises:
            ModelFitError: the loss became NaN or infinite (the message names epoch and step).
        """
        cfg, opts = self.config, self.options
        if opts.threads is not None:
            torch.set_num_threads(opts.threads)
        device = torch.device(opts.device)
        module.to(device)
        opt = self._optimizer(module)
        total_steps = cfg.epochs * max(num_batches, 1)
        history: list[dict[str, Any]] = []
        best_metric: float | None = None
        best_epoch = 0
        best_weights: dict[str, Tensor] | None = None
        bad = 0
        start_epoch = 1
        step = 0
        stopped = False
        folder = Path(opts.checkpoint_dir) if opts.checkpoint_dir is not None else None
        if folder is not None and opts.resume and (folder / STATE_JSON).is_file():
            state, best_weights = self._load_checkpoint(folder, module, opt)
            history = list(state.get("history", []))
            best_metric = state.get("best_metric")
            best_epoch = int(state.get("best_epoch", 0))
            bad = int(state.get("bad_epochs", 0))
            step = int(state.get("step", 0))
            start_epoch = int(state["epoch"]) + 1
            stopped = bool(state.get("stopped", False))
        t_begin = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            for epoch in range(start_epoch, cfg.epochs + 1):
                if stopped:
                    break
                torch.manual_seed(_epoch_seed(opts.seed, epoch, 0))
                gen = torch.Generator().manual_seed(_epoch_seed(opts.seed, epoch, 1))
                module.train()
                t0 = time.perf_counter()
                loss_sum, n_steps, tokens = 0.0, 0, 0
                for b, batch in enumerate(batches(epoch, gen)):
                    lr = self.lr_at(step, total_steps)
                    for group in opt.param_groups:
                        group["lr"] = lr
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                        out = loss_fn(batch, gen)
                    loss, n_tok = out if isinstance(out, tuple) else (out, 0)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise ModelFitError(
                            f"training loss became {value} at epoch {epoch}, step {b + 1} "
                            f"(global step {step + 1}); lower 'lr' or enable 'grad_clip'"
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                    opt.step()
                    step += 1
                    n_steps += 1
                    loss_sum += value
                    tokens += int(n_tok)
                    opts.report(f"{description} epoch {epoch}/{cfg.epochs}", b + 1, num_batches)
                seconds = time.perf_counter() - t0
                row: dict[str, Any] = {
                    "epoch": epoch,
                    "loss": loss_sum / max(n_steps, 1),
                    "lr": self.lr_at(max(step - 1, 0), total_steps),
                    "seconds": seconds,
                    "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
                }
                if validate is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                    module.eval()
                    t_val = time.perf_counter()
                    metrics = validate()
                    row["valid_seconds"] = time.perf_counter() - t_val
                    row.update({f"valid_{k}": float(v) for k, v in metrics.items()})
                    if cfg.metric not in metrics:
                        raise ModelFitError(
                            f"validation returned no {cfg.metric!r} (got: {', '.join(metrics) or 'nothing'})"
                        )
                    value = float(metrics[cfg.metric])
                    if best_metric is None or value > best_metric:
                        best_metric, best_epoch, bad = float(value), epoch, 0
                        best_weights = self._weights(module)
                    else:
                        bad += 1
                        if cfg.patience > 0 and bad >= cfg.patience:
                            stopped = True
                history.append(row)
                if opts.log is not None:
                    opts.log(dict(row))
                if folder is not None:
                    state = {
                        "epoch": epoch,
                        "step": step,
                        "best_metric": best_metric,
                        "best_epoch": best_epoch,
                        "bad_epochs": bad,
                        "stopped": stopped,
                        "seed": opts.seed,
                        "metric": cfg.metric,
                        "history": history,
                    }
                    self._save_checkpoint(folder, module, opt, state, best_weights)
        if cfg.restore_best and best_weights is not None:
            module.load_state_dict(best_weights)
        module.eval()
        return TrainResult(
            history=history,
            best_epoch=best_epoch,
            best_metric=best_metric,
            epochs_run=len(history),
            stopped_early=stopped,
            seconds=time.perf_counter() - t_begin,
        )
