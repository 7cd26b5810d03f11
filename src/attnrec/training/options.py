"""Options that concern how a model is trained, not what it is (seed, threads, device, progress, checkpoints)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attnrec.errors import ConfigError


def resolve_device(spec: str | torch.device, parameter: str = "device") -> torch.device:
    """The torch device of a ``device`` setting: ``"auto"`` (the first CUDA GPU when there is one, else the CPU),
    ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. Raises :class:`ConfigError` naming ``parameter`` for anything else and
    for a CUDA device this machine does not have."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = spec.strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"the '{parameter}' option must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {spec!r}")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"the '{parameter}' option asks for {spec!r} but this machine has no CUDA GPU")
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"the '{parameter}' option asks for {spec!r} but this machine has {count} CUDA GPU"
                f"{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})"
            )
    return device


ProgressCallback = Callable[[str, float, float | None], None]
"""``callback(description, completed, total)``; ``total`` is ``None`` when unknown."""


@dataclass(frozen=True)
class TrainingOptions:
    """How to train.

    Attributes:
        seed: seed of every random generator the model uses (numpy, torch).
        threads: torch/BLAS intra-op threads; ``None`` keeps the current setting.
        device: torch device string ("cpu").
        progress: optional callback for progress reports (the CLI draws rich progress bars from it).
        checkpoint_dir: folder for per-epoch checkpoints (neural models); ``None`` disables them.
        resume: continue from the checkpoint in ``checkpoint_dir`` when one exists.
        log: optional callback receiving one dict per epoch (history rows).
        processes: data-parallel training processes on this machine (Linux ``fork``; gradients are averaged
            with a gloo all-reduce after every step). Each process runs ``threads`` threads (``None``: the
            current count divided by ``processes``). Measured on 2 cores: 2 processes of 1 thread train SASRec
            5-9% faster than 1 process of 2 threads (``docs/training.md``). Non-neural models ignore it.
    """

    seed: int = 42
    threads: int | None = None
    device: str = "cpu"
    progress: ProgressCallback | None = None
    checkpoint_dir: Path | None = None
    resume: bool = False
    log: Callable[[dict[str, Any]], None] | None = None
    processes: int = 1

    def __post_init__(self) -> None:
        if self.processes < 1:
            raise ConfigError(f"the 'processes' training option must be >= 1; got {self.processes}")

    def report(self, description: str, completed: float, total: float | None = None) -> None:
        if self.progress is not None:
            self.progress(description, completed, total)
