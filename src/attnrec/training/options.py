"""Options that concern how a model is trained, not what it is (seed, threads, device, progress, checkpoints)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """

    seed: int = 42
    threads: int | None = None
    device: str = "cpu"
    progress: ProgressCallback | None = None
    checkpoint_dir: Path | None = None
    resume: bool = False
    log: Callable[[dict[str, Any]], None] | None = None

    def report(self, description: str, completed: float, total: float | None = None) -> None:
        if self.progress is not None:
            self.progress(description, completed, total)
