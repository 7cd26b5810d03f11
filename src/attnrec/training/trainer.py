"""The one training loop of every neural model.

A model hands the :class:`Trainer` an ``nn.Module``, a function producing the batches of an epoch, a loss
function and (optionally) a validation function; the trainer does the rest: AdamW, warm-up + cosine schedule,
gradient clipping, bf16 autocast, early stopping on a validation metric with restore of the best weights,
per-epoch checkpoints that a killed run resumes from, NaN detection, seeding, progress and history rows.

Determinism: each epoch reseeds torch's global generator (dropout) and the batch/negative generator from
``(options.seed, epoch)``, so a resumed run repeats exactly the epochs an uninterrupted run would have done.
The global torch RNG state is restored when :meth:`Trainer.fit` returns.

Devices: the module and every batch go to ``options.device`` (``auto``: the GPU when there is one). Processes:
inside a ``torchrun`` job the processes train one model with DistributedDataParallel (gloo on CPUs, NCCL on
GPUs); see :meth:`Trainer._fit`.

Checkpoint folder layout (``options.checkpoint_dir``)::

    state.json          epoch, global step, best metric/epoch, epochs without improvement, seed, history rows
    weights.safetensors module weights after the last finished epoch
    best.safetensors    module weights of the best validation epoch
    optimizer.safetensors  AdamW per-parameter state tensors (``state.<param>.<name>``)
    optimizer.json      AdamW param groups and any non-tensor per-parameter state (no pickle anywhere)
    ema.safetensors     the running average of the weights (only with ``ema_decay``)

Weight averaging (``ema_decay``): an exponential moving average of the weights is updated after every optimizer
step; validation, the best epoch's weights and the returned model are the average's (the optimizer keeps
stepping the raw weights). It smooths the step-to-step noise of a constant learning rate.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from attnrec.errors import ConfigError, ModelFitError, PersistenceError
from attnrec.io import read_json, write_json
from attnrec.training import distributed
from attnrec.training.options import TrainingOptions

STATE_JSON = "state.json"
WEIGHTS = "weights.safetensors"
BEST_WEIGHTS = "best.safetensors"
OPTIMIZER = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
EMA_WEIGHTS = "ema.safetensors"

BatchFn = Callable[[int, torch.Generator], Iterable[Any]]
"""``batches(epoch, generator)``: the batches of one epoch, shuffled with ``generator``."""
LossFn = Callable[[Any, torch.Generator], "Tensor | tuple[Tensor, int]"]
"""``loss_fn(batch, generator)``: scalar loss, or ``(loss, tokens)`` to report tokens per second."""
ValidateFn = Callable[[], dict[str, float]]
"""``validate()``: validation metrics of the module in its current state (e.g. ``{"ndcg@10": 0.18}``)."""


def _plain(value: Any) -> Any:
    """JSON form of an optimizer setting (tensors become numbers, tuples lists)."""
    if isinstance(value, Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def optimizer_state_to_files(state_dict: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimizer ``state_dict`` into safetensors tensors and a JSON document (no pickle)."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state_dict["state"].items():
        for name, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = _plain(value)
    groups = [{k: _plain(v) for k, v in group.items()} for group in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_state_from_files(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_state_to_files`: an optimizer ``state_dict`` for ``load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entry)
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


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
        metric: key of the validation dict that decides early stopping and the best epoch.
        mode: ``"max"`` (NDCG, HR, AUC) or ``"min"`` (RMSE, logloss): which direction of ``metric`` is better.
        eval_every: validate every ``eval_every`` epochs (and after the last one).
        warmup_steps: linear warm-up steps from 0 to ``lr`` (at most a tenth of all steps, so that short
            runs on small data still train at full rate).
        cosine: cosine decay of the learning rate to ``min_lr_ratio * lr`` over all ``epochs``.
        min_lr_ratio: floor of the cosine schedule.
        grad_clip: clip the global gradient norm to this value (``None`` = no clipping).
        bf16: run forward/backward under ``torch.autocast(dtype=bfloat16)`` (weights stay float32).
        restore_best: load the weights of the best validation epoch at the end.
        no_decay: parameter-name fragments exempt from weight decay.
        ema_decay: keep an exponential moving average of the weights with this per-step decay (its warm-up:
            ``min(ema_decay, (1 + step) / (10 + step))``); validation, the best weights and the returned
            model use the average. ``None`` = off.
    """

    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    epochs: int = 10
    patience: int = 0
    metric: str = "ndcg@10"
    mode: Literal["max", "min"] = "max"
    eval_every: int = 1
    warmup_steps: int = 0
    cosine: bool = False
    min_lr_ratio: float = 0.0
    grad_clip: float | None = None
    bf16: bool = False
    restore_best: bool = True
    no_decay: tuple[str, ...] = field(default=("bias", "norm"))
    ema_decay: float | None = None


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did."""

    history: list[dict[str, Any]]
    best_epoch: int
    best_metric: float | None
    epochs_run: int
    stopped_early: bool
    seconds: float


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (x86 ``avx512_bf16`` or ``amx_bf16`` in ``/proc/cpuinfo``),
    where bf16 matmuls run ~3x faster than float32; elsewhere bf16 is emulated and slower, so ``bf16=None``
    settings stay off. ``cpuinfo``: the text to read instead of ``/proc/cpuinfo`` (absent: false)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
                cpuinfo = fh.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return bool(set(line.partition(":")[2].split()) & {"avx512_bf16", "amx_bf16"})
    return False


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1, dtype=np.uint64)[0] % (2**63))


class _LossModule(nn.Module):
    """The loss computation as a module, so that DistributedDataParallel sees the forward pass of any
    ``loss_fn`` (which calls the model's network itself) and all-reduces the gradients of its parameters."""

    def __init__(self, module: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.module = module
        self.loss_fn = loss_fn

    def forward(self, batch: Any, generator: torch.Generator) -> Any:
        return self.loss_fn(batch, generator)


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
        # the fused kernel makes one pass per parameter instead of ~10 (same update up to rounding): the step
        # over a large item table is a fixed per-batch cost that dominates short-sequence data
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in decay + no_decay)
        return torch.optim.AdamW(groups, lr=self.config.lr, betas=self.config.betas, fused=fused or None)

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
    def _weights(module: nn.Module, device: torch.device | None = None) -> dict[str, Tensor]:
        """A copy of the module's weights (on ``device``, default where they are)."""
        return {k: v.detach().to(device, copy=True).contiguous() for k, v in module.state_dict().items()}

    def _save_checkpoint(
        self,
        folder: Path,
        module: nn.Module,
        opt: torch.optim.Optimizer,
        state: dict[str, Any],
        best: dict[str, Tensor] | None,
        ema: dict[str, Tensor] | None = None,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{WEIGHTS}.tmp"
        save_file(self._weights(module, torch.device("cpu")), str(tmp))  # loads on any device
        tmp.replace(folder / WEIGHTS)
        if best is not None:
            tmp = folder / f".{BEST_WEIGHTS}.tmp"
            save_file({k: v.cpu() for k, v in best.items()}, str(tmp))
            tmp.replace(folder / BEST_WEIGHTS)
        if ema is not None:
            tmp = folder / f".{EMA_WEIGHTS}.tmp"
            save_file({k: v.detach().to("cpu", copy=True).contiguous() for k, v in ema.items()}, str(tmp))
            tmp.replace(folder / EMA_WEIGHTS)
        tensors, meta = optimizer_state_to_files(opt.state_dict())
        tmp = folder / f".{OPTIMIZER}.tmp"
        save_file(tensors, str(tmp))
        tmp.replace(folder / OPTIMIZER)
        write_json(folder / OPTIMIZER_JSON, meta)
        write_json(folder / STATE_JSON, state)  # written last: its presence marks a complete checkpoint

    def _load_checkpoint(
        self, folder: Path, module: nn.Module, opt: torch.optim.Optimizer, ema: dict[str, Tensor] | None = None
    ) -> tuple[dict[str, Any], dict[str, Tensor] | None]:
        state = read_json(folder / STATE_JSON)
        try:
            module.load_state_dict(load_file(str(folder / WEIGHTS), device="cpu"))
            opt.load_state_dict(
                optimizer_state_from_files(
                    load_file(str(folder / OPTIMIZER), device="cpu"), read_json(folder / OPTIMIZER_JSON)
                )
            )
            best = load_file(str(folder / BEST_WEIGHTS), device="cpu") if (folder / BEST_WEIGHTS).is_file() else None
            if ema is not None:
                if not (folder / EMA_WEIGHTS).is_file():
                    raise ValueError(f"no {EMA_WEIGHTS}: the run was not trained with 'ema_decay'")
                saved = load_file(str(folder / EMA_WEIGHTS), device="cpu")
                for key, tensor in ema.items():
                    tensor.copy_(saved[key])
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise PersistenceError(f"{folder}: cannot resume from checkpoint ({exc})") from None
        return state, best

    @staticmethod
    @torch.no_grad()
    def _ema_update(ema: dict[str, Tensor], live: dict[str, Tensor], decay: float) -> None:
        """``ema <- decay * ema + (1 - decay) * live``, one fused pass over the tensors."""
        torch._foreach_lerp_(list(ema.values()), [live[k] for k in ema], 1.0 - decay)

    @staticmethod
    @contextlib.contextmanager
    def _averaged(live: dict[str, Tensor], ema: dict[str, Tensor] | None) -> Iterator[None]:
        """Within the block the module holds the averaged weights (no-op without ``ema``); the raw weights are
        put back afterwards, also when the block raises."""
        if ema is None:
            yield
            return
        with torch.no_grad():
            saved = {k: v.clone() for k, v in live.items()}
            for key, tensor in live.items():
                tensor.copy_(ema[key])
        try:
            yield
        finally:
            with torch.no_grad():
                for key, tensor in live.items():
                    tensor.copy_(saved[key])

    @staticmethod
    def _check_finite(value: float, epoch: int, b: int, step: int) -> None:
        if not math.isfinite(value):
            raise ModelFitError(
                f"training loss became {value} at epoch {epoch}, step {b + 1} "
                f"(global step {step + 1}); lower 'lr' or enable 'grad_clip'"
            )

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

        The module is moved to ``options.device`` and every batch (a tensor, or tuples / lists / dicts of
        tensors, nested) is moved there before ``loss_fn`` sees it. Inside a torchrun job (``WORLD_SIZE`` > 1)
        the processes train one model together with DistributedDataParallel (see :meth:`_fit`).

        Args:
            module: the ``nn.Module`` whose parameters are optimised.
            batches: ``batches(epoch, generator)`` yields the batches of one epoch.
            loss_fn: ``loss_fn(batch, generator)`` returns the scalar loss (or ``(loss, tokens)``).
            num_batches: batches per epoch (for progress and the cosine schedule).
            validate: returns validation metrics; early stopping and best-weight restore use
                ``config.metric``. Without it the last epoch's weights are kept. Runs on the module's device,
                in rank 0 only.
            description: progress label.

        Raises:
            ModelFitError: the loss became NaN or infinite (the message names epoch and step).
            ConfigError: ``options.processes`` > 1 outside a torchrun job, or different from the job's size.
        """
        opts = self.options
        device = opts.torch_device()
        world = distributed.world_size()
        if opts.processes > 1 and world <= 1:
            n = opts.processes
            raise ConfigError(
                f"the 'processes' training option asks for {n} processes but this is not a multi-process job: "
                f"launch the script with `torchrun --nproc-per-node {n} script.py`, or use "
                f"`attnrec train --processes {n}`"
            )
        if world > 1 and opts.processes not in (1, world):
            raise ConfigError(
                f"the 'processes' training option is {opts.processes} but this torchrun job has {world} "
                "processes; leave it at 1 (the job decides) or set it to the job's size"
            )
        saved_threads = torch.get_num_threads()
        if opts.threads is not None:
            torch.set_num_threads(opts.threads)
        created = False
        try:
            if world > 1:
                created = distributed.init_process_group(device)
            return self._fit(module, batches, loss_fn, num_batches, validate, description, device, world)
        finally:  # the library leaves the caller's thread count (and process group state) as it found it
            if created:
                distributed.destroy_process_group()
            torch.set_num_threads(saved_threads)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if not self.config.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def _step(self, batch: Any, loss_fn: LossFn, gen: torch.Generator, device: torch.device) -> tuple[float, int]:
        """One process: forward and backward of the whole batch on ``device``; returns its loss and tokens."""
        with self._autocast(device):
            out = loss_fn(distributed.to_device(batch, device), gen)
        loss, n_tok = out if isinstance(out, tuple) else (out, 0)
        value = float(loss.detach())
        if math.isfinite(value):
            loss.backward()
        return value, int(n_tok)

    def _distributed_step(
        self, ddp: nn.Module, batch: Any, gen: torch.Generator, device: torch.device, comm: torch.device
    ) -> tuple[float, int]:
        """This rank's row shard through DistributedDataParallel. The shard's loss is weighted by its tokens
        (rows when ``loss_fn`` reports none) over the job's total, all-reduced before backward, so the averaged
        gradient is the whole batch's token-weighted mean. An empty shard runs one row of the batch with
        weight 0, so that every rank takes part in the gradient all-reduce. Returns the batch's loss and tokens
        (the same on every rank)."""
        import torch.distributed as dist

        rank, world = distributed.rank(), distributed.world_size()
        rows = distributed.batch_rows(batch)
        part = distributed.shard(batch, rank, world)
        empty = rank >= rows
        if empty:
            part = distributed.shard(batch, 0, rows)  # row 0 alone, weight 0
        with self._autocast(device):
            out = ddp(distributed.to_device(part, device), gen)
        loss, n_tok = out if isinstance(out, tuple) else (out, None)
        weight = 0.0 if empty else float(n_tok if n_tok is not None else distributed.batch_rows(part))
        tokens = 0 if empty or n_tok is None else int(n_tok)
        value = float(loss.detach()) if weight > 0 else 0.0
        stats = torch.tensor([weight, value * weight, float(tokens)], dtype=torch.float64, device=comm)
        dist.all_reduce(stats)
        total = float(stats[0]) if float(stats[0]) > 0 else 1.0
        global_value = float(stats[1]) / total
        if math.isfinite(global_value):
            (loss * (weight * world / total)).backward()  # DDP averages over the world: sum_r w_r g_r / total
        return global_value, int(stats[2])

    def _fit(
        self,
        module: nn.Module,
        batches: BatchFn,
        loss_fn: LossFn,
        num_batches: int,
        validate: ValidateFn | None,
        description: str,
        device: torch.device,
        world: int,
    ) -> TrainResult:
        """The loop. With ``world`` > 1 (a torchrun job with its default process group) every rank holds a
        replica wrapped in DistributedDataParallel (which starts every replica from rank 0's weights) and takes
        rows ``rank::world`` of each batch, so the global batch and its order are those of one process; rank 0
        validates, decides early stopping (broadcast to the others), writes checkpoints and reports progress and
        history rows; every rank resumes from the checkpoint folder (which must be visible to all of them); at
        the end rank 0's final (best) weights are broadcast so that every rank returns the same model."""
        import torch.distributed as dist

        cfg, opts = self.config, self.options
        module.to(device)
        opt = self._optimizer(module)
        # the weight average: float state tensors of the module (updated in place by the optimizer) and copies
        live = {k: v for k, v in module.state_dict().items() if v.is_floating_point()}
        ema = {k: v.detach().clone() for k, v in live.items()} if cfg.ema_decay is not None else None
        total_steps = cfg.epochs * max(num_batches, 1)
        history: list[dict[str, Any]] = []
        best_metric: float | None = None
        best_epoch = 0
        best_weights: dict[str, Tensor] | None = None
        bad = 0
        start_epoch = 1
        step = 0
        stopped = False
        rank = distributed.rank() if world > 1 else 0
        folder = Path(opts.checkpoint_dir) if opts.checkpoint_dir is not None else None
        if folder is not None and opts.resume and (folder / STATE_JSON).is_file():
            state, best_weights = self._load_checkpoint(folder, module, opt, ema)
            history = list(state.get("history", []))
            best_metric = state.get("best_metric")
            best_epoch = int(state.get("best_epoch", 0))
            bad = int(state.get("bad_epochs", 0))
            step = int(state.get("step", 0))
            start_epoch = int(state["epoch"]) + 1
            stopped = bool(state.get("stopped", False))
        ddp: nn.Module | None = None
        comm = torch.device("cpu")
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            comm = device if dist.get_backend() == "nccl" else torch.device("cpu")
            where = torch.tensor([start_epoch, step], dtype=torch.int64, device=comm)
            dist.broadcast(where, src=0)
            if (int(where[0]), int(where[1])) != (start_epoch, step):
                raise ConfigError(
                    f"process {rank} resumes at epoch {start_epoch} but process 0 at epoch {int(where[0])}: "
                    f"the checkpoint folder {folder} must be visible to every process (a shared filesystem)"
                )
            ddp = DistributedDataParallel(_LossModule(module, loss_fn), static_graph=True)
        local_world = distributed.local_world_size()
        t_begin = time.perf_counter()
        cuda_rng: list[int] = []
        if device.type == "cuda" and torch.cuda.is_available():
            cuda_rng = [device.index if device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=cuda_rng):
            for epoch in range(start_epoch, cfg.epochs + 1):
                if stopped:
                    break
                # rank 0 draws exactly what a single process draws; other ranks get their own dropout and
                # negative-sampling streams, while every rank shuffles the batches identically
                torch.manual_seed(_epoch_seed(opts.seed, epoch, 0 if rank == 0 else 100 + rank))
                gen = torch.Generator().manual_seed(_epoch_seed(opts.seed, epoch, 1))
                loss_gen = (
                    gen if rank == 0 else torch.Generator().manual_seed(_epoch_seed(opts.seed, epoch, 200 + rank))
                )
                module.train()
                t0 = time.perf_counter()
                loss_sum, n_steps, tokens = 0.0, 0, 0
                for b, batch in enumerate(batches(epoch, gen)):
                    lr = self.lr_at(step, total_steps)
                    for group in opt.param_groups:
                        group["lr"] = lr
                    opt.zero_grad(set_to_none=True)
                    if ddp is None:
                        value, n_tok = self._step(batch, loss_fn, loss_gen, device)
                    else:
                        value, n_tok = self._distributed_step(ddp, batch, loss_gen, device, comm)
                    self._check_finite(value, epoch, b, step)
                    if cfg.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                    opt.step()
                    if ema is not None:
                        assert cfg.ema_decay is not None
                        self._ema_update(ema, live, min(cfg.ema_decay, (1 + step) / (10 + step)))
                    step += 1
                    n_steps += 1
                    loss_sum += value
                    tokens += int(n_tok)
                    if rank == 0:
                        opts.report(f"{description} epoch {epoch}/{cfg.epochs}", b + 1, num_batches)
                seconds = time.perf_counter() - t0
                row: dict[str, Any] = {
                    "epoch": epoch,
                    "loss": loss_sum / max(n_steps, 1),
                    "lr": self.lr_at(max(step - 1, 0), total_steps),
                    "seconds": seconds,
                    "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
                }
                due = validate is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs)
                if due and rank == 0:
                    assert validate is not None
                    module.eval()
                    t_val = time.perf_counter()
                    threads = torch.get_num_threads()
                    if world > 1 and device.type == "cpu":  # the other local ranks wait meanwhile: use their cores
                        torch.set_num_threads(min(threads * local_world, os.cpu_count() or threads))
                    try:
                        with self._averaged(live, ema):
                            metrics = validate()
                            value = float(metrics.get(cfg.metric, float("nan")))
                            better = best_metric is None or (
                                value > best_metric if cfg.mode == "max" else value < best_metric
                            )
                            if better and cfg.metric in metrics:
                                best_weights = self._weights(module)  # the average's, with ema_decay
                    finally:
                        torch.set_num_threads(threads)
                    row["valid_seconds"] = time.perf_counter() - t_val
                    row.update({f"valid_{k}": float(v) for k, v in metrics.items()})
                    if cfg.metric not in metrics:
                        raise ModelFitError(
                            f"validation returned no {cfg.metric!r} (got: {', '.join(metrics) or 'nothing'})"
                        )
                    if better:
                        best_metric, best_epoch, bad = float(value), epoch, 0
                    else:
                        bad += 1
                        if cfg.patience > 0 and bad >= cfg.patience:
                            stopped = True
                if world > 1 and due:  # the other ranks wait here for rank 0's early-stopping decision
                    decision = torch.tensor(
                        [float(stopped), float(best_epoch), float("nan") if best_metric is None else best_metric],
                        dtype=torch.float64,
                        device=comm,
                    )
                    dist.broadcast(decision, src=0)
                    stopped, best_epoch = bool(decision[0] > 0), int(decision[1])
                    best_metric = None if math.isnan(float(decision[2])) else float(decision[2])
                history.append(row)
                if rank > 0:
                    continue
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
                        "mode": cfg.mode,
                        "history": history,
                    }
                    self._save_checkpoint(folder, module, opt, state, best_weights, ema)
        if cfg.restore_best and best_weights is not None:
            module.load_state_dict(best_weights)
        elif ema is not None:  # no validation (or no restore): the model is the average of the last steps
            with torch.no_grad():
                for key, tensor in live.items():
                    tensor.copy_(ema[key])
        if world > 1:  # every rank returns rank 0's final weights
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)
        module.eval()
        return TrainResult(
            history=history,
            best_epoch=best_epoch,
            best_metric=best_metric,
            epochs_run=len(history),
            stopped_early=stopped,
            seconds=time.perf_counter() - t_begin,
        )
