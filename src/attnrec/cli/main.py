"""The ``attnrec`` command line: thin typer commands over the library (they parse, call and format)."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from attnrec.cli import options as o
from attnrec.cli.options import parse_ks
from attnrec.errors import AttnRecError, ConfigError

try:  # typer >= 0.2x ships its own copy of click; older versions use click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

app = typer.Typer(
    name="attnrec",
    help="Attention-based recommendation: train, evaluate, explain and serve recommenders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
out_console = Console()

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one error line to stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


DEBUG_ENV = "ATTNREC_DEBUG"


def handle_errors(func: F) -> F:
    """Turn every error into one line on stderr and exit status 2 (130 when interrupted).

    attnrec's own errors (bad data, bad config, unreadable runs) are printed as they are. Any other exception
    (a ``ValueError`` from a layer, an ``OSError`` from the disk) is printed as one line naming its type, with a
    hint: ``ATTNREC_DEBUG=1`` re-raises it with the full traceback.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, click_exceptions.ClickException):
            raise
        except AttnRecError as exc:
            raise _fail_here(_one_line(str(exc))) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            from attnrec.cli.launch import LOST_PEER_STATUS, lost_peer

            message = (
                f"{type(exc).__name__}: {_one_line(str(exc)) or 'no message'} "
                f"(unexpected; set {DEBUG_ENV}=1 for the traceback)"
            )
            raise _fail_here(message, LOST_PEER_STATUS if lost_peer(exc) else 2) from None

    return wrapper  # type: ignore[return-value]


def _fail_here(message: str, code: int = 2) -> typer.Exit:
    """:func:`fail`, except in a process of ``attnrec train --processes N``: there the error goes to torchrun's
    error file and the launcher prints the job's one line."""
    from attnrec.cli.launch import in_launched_worker, record_worker_error

    if in_launched_worker():
        record_worker_error(message)
        return typer.Exit(code)
    return fail(message, code)


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


