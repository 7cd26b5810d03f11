"""``attnrec benchmark``: models x datasets x seeds from a config file (or one dataset from the command line),
resumable cells, progress with an ETA, and the report folder (``attnrec.evaluation.report``)."""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from attnrec.cli import options as o
from attnrec.errors import ConfigError


@dataclass(frozen=True)
class BenchmarkArgs:
    """The command's own options (the data options arrive as :class:`attnrec.cli.options.LogOptions`)."""

    models: str | None
    out: Path | None
    config_dir: Path | None
    config: Path | None
    resume: bool
    update_docs: Path | None
    section: str | None
    json_out: bool
    quiet: bool
    device: str | None
    command: str
    report_only: bool = False
    """Write the report (and the docs section) from the cells already finished; compute none."""
    only: tuple[str, ...] = ()
    """``DATASET`` or ``DATASET/LABEL`` selectors: compute only those cells (config form); empty = all."""
    record: Path | None = None
    """The benchmark's record (``attnrec.evaluation.record``): restored into ``--out`` first, kept up to date."""
    jobs: int = 1
    """Cells computed side by side, each by a worker process (config form; ``attnrec.cli.benchmark_jobs``)."""
    threads: int | None = None
    """``--threads`` as given (``None``: the config's): with ``jobs`` > 1, the threads of each worker."""


def selected_cells(plan: Any, only: tuple[str, ...]) -> list[Any]:
    """The cells ``--only`` selects (all without selectors): ``DATASET``, ``DATASET/LABEL`` or
    ``DATASET/LABEL/seed-N`` (also ``.../N``); a selector that names no dataset, model or seed of the plan is a
    :class:`ConfigError` naming the valid ones. A fusion cell's member cells are selected with it."""
    if not only:
        return list(plan.cells)
    datasets = [d.name for d in plan.datasets]
    labels = [m.key for m in plan.config.models]
    seeds = [int(s) for s in plan.config.seeds]
    wanted: set[tuple[str, str | None, int | None]] = set()
    for selector in only:
        dataset, _, rest = selector.partition("/")
        label, _, seed_text = rest.partition("/")
        if dataset not in datasets:
            raise ConfigError(
                f"--only {selector!r}: no dataset {dataset!r} in the config (datasets: {', '.join(datasets)})"
            )
        if label and label not in labels:
            raise ConfigError(f"--only {selector!r}: no model {label!r} in the config (models: {', '.join(labels)})")
        seed: int | None = None
        if seed_text:
            number = seed_text.removeprefix("seed-")
            if not label or not number.isdigit() or int(number) not in seeds:
                raise ConfigError(
                    f"--only {selector!r}: the third part must be a seed of the config as seed-N or N after "
                    f"DATASET/LABEL (seeds: {', '.join(str(s) for s in seeds)})"
                )
            seed = int(number)
        wanted.add((dataset, label or None, seed))
    chosen: dict[str, Any] = {}

    def add(cell: Any) -> None:
        for need in cell.needs:
            add(need)
        chosen.setdefault(cell.name, cell)

    for cell in plan.cells:
        if wanted & {
            (cell.dataset, None, None),
            (cell.dataset, cell.model, None),
            (cell.dataset, cell.model, cell.seed),
        }:
            add(cell)
    return [c for c in plan.cells if c.name in chosen]


