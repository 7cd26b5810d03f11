"""``attnrec benchmark --config FILE --jobs N``: N cells computed side by side, each by a worker process.

On a machine with several cores, N processes of ``T`` threads each finish a benchmark sooner than one process of
``N x T`` threads: most cells are small models whose steps do not scale across many threads. The parent process
plans the benchmark, starts one worker per cell (``python -m attnrec.cli.benchmark_jobs``: the same plan, one cell
computed exactly as without ``--jobs``, under its time limit, recorded when ``--record`` is given), never more than
N at a time, and starts a cell built on other cells (a ``fusion`` of ``{cell = LABEL}`` members) only once those
have settled. Each worker writes its progress to ``OUT/jobs/DATASET/LABEL/seed-N.log`` (``tail -f`` it) and its
outcome to the ``.json`` beside it; the report is then written from the cells on disk, as always.

Threads: ``--threads T`` is each worker's; without it each worker gets the config's ``threads`` (else the cores)
divided by N, at least 1. Threads decide speed only, never a cell's key (results), so cells computed with or
without ``--jobs`` are the same cells.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

JOBS_DIR = "jobs"
"""Folder of ``--out`` holding each worker's log and outcome file."""
POLL_SECONDS = 0.2


def job_threads(config_threads: int | None, given: int | None, jobs: int) -> int:
    """Threads of each of ``jobs`` workers: ``--threads`` when given, else the config's threads (else the cores)
    divided among the workers, at least 1."""
    if given is not None:
        return given
    total = config_threads if config_threads is not None else (os.cpu_count() or 1)
    return max(1, total // jobs)


def job_files(cell: Any, out: Path) -> tuple[Path, Path]:
    """The worker's log and outcome file of ``cell``."""
    base = out / JOBS_DIR / cell.dataset / cell.model
    return base / f"seed-{cell.seed}.log", base / f"seed-{cell.seed}.json"


def worker_command(cell: Any, args: Any, out: Path, threads: int, result: Path) -> list[str]:
    """The worker's command line (this module as a script)."""
    assert args.config is not None
    cmd = [
        sys.executable,
        "-m",
        "attnrec.cli.benchmark_jobs",
        "--config",
        str(args.config),
        "--out",
        str(out),
        "--cell",
        cell.name,
        "--threads",
        str(threads),
        "--result",
        str(result),
    ]
    if args.device is not None:
        cmd += ["--device", args.device]
    if args.record is not None:
        cmd += ["--record", str(args.record)]
    if args.resume:
        cmd.append("--resume")
    return cmd


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""


def _outcome(cell: Any, proc: subprocess.Popen[bytes], log: Path, result: Path) -> Any:
    """What the worker of ``cell`` reported (or, when it died without a word, a failure naming its log)."""
    from attnrec.evaluation.benchmark import CellOutcome

    try:
        data = json.loads(result.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        why = _last_line(log)
        message = f"its worker exited with code {proc.returncode} without an outcome (log: {log})"
        return CellOutcome(cell, "failed", False, 0.0, message + (f": {why}" if why else ""))
    status = str(data.get("status", "failed"))
    if status not in ("done", "timeout", "failed"):
        status = "failed"
    return CellOutcome(
        cell,
        status,  # type: ignore[arg-type]
        bool(data.get("skipped", False)),
        float(data.get("seconds", 0.0)),
        str(data.get("message", "")),
        data.get("metrics") if isinstance(data.get("metrics"), dict) else None,
    )


def run_jobs(plan: Any, cells: list[Any], args: Any, err_console: Console, *, out: Path, show: bool) -> dict[str, Any]:
    """Compute the unfinished ``cells`` with ``args.jobs`` workers side by side; returns every cell's outcome."""
    from attnrec.cli.benchmark import _cell_line, interrupted_line
    from attnrec.cli.progress import RichProgress
    from attnrec.evaluation.benchmark import CellOutcome, is_finished, read_marker

    jobs = int(args.jobs)
    threads = job_threads(plan.config.threads, args.threads, jobs)
    outcomes: dict[str, CellOutcome] = {}
    pending: list[Any] = []
    for cell in cells:
        if is_finished(cell):
            marker = read_marker(cell) or {}
            status = str(marker.get("status", "done"))
            outcomes[cell.name] = CellOutcome(cell, status, True, float(marker.get("seconds", 0.0)))  # type: ignore[arg-type]
        else:
            pending.append(cell)
    total = len(cells)
    done = len(outcomes)
    computed: list[float] = []
    running: dict[str, tuple[Any, subprocess.Popen[bytes], Path, Path]] = {}
    if show and pending:
        err_console.print(
            f"{jobs} jobs side by side, {threads} thread(s) each; logs in {out / JOBS_DIR}", highlight=False
        )
    with RichProgress(err_console, enabled=show) as progress:
        progress("cells", done, total)
        try:
            while pending or running:
                unsettled = {c.name for c in pending} | set(running)
                for cell in list(pending):
                    if len(running) >= jobs:
                        break
                    if any(need.name in unsettled for need in cell.needs):
                        continue  # its members first
                    pending.remove(cell)
                    log, result = job_files(cell, out)
                    log.parent.mkdir(parents=True, exist_ok=True)
                    result.unlink(missing_ok=True)
                    with log.open("wb") as sink:
                        proc = subprocess.Popen(
                            worker_command(cell, args, out, threads, result),
                            stdout=sink,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                        )
                    running[cell.name] = (cell, proc, log, result)
                    if show:
                        progress.console.print(f"cell {cell.name}: started (log {log})", highlight=False)
                for name, (cell, proc, log, result) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    del running[name]
                    outcome = _outcome(cell, proc, log, result)
                    outcomes[name] = outcome
                    done += 1
                    if not outcome.skipped:
                        computed.append(outcome.seconds)
                    progress("cells", done, total)
                    if show:
                        line = _cell_line(outcome, done, total, computed, plan, jobs=jobs)
                        progress.console.print(line, highlight=False)
                _wait(POLL_SECONDS if running else 0.0)
        except KeyboardInterrupt:
            _stop(running)
            if show:
                progress.console.print(interrupted_line(cells), highlight=False)
            raise
        finally:
            _stop(running)
    return outcomes


def _wait(seconds: float) -> None:
    """The scheduler's pause between polls of its workers."""
    time.sleep(seconds)


def _stop(running: dict[str, tuple[Any, subprocess.Popen[bytes], Path, Path]]) -> None:
    """Interrupt the running workers (as Ctrl-C would), then kill those that do not exit within 10 s."""
    procs = [proc for _, proc, _, _ in running.values() if proc.poll() is None]
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10.0
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    running.clear()


# ------------------------------------------------------------------------------------------------------ worker
def worker_main(argv: list[str] | None = None) -> int:
    """One cell of a benchmark (the worker ``run_jobs`` starts): plan as the parent did, compute the cell, write
    its outcome as JSON to ``--result``. Exit code 0 when the outcome was written (whatever it says)."""
    from attnrec.cli.benchmark import BenchmarkArgs, compute_cell
    from attnrec.cli.main import _max_epochs, _TrainReporter
    from attnrec.evaluation.benchmark import plan_benchmark, read_benchmark_config
    from attnrec.io import write_json

    parser = argparse.ArgumentParser(prog="python -m attnrec.cli.benchmark_jobs", description=worker_main.__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cell", required=True, help="DATASET/LABEL/seed-N")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--device", default=None)
    parser.add_argument("--record", type=Path, default=None)
    parser.add_argument("--resume", action="store_true")
    ns = parser.parse_args(argv)
    config = read_benchmark_config(ns.config)
    plan = plan_benchmark(
        config,
        ns.out,
        source=ns.config,
        base_dir=ns.config.parent,
        threads=ns.threads,
        device=ns.device,
        where=str(ns.config),
    )
    cell = next((c for c in plan.cells if c.name == ns.cell), None)
    if cell is None:
        raise SystemExit(f"--cell {ns.cell}: no such cell in {ns.config}")
    args = BenchmarkArgs(
        models=None,
        out=ns.out,
        config_dir=None,
        config=ns.config,
        resume=ns.resume,
        update_docs=None,
        section=None,
        json_out=False,
        quiet=False,
        device=ns.device,
        command="",
        record=ns.record,
    )
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    console.print(f"cell {cell.name}: {ns.threads} thread(s), pid {os.getpid()}")
    reporter = _TrainReporter(console, cell.model, quiet=False)
    reporter.max_epochs = _max_epochs(cell.run_config)
    outcome = compute_cell(cell, args, ns.out, progress=None, reporter=reporter, flat=False, show_data=True)
    console.print(f"cell {cell.name}: {outcome.status} in {outcome.seconds:.1f} s {outcome.message}".rstrip())
    tmp = ns.result.with_name(ns.result.name + ".tmp")
    write_json(
        tmp,
        {
            "cell": cell.name,
            "status": outcome.status,
            "skipped": outcome.skipped,
            "seconds": outcome.seconds,
            "message": outcome.message,
            "metrics": outcome.metrics,
        },
    )
    os.replace(tmp, ns.result)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as the worker process
    sys.exit(worker_main())