def parse_params(config_file: Path | None, sets: list[str] | None) -> dict[str, Any]:
    """Hyperparameters from a TOML file (flat keys) overridden by ``--set key=value`` pairs."""
    from attnrec.config import coerce_value

    params: dict[str, Any] = {}
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"--config {config_file}: file not found")
        try:
            params.update(tomllib.loads(config_file.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--config {config_file}: not valid TOML ({exc})") from None
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value; got {item!r}")
        params[key.strip()] = coerce_value(value.strip())
    return params


@app.command()
@handle_errors
@o.with_log_options
def train(
    ctx: typer.Context,
    log: o.LogOptions,
    model: Annotated[str | None, typer.Option(help="Model name (see `attnrec models`).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder to create.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML file of hyperparameters.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a hyperparameter: key=value.")] = None,
    device: o.Device = None,
    processes: o.Processes = None,
    nnodes: o.Nnodes = 1,
    node_rank: o.NodeRank = 0,
    master_addr: o.MasterAddr = None,
    master_port: o.MasterPort = 29500,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue a killed run from its folder (other options are read from it; --device and "
            "--processes may change)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars or per-epoch lines.")] = False,
) -> None:
    """Train a model on a log, evaluate it (validation and test) and write a run folder."""
    from attnrec.cli.launch import worker_setup
    from attnrec.cli.progress import RichProgress
    from attnrec.runs import read_run_config, train_run
    from attnrec.training import distributed
    from attnrec.training.options import resolve_device

    in_job = distributed.launched()
    if device is not None:
        resolve_device(device, "--device")
    if resume is not None:
        run_config = read_run_config(resume)
        update = {k: v for k, v in (("device", device), ("processes", processes)) if v is not None}
        run_config = run_config.model_copy(update=update) if update else run_config
        out = resume
    else:
        missing = [n for n, v in (("--data", log.data), ("--model", model), ("--out", out)) if v is None]
        if missing:
            raise ConfigError(f"train needs {', '.join(missing)}")
        assert model is not None
        run_config = _run_config(
            model,
            parse_params(config, set_),
            log.data_spec(),
            processes=processes or 1,
            device=device or "auto",
            **log.run_settings(),
        )
    assert out is not None
    if not in_job and (run_config.processes > 1 or nnodes > 1):
        _launch(ctx, run_config, log.threads, nnodes, node_rank, master_addr, master_port, quiet=quiet)
        return
    main_process = distributed.is_main_process()
    if in_job:
        worker_setup()
        run_config = run_config.model_copy(update={"processes": distributed.local_world_size()})
        quiet = quiet or not main_process
    with RichProgress(err_console, enabled=not quiet) as progress:
        reporter = _TrainReporter(progress.console, run_config.model, quiet=quiet)
        reporter.max_epochs = _max_epochs(run_config)
        result = train_run(
            run_config,
            out,
            progress=progress,
            resume=resume is not None,
            on_data_loaded=reporter.data_loaded if main_process else None,
            on_epoch=reporter.epoch,
        )
    if not main_process:
        return
    _print_metrics_table(
        {run_config.model: result.metrics},
        title=f"{run_config.model}: {_protocol_text(result.metrics)}, {result.metrics['split']} "
        "(± = 95% CI half-width)",
    )
    out_console.print(f"run folder: {result.out}")


def _launch(
    ctx: typer.Context,
    run_config: Any,
    threads: int | None,
    nnodes: int,
    node_rank: int,
    master_addr: str | None,
    master_port: int,
    *,
    quiet: bool,
) -> None:
    """Run this ``train`` command in ``run_config.processes`` processes under torchrun (``cli/launch.py``)."""
    from attnrec.cli.launch import command_args, run_torchrun, torchrun_args
    from attnrec.registry import create_model

    create_model(run_config.model, run_config.params)  # a bad hyperparameter fails here, once
    per_process = threads
    if per_process is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        per_process = max(1, cores // run_config.processes)
    drop = ("processes", "nnodes", "node_rank", "master_addr", "master_port")
    command = command_args(ctx, drop)
    args = torchrun_args(
        command,
        run_config.processes,
        nnodes=nnodes,
        node_rank=node_rank,
        master_addr=master_addr,
        master_port=master_port,
    )
    if not quiet:
        err_console.print(f"running: torchrun {' '.join(args)}", highlight=False, soft_wrap=True, markup=False)
    run_torchrun(args, threads_per_process=None if threads is not None else per_process)


def _run_config(model: str, params: dict[str, Any], data: dict[str, Any], **settings: Any) -> Any:
    """A RunConfig from CLI values; pydantic's complaints become one line naming the option."""
    from attnrec.runs import DataSpec, RunConfig

    try:
        return RunConfig(model=model, params=params, data=DataSpec(**data), **settings)
    except ValueError as exc:  # pydantic validation of the run options
        raise ConfigError(_first_error(exc)) from None


def _max_epochs(run_config: Any) -> int | None:
    from attnrec.registry import create_model

    epochs = create_model(run_config.model, run_config.params).get_config().get("epochs")
    return int(epochs) if isinstance(epochs, int) else None


class _TrainReporter:
    """Prints what training does: the data summary and notes, then one line per epoch with the time left."""

    def __init__(self, console: Console, model: str, *, quiet: bool) -> None:
        self.console = console
        self.model = model
        self.quiet = quiet
        self.max_epochs: int | None = None
        self.seconds: list[float] = []

    def data_loaded(self, data: Any) -> None:
        from attnrec.runs import report_notes

        split = data.split
        inter = data.interactions
        self.console.print(
            f"data: {inter.num_users:,} users, {inter.num_items:,} items, {len(inter):,} events; "
            f"{split.name} split: train {len(split.train):,}, valid {len(split.valid):,}, "
            f"test {len(split.test):,} events",
            highlight=False,
            soft_wrap=True,
        )
        for note in report_notes(data):
            self.console.print(f"note: {note}", highlight=False, soft_wrap=True)

    def epoch(self, row: dict[str, Any]) -> None:
        if self.quiet:
            return
        epoch = int(row.get("epoch", len(self.seconds) + 1))
        self.seconds.append(float(row.get("seconds", 0.0)) + float(row.get("valid_seconds") or 0.0))
        parts = [f"{self.model} epoch {epoch}" + (f"/{self.max_epochs}" if self.max_epochs else "")]
        if row.get("loss") is not None:
            parts.append(f"loss {float(row['loss']):.4f}")
        valid = {key[6:]: float(v) for key, v in row.items() if key.startswith("valid_") and key != "valid_seconds"}
        shown = [m for m in _EPOCH_METRICS if m in valid] or list(valid)[:2]
        parts += [f"valid {m} {valid[m]:.4f}" for m in shown[:2]]
        parts.append(f"{self.seconds[-1]:.1f} s")
        if self.max_epochs:
            left = (self.max_epochs - epoch) * (sum(self.seconds) / len(self.seconds))
            parts.append(f"at most {_duration(left)} left" if left > 0 else "last epoch")
        self.console.print(", ".join(parts), highlight=False, soft_wrap=True)


_EPOCH_METRICS = ("ndcg@10", "hr@10", "rmse", "mae", "auc", "logloss")
"""The validation metrics an epoch line shows (at most two); other models show their first two."""


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _fit_line(metrics: dict[str, Any]) -> str:
    """``trained in 12.3 s: 30 epochs (best 24)`` / ``15 iterations`` / ``fitted in 0.1 s (closed form)``."""
    seconds = float(metrics["train_seconds"])
    fit = metrics.get("fit") or {}
    kind = fit.get("kind")
    if kind == "epochs":
        text = f"trained in {seconds:.1f} s: {fit.get('epochs')} epochs (best {fit.get('best_epoch')})"
        return text + (", stopped early" if fit.get("stopped_early") else "")
    if kind == "iterations":
        return f"trained in {seconds:.1f} s: {fit.get('iterations')} iterations"
    if kind == "closed-form":
        return f"fitted in {seconds:.2f} s (closed form)"
    return f"trained in {seconds:.1f} s ({metrics.get('epochs', 1)} epochs)"  # run folders written before 0.2


def _data_rules_line(metrics: dict[str, Any]) -> str:
    """``chosen from the data: dropout 0.5, weight_decay 1.0 (960 training sequences ...)``, one group per reason;
    empty when no hyperparameter was."""
    rules = (metrics.get("fit") or {}).get("data_rules") or {}
    by_reason: dict[str, list[str]] = {}
    for name, rule in rules.items():
        by_reason.setdefault(str(rule["why"]), []).append(f"{name} {rule['value']}")
    return (
        "chosen from the data: " + "; ".join(f"{', '.join(names)} ({why})" for why, names in by_reason.items())
        if by_reason
        else ""
    )


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        err = errors()[0]
        names = [str(p) for p in err.get("loc", ()) if not str(p).isdigit()]
        field = names[-1] if names else "value"
        field = {"path": "data", "items_path": "items", "item_id_map": "item-map", "users_path": "users"}.get(
            field, field
        )
        return f"--{field.replace('_', '-')}: {err['msg']}; got {err.get('input')!r}"
    return str(exc)


def _protocol_text(metrics: dict[str, Any]) -> str:
    """``full ranking`` / ``sampled-100 ranking`` / ``click prediction (pointwise)``."""
    if metrics.get("task") == "ctr":
        return "click prediction (pointwise)"
    return f"{metrics['protocol']} ranking"


def _print_metrics_table(rows: dict[str, dict[str, Any]], *, title: str, target: str = "test") -> None:
    """One model: a metric x (valid, test) table with 95% CIs. Several models: one row per model."""
    if len(rows) == 1:
        ((name, metrics),) = rows.items()
        table = Table(title=title)
        table.add_column("metric")
        splits = [t for t in ("valid", "test") if metrics.get(t)]
        for t in splits:
            table.add_column(t, justify="right")
        ci = metrics.get("ci95", {})
        keys: list[str] = []
        for t in splits:
            keys += [k for k in metrics[t] if k not in keys]
        for key in keys:
            cells = []
            for t in splits:
                value = metrics[t].get(key)
                bounds = ci.get(t, {}).get(key)
                text = "" if value is None else f"{value:.4f}"
                if bounds and None not in bounds and all(b == b for b in bounds):  # no CI from one user
                    text += f" ± {(bounds[1] - bounds[0]) / 2:.4f}"
                cells.append(text)
            table.add_row(key, *cells)
        out_console.print(table)
        if "train_seconds" in metrics:
            out_console.print(_fit_line(metrics), highlight=False, soft_wrap=True)
            rules_line = _data_rules_line(metrics)
            if rules_line:
                out_console.print(rules_line, highlight=False, soft_wrap=True, markup=False)
        for t in splits:
            notes = []
            fallback = metrics.get("fallback_users", {}).get(t)
            if fallback:
                notes.append(f"{fallback:,} users answered by the popularity fallback")
            unreachable = metrics.get("unreachable_targets", {}).get(t)
            if unreachable:
                notes.append(
                    f"{unreachable:,} targets already in the history were unreachable (counted as misses; "
                    "--keep-seen ranks seen items)"
                )
            impressions = metrics.get("impressions", {}).get(t)
            if impressions:
                notes.append(
                    f"{impressions:,} impressions of {metrics.get('users_evaluated', {}).get(t, 0):,} users; gauc "
                    f"over the {metrics.get('gauc_users', {}).get(t, 0):,} users with clicks and non-clicks"
                )
            if notes:
                out_console.print(f"{t}: " + "; ".join(notes), highlight=False, soft_wrap=True)
        return
    first_k = None
    for metrics in rows.values():
        for key in metrics.get(target, {}):
            if key.startswith("ndcg@"):
                first_k = key.split("@")[1]
                break
        if first_k:
            break
    columns = [f"{m}@{first_k}" for m in ("hr", "ndcg", "mrr", "coverage")] if first_k else []
    if not columns:
        columns = [m for m in ("auc", "gauc", "logloss") if any(m in r.get(target, {}) for r in rows.values())]
    table = Table(title=title)
    table.add_column("model")
    for col in columns:
        table.add_column(col, justify="right")
    table.add_column("fit s", justify="right")
    for name, metrics in rows.items():
        values = metrics.get(target, {})
        cells = [f"{values[c]:.4f}" if c in values else "" for c in columns]
        table.add_row(name, *cells, f"{metrics.get('train_seconds', float('nan')):.1f}")
    out_console.print(table)


@app.command()
@handle_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder written by `attnrec train`.")],
    k: Annotated[str | None, typer.Option("--k", help="Cut-offs, comma-separated (default: the run's).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
    data: Annotated[
        Path | None, typer.Option(help="The run's log at a new place (its sha256 must match the run's).")
    ] = None,
    items: Annotated[Path | None, typer.Option("--items", help="The run's --items file at a new place.")] = None,
    users: Annotated[Path | None, typer.Option("--users", help="The run's --users file at a new place.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Re-evaluate a run folder on its validation and test splits (the data is re-read and checked)."""
    from attnrec.cli.progress import RichProgress
    from attnrec.runs import reevaluate_run

    with RichProgress(err_console, enabled=not (quiet or json_out)) as progress:
        metrics = reevaluate_run(
            run,
            ks=None if k is None else parse_ks(k),
            progress=progress,
            data_path=data,
            items_path=items,
            users_path=users,
        )
    if json_out:
        sys.stdout.write(json.dumps(metrics, indent=2) + "\n")
        return
    _print_metrics_table({metrics["model"]: metrics}, title=f"{run}: {_protocol_text(metrics)}")


@app.command()
@handle_errors
def recommend(
    run: Annotated[Path, typer.Argument(help="Run folder written by `attnrec train`.")],
    user: Annotated[list[str] | None, typer.Option("--user", help="User id (repeatable).")] = None,
    history: Annotated[
        str | None, typer.Option(help="Comma-separated item ids, oldest first: recommend for this history.")
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Number of items.")] = 10,
    explain: Annotated[bool, typer.Option(help="Add the history items that drove each recommendation.")] = False,
    keep_seen: Annotated[bool, typer.Option(help="Allow items already in the history.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON (docs/contracts.md shape).")] = False,
) -> None:
    """Top-k recommendations for users of the run, or for an explicit history (no retraining)."""
    from attnrec.explain.text import recommendations_payload
    from attnrec.runs import load_run, load_run_features

    if not user and history is None:
        raise ConfigError("recommend needs --user ID (repeatable) or --history ID,ID,...")
    if k < 1:
        raise ConfigError(f"--k must be >= 1; got {k}")
    model, _ = load_run(run)
    features = load_run_features(run)
    hist = None
    users = list(user or [])
    if history is not None:
        items = [h.strip() for h in history.split(",") if h.strip()]
        if not items:
            raise ConfigError(f"--history must list item ids separated by commas; got {history!r}")
        unknown = [i for i in items if i not in model.items_]  # type: ignore[operator]
        if len(unknown) == len(items):
            raise ConfigError(f"--history: none of the items is known to the model (first: {unknown[0]!r})")
        hist = [items] * max(1, len(users))
        if not users:
            users = []
    payload = recommendations_payload(
        model, users=users or None, histories=hist, k=k, explain=explain, exclude_seen=not keep_seen, features=features
    )
    if json_out:
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return
    if explain and payload and not model.supports_explain:
        err_console.print(f"note: {payload[0]['explanation']['note']}: no 'because' column", highlight=False)
    show_because = explain and model.supports_explain
    for entry in payload:
        title = f"user {entry['user_id']}" if entry["user_id"] else "history"
        if entry["fallback"]:
            within = " within the user's demographic groups" if entry["fallback"] == "demographic" else ""
            title += f" ({entry['fallback']} fallback: no personal data; scores are popularity{within}"
            title += ", not the model's)"
        table = Table(title=title)
        if show_because:
            table.caption = f"because = {entry['explanation']['note']} ({entry['explanation']['method']})"
        table.add_column("#", justify="right")
        table.add_column("item")
        if features is not None:
            table.add_column("title")
        table.add_column("score", justify="right")
        if show_because:
            table.add_column("because")
        for rank, item in enumerate(entry["items"], start=1):
            cells = [str(rank), item["item_id"]]
            if features is not None:
                cells.append(item.get("title") or "")
            cells.append(f"{item['score']:.4f}")
            if show_because:
                cells.append(
                    ", ".join(
                        f"{b.get('title') or b.get('item_id') or b.get('name')} ({b['weight']:.2f})"
                        for b in item.get("because", [])
                    )
                )
            table.add_row(*cells)
        out_console.print(table)


@app.command()
@handle_errors
def models(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the models and their hyperparameters with defaults."""
    from attnrec.registry import available_models, get_model_class

    listing: dict[str, Any] = {}
    for name in available_models():
        cls = get_model_class(name)
        fields = {}
        for field_name, info in cls.config_class.model_fields.items():
            default = info.get_default(call_default_factory=True)
            fields[field_name] = {
                "default": default,
                "type": getattr(info.annotation, "__name__", str(info.annotation)),
                "description": info.description or "",
            }
        listing[name] = {"class": cls.__name__, "citation": cls.citation, "params": fields}
    if json_out:
        sys.stdout.write(json.dumps(listing, indent=2, default=str) + "\n")
        return
    for name, entry in listing.items():
        table = Table(title=f"{name} ({entry['class']})", caption=entry["citation"] or None, title_justify="left")
        table.add_column("parameter")
        table.add_column("default", justify="right")
        table.add_column("description")
        for field_name, info in entry["params"].items():
            table.add_row(field_name, repr(info["default"]), info["description"])
        out_console.print(table)


@app.command()
@handle_errors
@o.with_log_options
def benchmark(
    ctx: typer.Context,
    log: o.LogOptions,
    models_: Annotated[
        str | None, typer.Option("--models", help="Comma-separated model names (the one-dataset form).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the cells (one run folder each) and of report/ (--config: default runs/benchmark/NAME)."
        ),
    ] = None,
    config_dir: Annotated[
        Path | None, typer.Option(help="Folder of NAME.toml hyperparameter files (optional).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Benchmark config file (TOML or JSON): datasets x models x seeds."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue a killed neural cell from its checkpoints (finished cells are always kept).")
    ] = False,
    update_docs: Annotated[
        Path | None, typer.Option(help="Markdown file whose benchmark section receives the report's tables.")
    ] = None,
    section: Annotated[str | None, typer.Option(help="Section of --update-docs (default: the config's name).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars or per-cell lines.")] = False,
    report_only: Annotated[
        bool,
        typer.Option(
            help="Write the report (and the --update-docs section) from the cells already finished, computing none: "
            "the partial results of a long benchmark (unfinished cells show as missing)."
        ),
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="--config form: compute only the cells of this DATASET, DATASET/LABEL or DATASET/LABEL/seed-N "
            "(repeatable; the other cells are reported as found on disk)."
        ),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            help="The benchmark's record: the light files of its finished cells (results, not models). Cells not "
            "finished under --out are restored from it first; cells computed here are added to it "
            "(docs/contracts.md, 'Benchmark record')."
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            help="--config form: cells computed side by side, each by its own process with --threads threads "
            "(default: the config's threads divided among the jobs); logs in OUT/jobs/.",
        ),
    ] = 1,
    device: o.Device = None,
) -> None:
    """Train and evaluate several models on one dataset (same data options and split) and print a table; or,
    with --config, models x datasets x seeds; either way a report folder (Markdown, HTML). Rerunning the same
    command keeps every finished cell."""
    from attnrec.cli.benchmark import BenchmarkArgs, command_line, run_benchmark

    if config is None and models_ is None:
        raise click_exceptions.UsageError("Missing option '--models'.", ctx=ctx)
    args = BenchmarkArgs(
        models=models_,
        out=out,
        config_dir=config_dir,
        config=config,
        resume=resume,
        update_docs=update_docs,
        section=section,
        json_out=json_out,
        quiet=quiet,
        report_only=report_only,
        only=tuple(only or ()),
        record=record,
        jobs=jobs,
        threads=log.threads,
        device=device,
        command=command_line(ctx),
    )
    run_benchmark(log, args, out_console, err_console)


@app.command()
@handle_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's run folders.")] = Path("runs/demo"),
    quick: Annotated[bool, typer.Option(help="Smaller data and fewer epochs (for tests).")] = False,
) -> None:
    """Train an attention model and a baseline on built-in synthetic data, then explain recommendations."""
    from attnrec.cli.demo import run_demo

    run_demo(out, out_console, err_console, quick=quick)


def _register_optional() -> None:
    """Commands whose modules need optional extras (the service) register themselves when importable."""
    try:
        from attnrec.cli.serve import register as register_serve
    except ImportError:  # the serve extra is not installed
        pass
    else:
        register_serve(app, handle_errors)
    from attnrec.cli.explain import register as register_explain

    register_explain(app, handle_errors)
    from attnrec.cli.tune import register as register_tune

    register_tune(app, handle_errors)


_register_optional()


def main(argv: list[str] | None = None) -> None:
    """The console entry point: usage errors (a missing option, ``--k abc``) are one line with exit status 2 too."""
    try:
        result = app(args=argv, prog_name="attnrec", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click_exceptions.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "attnrec"
        err_console.print(
            f"[bold red]error:[/] {_one_line(exc.format_message())} (see `{where} --help`)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(exc.exit_code)
    except click_exceptions.ClickException as exc:
        err_console.print(f"[bold red]error:[/] {_one_line(exc.format_message())}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("[bold red]error:[/] interrupted", highlight=False)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


def _exit_torchrun_worker(code: object) -> None:
    """Leave a ``torchrun`` worker process without the interpreter's teardown (when it is one).

    With everything written and flushed, torch's C++ teardown of a worker of a multi-process job sometimes aborts
    (``terminate called without an active exception``, SIGABRT, after the last Python frame: a thread still
    joinable at exit); the launcher then reports the finished job as failed. Measured with 2 CPU processes
    training SASRec (tests/cli/test_resume.py's settings): 5 of 22 runs with weight decay, none of 16 without."""
    if "TORCHELASTIC_RUN_ID" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import logging

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))


if __name__ == "__main__":  # pragma: no cover
    try:
        main()
    except SystemExit as exc:
        _exit_torchrun_worker(exc.code)
        raise
