"""``attnrec train --processes N``: run the same command in N processes under torchrun (torch.distributed.run).

The launcher is torchrun itself (``torch.distributed.run``, run in this process so that its failure report
becomes one line): ``attnrec train --processes 2 ARGS`` is
``python -m torch.distributed.run --standalone --nproc-per-node 2 -m attnrec.cli.main train ARGS``, and with
``--nnodes``/``--node-rank``/``--master-addr``/``--master-port`` the static multi-machine rendezvous instead of
``--standalone``. The workers see ``ATTNREC_LAUNCHER_PID``: they end themselves when the launcher dies (even by
SIGKILL), leave printing their errors to it (one line for the whole job), and record them in torchrun's error
file.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

from attnrec.errors import AttnRecError, ConfigError

LAUNCHER_ENV = "ATTNREC_LAUNCHER_PID"
LOST_PEER_STATUS = 3
"""Exit status of a worker whose error is a consequence of another process failing (a broken connection)."""


def lost_peer(exc: BaseException) -> bool:
    """Whether ``exc`` says another process of the job went away (torch.distributed communication errors)."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistNetworkError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        k in text for k in ("connection closed by peer", "connection reset", "broken pipe", "gloo")
    )


class JobFailedError(AttnRecError):
    """A training process of a multi-process job failed; the message names it and its error."""


def torchrun_args(
    command: Sequence[str],
    processes: int,
    *,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int = 29500,
) -> list[str]:
    """The arguments of ``python -m torch.distributed.run`` that run ``attnrec COMMAND`` in ``processes``
    processes on this machine (``--standalone``), or on ``nnodes`` machines through ``master_addr``."""
    if processes < 1:
        raise ConfigError(f"--processes must be >= 1; got {processes}")
    if nnodes < 1:
        raise ConfigError(f"--nnodes must be >= 1; got {nnodes}")
    if not 0 <= node_rank < nnodes:
        raise ConfigError(f"--node-rank must be within 0..{nnodes - 1} (--nnodes {nnodes}); got {node_rank}")
    if not 0 < master_port < 65536:
        raise ConfigError(f"--master-port must be within 1..65535; got {master_port}")
    if nnodes > 1 and not master_addr:
        raise ConfigError(f"--nnodes {nnodes} needs --master-addr HOST: the address of the machine with --node-rank 0")
    args = ["--nproc-per-node", str(processes)]
    if master_addr is None:
        args = ["--standalone", *args]
    else:
        args += [
            "--nnodes",
            str(nnodes),
            "--node-rank",
            str(node_rank),
            "--master-addr",
            master_addr,
            "--master-port",
            str(master_port),
        ]
    return [*args, "-m", "attnrec.cli.main", *command]


def command_args(ctx: Any, drop: Sequence[str]) -> list[str]:
    """The command line of the running command (a click context) rebuilt from what was parsed (options the
    user gave only), without the parameters named in ``drop``: what each torchrun worker runs."""
    args = [ctx.info_name or ctx.command.name or ""]
    for param in ctx.command.params:
        name = param.name or ""
        source = ctx.get_parameter_source(name)
        if name in drop or source is None or source.name == "DEFAULT":
            continue
        value = ctx.params.get(name)
        if param.param_type_name == "argument":
            args += [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        elif param.is_flag and param.secondary_opts:
            args.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.is_flag:
            if value:
                args.append(param.opts[0])
        elif value is not None:
            for v in value if param.multiple else [value]:
                args += [param.opts[0], str(v)]
    return args


def _message(failure: Any, rank: int, world: int) -> str:
    """One line for one failed process of torchrun's report."""
    who = f"training process {rank} of {world}"
    if failure.exitcode < 0:
        try:
            name = signal.Signals(-failure.exitcode).name
        except ValueError:
            name = f"signal {-failure.exitcode}"
        return f"{who} was killed by {name}; the job was stopped"
    text = failure.message if isinstance(failure.message, str) else json.dumps(failure.message)
    if not text or text.startswith("To enable traceback"):
        return f"{who} exited with status {failure.exitcode}; the job was stopped"
    return text if rank == 0 else f"{who}: {text}"


def failure_line(failures: dict[int, Any], world: int) -> str:
    """The root cause of a failed job as one line: a process killed by a signal other than the SIGTERM torchrun
    sends the survivors, else an attnrec error (exit status 2), else the earliest failure."""

    def order(item: tuple[int, Any]) -> tuple[int, int, int]:
        rank, failure = item
        code = failure.exitcode
        killed = code < 0 and code != -signal.SIGTERM
        kind = 0 if killed else 1 if code == 2 else 3 if code == LOST_PEER_STATUS else 2
        return (kind, failure.timestamp, rank)

    rank, failure = min(failures.items(), key=order)
    return _message(failure, rank, world)


def run_torchrun(args: list[str], *, threads_per_process: int | None) -> None:
    """Run ``torch.distributed.run`` with ``args`` in this process until the job ends.

    Raises :class:`JobFailedError` with one line naming the failed process and its error (its traceback, if
    any, was recorded by torchrun), or ``KeyboardInterrupt`` when the launcher was interrupted.
    """
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    parsed = get_args_parser().parse_args(args)
    # this process only launches: its environment is what the workers inherit
    os.environ[LAUNCHER_ENV] = str(os.getpid())
    if threads_per_process is not None and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(threads_per_process)
    for name in list(logging.root.manager.loggerDict):  # torchrun's own log lines: the error line says it all
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    world = int(parsed.nproc_per_node) * int(str(parsed.nnodes).split(":")[-1])
    try:
        run(parsed)
    except ChildFailedError as exc:
        raise JobFailedError(failure_line(exc.failures, world)) from None
    except SignalException:
        raise KeyboardInterrupt from None


def worker_setup() -> None:
    """In a worker started by :func:`run_torchrun`: end with the launcher."""
    from attnrec.training.distributed import watch_parent

    pid = os.environ.get(LAUNCHER_ENV, "")
    if pid.isdigit():
        watch_parent(int(pid))


def in_launched_worker() -> bool:
    return os.environ.get(LAUNCHER_ENV, "").isdigit() and "TORCHELASTIC_RUN_ID" in os.environ


def record_worker_error(message: str) -> None:
    """Write a worker's one-line error where torchrun reads it (``TORCHELASTIC_ERROR_FILE``)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"message": message, "timestamp": int(time.time())}, fh)
    except OSError:
        pass