@contextmanager
def alarm_guard(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CellTimeoutError` in the block after ``seconds`` of wall time (``SIGALRM``; main thread on Unix
    only, elsewhere no limit). The exception arrives between Python bytecodes, so a long native call (one big
    matrix product) finishes first."""
    from attnrec.evaluation.benchmark import CellTimeoutError

    usable = seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return
    assert seconds is not None

    def handler(signum: int, frame: Any) -> None:
        raise CellTimeoutError(f"time limit of {seconds:g} s reached")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _legacy_config(log: o.LogOptions, names: list[str], config_dir: Path | None, device: str | None) -> Any:
    """The single-dataset command line form as a benchmark config: one dataset, one seed (``--seed``)."""
    from attnrec.cli.main import parse_params
    from attnrec.evaluation.benchmark import parse_benchmark_config

    spec = log.data_spec()
    settings = log.run_settings()
    rename = {"items_path": "items", "users_path": "users", "item_id_map": "item_map"}
    entry: dict[str, Any] = {rename.get(k, k): v for k, v in spec.items() if v is not None and v is not False}
    entry.update({k: v for k, v in settings.items() if k not in ("seed", "threads", "ks") and v is not None})
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", Path(str(spec["path"])).stem).lstrip("._-") or "data"
    entry["name"] = stem
    ks = list(settings["ks"])
    ctr = log.task == "ctr"
    models = []
    for name in names:
        cfg_file = None if config_dir is None else config_dir / f"{name}.toml"
        params = parse_params(cfg_file if cfg_file is not None and cfg_file.is_file() else None, None)
        models.append({"name": name, "params": params})
    raw: dict[str, Any] = {
        "name": stem,
        "seeds": [settings["seed"]],
        "ks": ks,
        "metric": "auc" if ctr else f"ndcg@{ks[0]}",
        "datasets": [entry],
        "models": models,
        "device": device or "auto",
    }
    if ctr:
        raw["columns"] = ["auc", "gauc", "logloss"]
    if settings["threads"] is not None:
        raw["threads"] = settings["threads"]
    return parse_benchmark_config(raw, where="benchmark")


def _given_data_options(log: o.LogOptions) -> list[str]:
    """The shared options given with ``--config`` (only ``--threads`` may be: it decides speed, not results)."""
    defaults = o.LogOptions()
    return [
        "--" + f.name.replace("_", "-")
        for f in fields(o.LogOptions)
        if f.name != "threads" and getattr(log, f.name) != getattr(defaults, f.name)
    ]


def run_benchmark(log: o.LogOptions, args: BenchmarkArgs, out_console: Console, err_console: Console) -> None:
    """The command: plan, run every unfinished cell, write the report, print the table."""
    from attnrec.cli.main import _print_metrics_table
    from attnrec.evaluation.benchmark import plan_benchmark, read_benchmark_config
    from attnrec.evaluation.report import (
        build_report,
        docs_block,
        report_json,
        table_rows,
        update_docs_section,
        write_report,
    )
    from attnrec.training.options import resolve_device

    if args.device is not None:
        resolve_device(args.device, "--device")
    if args.config is not None:
        extra = _given_data_options(log)
        if extra:
            raise ConfigError(f"{extra[0]} cannot be given with --config: the config file declares the datasets")
        if args.models is not None or args.config_dir is not None:
            flag = "--models" if args.models is not None else "--config-dir"
            raise ConfigError(f"{flag} cannot be given with --config: the config file declares the models")
        config = read_benchmark_config(args.config)
        out = args.out or Path("runs") / "benchmark" / config.name
        plan = plan_benchmark(
            config,
            out,
            source=args.config,
            base_dir=args.config.parent,
            threads=log.threads,
            device=args.device,
            where=str(args.config),
        )
        flat = False
    else:
        if args.only:
            raise ConfigError("--only selects cells of a --config benchmark; the one-dataset form runs every model")
        names = [m.strip() for m in (args.models or "").split(",") if m.strip()]
        if args.models is not None and not names:
            raise ConfigError(f"--models must list model names; got {args.models!r}")
        if args.out is None:
            raise ConfigError("benchmark needs --out DIR (or --config FILE)")
        for flag, path in (("--data", log.data), ("--items", log.items), ("--users", log.users)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{flag} {path}: file not found")
        config = _legacy_config(log, names, args.config_dir, args.device)
        out = args.out
        plan = plan_benchmark(config, out, flat=True, device=args.device, where="benchmark")
        flat = True
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1 (cells computed side by side); got {args.jobs}")
    if args.jobs > 1 and flat:
        raise ConfigError(
            "--jobs computes the cells of a --config benchmark side by side; the one-dataset form runs "
            "its models one after the other"
        )
    if args.section is not None and args.update_docs is None:
        raise ConfigError("--section names the docs section that --update-docs FILE rewrites: give --update-docs")

    if args.record is not None:
        from attnrec.evaluation.record import sync_record

        restored, saved = sync_record(plan.cells, out, args.record)
        if not (args.quiet or args.json_out):
            err_console.print(
                f"record {args.record}: {restored} cells restored into {out}, {saved} cells recorded", highlight=False
            )
    outcomes = {} if args.report_only else _run_cells(plan, args, err_console, flat=flat, out=out)
    report = build_report(plan, outcomes, command=args.command)
    folder = write_report(report, out, source=plan.source)
    if args.update_docs is not None:
        section = args.section or config.name
        block = docs_block(report, command=_docs_command(args, out, section, log.threads))
        changed = update_docs_section(args.update_docs, section, block)
        if not args.json_out:
            state = "updated" if changed else "unchanged (same results)"
            err_console.print(f"{args.update_docs}: section {args.section or config.name!r} {state}", highlight=False)
    failed = [oc for oc in outcomes.values() if oc.status == "failed"]
    if args.json_out:
        if flat:
            results = {oc.cell.model: oc.metrics for oc in outcomes.values() if oc.metrics is not None}
            sys.stdout.write(json.dumps(results, indent=2) + "\n")
        else:
            sys.stdout.write(json.dumps(report_json(report), indent=2) + "\n")
    elif flat:
        rows = {oc.cell.model: oc.metrics for oc in outcomes.values() if oc.metrics is not None}
        if rows:
            _print_metrics_table(rows, title=f"{log.data}: test")
    if not args.json_out:
        for ds in report.datasets if not flat else []:
            header, cells = table_rows(report, ds)
            table = Table(title=f"{ds.name}: test (mean ± sd over seeds)")
            for i, name in enumerate(header):
                table.add_column(name, justify="left" if i == 0 else "right")
            for row in cells:
                table.add_row(*(c.replace("**", "") for c in row))
            out_console.print(table)
        out_console.print(f"report: {folder / 'report.md'} and {folder / 'report.html'}", highlight=False)
    if failed:
        first = failed[0]
        raise ConfigError(
            f"{len(failed)} of {len(plan.cells)} cells failed (first: {first.cell.name}: {first.message}); "
            "the report lists them and a rerun of the same command retries them"
        )


def _docs_command(args: BenchmarkArgs, out: Path, section: str, threads: int | None) -> str:
    """The command a docs section names: what regenerates it, without presentation flags (``--quiet``,
    ``--json``, ``--resume``), so that the section's text depends on the results only."""
    import shlex

    parts = ["attnrec", "benchmark"]
    if args.config is not None:
        parts += ["--config", str(args.config)]
    else:  # the one-dataset form: its own words
        return args.command
    parts += ["--out", str(out)]
    if args.record is not None:
        parts += ["--record", str(args.record)]
    if threads is not None:
        parts += ["--threads", str(threads)]
    if args.device is not None:
        parts += ["--device", args.device]
    parts += ["--update-docs", str(args.update_docs), "--section", section]
    return shlex.join(parts)


def _run_cells(plan: Any, args: BenchmarkArgs, err_console: Console, *, flat: bool, out: Path) -> dict[str, Any]:
    from attnrec.cli.main import _max_epochs, _TrainReporter
    from attnrec.cli.progress import RichProgress
    from attnrec.evaluation.benchmark import CellOutcome, is_finished

    cells = selected_cells(plan, args.only)
    total = len(cells)
    finished = sum(1 for c in cells if is_finished(c))
    show = not (args.quiet or args.json_out)
    if show:
        chosen = f", {total} selected by --only" if args.only else ""
        err_console.print(
            f"benchmark {plan.config.name}: {len(plan.cells)} cells ({len(plan.datasets)} datasets x "
            f"{len(plan.config.models)} models x {len(plan.config.seeds)} seeds){chosen}, {finished} already finished",
            highlight=False,
        )
    if args.jobs > 1:
        from attnrec.cli.benchmark_jobs import run_jobs

        return run_jobs(plan, cells, args, err_console, out=out, show=show)
    outcomes: dict[str, CellOutcome] = {}
    computed: list[float] = []
    done = 0
    shown_data: set[str] = set()
    with RichProgress(err_console, enabled=show) as progress:
        progress("cells", done, total)
        try:
            for cell in cells:
                reporter = _TrainReporter(progress.console, cell.model, quiet=not show)
                if show and not is_finished(cell):
                    reporter.max_epochs = _max_epochs(cell.run_config)
                first_of_dataset = show and cell.dataset not in shown_data
                outcome = compute_cell(
                    cell,
                    args,
                    out,
                    progress=progress,
                    reporter=reporter,
                    flat=flat,
                    show_data=first_of_dataset,
                )
                if not outcome.skipped:
                    shown_data.add(cell.dataset)
                outcomes[cell.name] = outcome
                done += 1
                if not outcome.skipped:
                    computed.append(outcome.seconds)
                progress("cells", done, total)
                if show:
                    progress.console.print(_cell_line(outcome, done, total, computed, plan), highlight=False)
        except KeyboardInterrupt:
            if show:
                progress.console.print(interrupted_line(cells), highlight=False)
            raise
    return outcomes


def interrupted_line(cells: list[Any]) -> str:
    """What an interrupted benchmark says: how many of its ``cells`` are finished, and how to continue."""
    from attnrec.evaluation.benchmark import is_finished

    left = sum(1 for c in cells if not is_finished(c))
    return (
        f"interrupted: {len(cells) - left} of {len(cells)} cells finished and kept; run the same command again to "
        "continue (--resume also continues an interrupted neural cell from its checkpoints)"
    )


def compute_cell(
    cell: Any, args: BenchmarkArgs, out: Path, *, progress: Any, reporter: Any, flat: bool, show_data: bool
) -> Any:
    """Compute one cell unless it is finished (:func:`attnrec.evaluation.benchmark.run_cell` under the cell's
    time limit) and record it; an error of the cell is its outcome ``failed`` (the one-dataset form raises it)."""
    from attnrec.errors import AttnRecError
    from attnrec.evaluation.benchmark import CellOutcome, run_cell

    try:
        outcome = run_cell(
            cell,
            resume=args.resume,
            replace_stale=not flat,
            progress=progress,
            on_data_loaded=reporter.data_loaded if show_data else None,
            on_epoch=reporter.epoch,
            time_guard=alarm_guard,
        )
    except KeyboardInterrupt:
        raise
    except AttnRecError as exc:
        if flat:
            raise
        outcome = CellOutcome(cell, "failed", False, 0.0, " ".join(str(exc).split()))
    except Exception as exc:  # a bug in one cell: the others still run, the report says which
        if flat:
            raise
        outcome = CellOutcome(cell, "failed", False, 0.0, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
    if not outcome.skipped and args.record is not None and outcome.status != "failed":
        from attnrec.evaluation.record import save_cell

        save_cell(cell, out, args.record)  # at once: an interrupted run keeps it recorded
    return outcome


def _cell_line(outcome: Any, done: int, total: int, computed: list[float], plan: Any, *, jobs: int = 1) -> str:
    from attnrec.cli.main import _duration

    cell = outcome.cell
    head = f"cell {done}/{total} {cell.name}: "
    metric = plan.config.metric
    if outcome.status == "done":
        value = (outcome.metrics or {}).get("test", {}).get(metric)
        text = f"test {metric} {value:.4f}" if isinstance(value, float) else "done"
        text += " (already finished)" if outcome.skipped else f" in {_duration(outcome.seconds)}"
    elif outcome.status == "timeout":
        text = "timed out" + (" (already recorded)" if outcome.skipped else f" after {_duration(outcome.seconds)}")
    else:
        text = f"failed: {outcome.message}"
    left = total - done
    if left and computed:
        text += f"; about {_duration(left * sum(computed) / len(computed) / jobs)} left ({left} cells)"
    return head + text


def command_line(ctx: Any) -> str:
    """The exact command that is running, as a shell line (``attnrec benchmark --config ...``)."""
    import shlex

    from attnrec.cli.launch import command_args

    return shlex.join(["attnrec", *command_args(ctx, ())])
