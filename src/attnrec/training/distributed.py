"""torch.distributed for the training loop: who am I (rank), the process group, and splitting batches by rows.

Multi-process training is started the standard way, by ``torchrun`` (or ``attnrec train --processes N``, which
runs torchrun): torchrun sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each
process, and :class:`~attnrec.training.trainer.Trainer` joins (or creates) the default process group from them.
The helpers here read the process group when one is initialised, else those variables; nothing is written.
"""

from __future__ import annotations

import datetime
import itertools
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from attnrec.errors import ConfigError

_GENERATION = itertools.count()
"""How many process groups this process created (their store keys must differ)."""

TIMEOUT = datetime.timedelta(hours=6)
"""How long a process waits for the others at a collective (rank 0 validates while the others wait)."""


def _initialized() -> bool:
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized())


def _env_int(name: str, default: int, env: Mapping[str, str] | None) -> int:
    value = (os.environ if env is None else env).get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise ConfigError(f"the environment variable {name} must be an integer; got {value!r}") from None


def world_size(env: Mapping[str, str] | None = None) -> int:
    """Number of training processes: the default process group's size, else ``WORLD_SIZE`` (else 1)."""
    if env is None and _initialized():
        import torch.distributed as dist

        return int(dist.get_world_size())
    return _env_int("WORLD_SIZE", 1, env)


def rank(env: Mapping[str, str] | None = None) -> int:
    """This process's global rank: the default process group's, else ``RANK`` (else 0)."""
    if env is None and _initialized():
        import torch.distributed as dist

        return int(dist.get_rank())
    return _env_int("RANK", 0, env)


def local_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank on its machine (``LOCAL_RANK``, else 0): its GPU index with CUDA."""
    return _env_int("LOCAL_RANK", 0, env)


def local_world_size(env: Mapping[str, str] | None = None) -> int:
    """Number of training processes on this machine (``LOCAL_WORLD_SIZE``, else 1)."""
    return _env_int("LOCAL_WORLD_SIZE", 1, env)


def is_main_process(env: Mapping[str, str] | None = None) -> bool:
    """True in rank 0 (and in a plain single-process run): the process that writes files and prints."""
    return rank(env) == 0


def launched(env: Mapping[str, str] | None = None) -> bool:
    """True inside a multi-process job: an initialised process group of 2+ processes, or torchrun's variables
    with ``WORLD_SIZE`` > 1."""
    return world_size(env) > 1


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_process_group(device: torch.device) -> bool:
    """Join the job's default process group from torchrun's variables unless one is already initialised.

    Returns True when this call created it (the caller then destroys it with :func:`destroy_process_group`).
    """
    import torch.distributed as dist

    if _initialized():
        return False
    env = os.environ
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if not env.get(name)]
    if missing:
        raise ConfigError(
            f"multi-process training needs the variables torchrun sets; missing {', '.join(missing)} "
            "(launch with `torchrun --nproc-per-node N script.py`)"
        )
    kwargs: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    # the env:// store outlives a group (torchrun's agent hosts it) and a new default group reuses the old
    # one's keys: each group this process creates gets keys of its own (every rank creates them in order)
    store, group_rank, size = next(dist.rendezvous("env://", timeout=TIMEOUT))
    store = dist.PrefixStore(f"attnrec/{next(_GENERATION)}", store)
    dist.init_process_group(
        backend=backend_for(device), store=store, rank=group_rank, world_size=size, timeout=TIMEOUT, **kwargs
    )
    return True


def destroy_process_group() -> None:
    import torch.distributed as dist

    if _initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- batches
def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor moved to ``device``: a tensor, or tuples / lists / dicts of them, nested;
    other values (ints, strings, None) are kept as they are."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=device.type == "cuda")
    if isinstance(batch, dict):
        return type(batch)((k, to_device(v, device)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _tensors(batch: Any) -> list[Tensor]:
    if isinstance(batch, Tensor):
        return [batch]
    if isinstance(batch, dict):
        return [t for v in batch.values() for t in _tensors(v)]
    if isinstance(batch, (tuple, list)):
        return [t for v in batch for t in _tensors(v)]
    return []


def batch_rows(batch: Any) -> int:
    """The number of rows of a batch: the common first dimension of its tensors (0-d tensors do not count).

    Raises :class:`ConfigError` when the batch has no tensor with rows or its tensors disagree.
    """
    sizes = {int(t.shape[0]) for t in _tensors(batch) if t.ndim > 0}
    if len(sizes) != 1:
        shapes = ", ".join(str(tuple(t.shape)) for t in _tensors(batch)) or type(batch).__name__
        raise ConfigError(
            "multi-process training splits each batch by rows, so its tensors must share their first dimension; "
            f"got {shapes}"
        )
    return sizes.pop()


def shard(batch: Any, rank: int, world: int) -> Any:
    """Rows ``rank, rank + world, ...`` of every tensor of ``batch`` (nested tuples / lists / dicts); 0-d
    tensors and other values are kept whole."""
    if isinstance(batch, Tensor):
        return batch[rank::world] if batch.ndim > 0 else batch
    if isinstance(batch, dict):
        return type(batch)((k, shard(v, rank, world)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(shard(v, rank, world) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard(v, rank, world) for v in batch)
    return batch


def watch_parent(parent: int | None = None, poll_seconds: float = 1.0) -> None:
    """End this process (exit status 1) when its parent dies: torchrun starts its workers in their own
    sessions, so a launcher killed with SIGKILL would otherwise leave them training. For command-line workers
    only (a daemon thread polls ``os.getppid()``). ``parent``: the pid the parent must have (default: the
    current parent); a process whose parent is already gone exits at once."""
    import threading
    import time

    if parent is None:
        parent = os.getppid()
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="attnrec-watch-parent", daemon=True).start()
