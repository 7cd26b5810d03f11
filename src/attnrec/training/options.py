"""Options that concern how a model is trained, not what it is (seed, threads, device, progress, checkpoints)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attnrec.errors import ConfigError


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (``None``: as they are) and restore the caller's
    setting afterwards. A ``--threads`` option must hold for everything a command does: the scoring after
    training too, not only the training loop (with two 1-thread benchmark processes on 2 cores, an evaluation
    at the default thread count oversubscribed the cores and ran many times slower)."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise ConfigError(f"the 'threads' option must be >= 1; got {threads}")
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


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
        device: ``"auto"`` (the first CUDA GPU when there is one, else the CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``; checked when the options are made (:func:`resolve_device`). In a multi-process job
            ``"auto"`` and ``"cuda"`` mean each process's own GPU, ``cuda:LOCAL_RANK`` (:meth:`torch_device`).
        progress: optional callback for progress reports (the CLI draws rich progress bars from it).
        checkpoint_dir: folder for per-epoch checkpoints (neural models); ``None`` disables them.
        resume: continue from the checkpoint in ``checkpoint_dir`` when one exists.
        log: optional callback receiving one dict per epoch (history rows).
        processes: training processes. Multi-process training runs on torch.distributed and is started by
            ``torchrun`` (or ``attnrec train --processes N``, which runs torchrun): inside such a job the
            trainer takes the number of processes from the job, and ``processes`` must be 1 or equal to it.
            ``processes > 1`` outside a torchrun job is a :class:`ConfigError` (a Python program cannot start
            the other processes itself). Non-neural models ignore it.
    """

    seed: int = 42
    threads: int | None = None
    device: str = "auto"
    progress: ProgressCallback | None = None
    checkpoint_dir: Path | None = None
    resume: bool = False
    log: Callable[[dict[str, Any]], None] | None = None
    processes: int = 1

    def __post_init__(self) -> None:
        if self.processes < 1:
            raise ConfigError(f"the 'processes' training option must be >= 1; got {self.processes}")
        resolve_device(self.device, "device")

    def torch_device(self) -> torch.device:
        """The device this process trains on: :func:`resolve_device` of ``device``, except that in a
        multi-process job ``"auto"`` (with a GPU) and ``"cuda"`` mean ``cuda:LOCAL_RANK``."""
        from attnrec.training import distributed

        device = resolve_device(self.device, "device")
        if device.type == "cuda" and device.index is None and distributed.launched():
            return resolve_device(f"cuda:{distributed.local_rank()}", "device")
        return device

    def report(self, description: str, completed: float, total: float | None = None) -> None:
        if self.progress is not None:
            self.progress(description, completed, total)
