"""The ``attnrec`` command line: thin typer commands over the library (they parse, call and format)."""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from attnrec.errors import AttnRecError, ConfigError

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


def handle_errors(func: F) -> F:
    """Turn attnrec's errors (bad data, bad config, unreadable runs) into one line and exit status 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AttnRecError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper  # type: ignore[return-value]


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--k must be comma-separated positive integers; got {text!r}") from None
    if not ks or min(ks) < 1:
        raise ConfigError(f"--k must be comma-separated positive integers; got {text!r}")
    return ks


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
def train(
    data: Annotated[
        Path | None, typer.Option(help="Interaction log (CSV/TSV/Parquet/MovieLens/SASRec/S3-Rec).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name (see `attnrec models`).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder to create.")] = None,
    items: Annotated[Path | None, typer.Option(help="Item side information (titles, attributes).")] = None,
    item_map: Annotated[
        Path | None, typer.Option(help="Two-column 'log_id original_id' file joining --data ids to --items ids.")
    ] = None,
    format: Annotated[str | None, typer.Option("--format", help="Force the --data format.")] = None,
    items_format: Annotated[str | None, typer.Option(help="Force the --items format.")] = None,
    user_col: Annotated[str | None, typer.Option(help="User id column (default user_id).")] = None,
    item_col: Annotated[str | None, typer.Option(help="Item id column (default item_id).")] = None,
    time_col: Annotated[str | None, typer.Option(help="Timestamp column (default timestamp).")] = None,
    rating_col: Annotated[str | None, typer.Option(help="Rating column (default rating).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML file of hyperparameters.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a hyperparameter: key=value.")] = None,
    split: Annotated[str, typer.Option(help="leave-one-out | temporal | ratio.")] = "leave-one-out",
    test_frac: Annotated[float, typer.Option(help="Test fraction (temporal/ratio).")] = 0.1,
    valid_frac: Annotated[float, typer.Option(help="Validation fraction (temporal/ratio).")] = 0.1,
    min_user_interactions: Annotated[int, typer.Option(help="k-core: minimum events per user.")] = 0,
    min_item_interactions: Annotated[int, typer.Option(help="k-core: minimum events per item.")] = 0,
    min_rating: Annotated[float | None, typer.Option(help="Keep events rated at least this.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    threads: Annotated[int | None, typer.Option(help="Torch/BLAS threads (default: all cores).")] = None,
    processes: Annotated[
        int, typer.Option(help="Data-parallel training processes for neural models (each with --threads threads).")
    ] = 1,
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "10,20",
    eval_negatives: Annotated[
        int | None, typer.Option(help="Sampled protocol with N negatives (default: full ranking).")
    ] = None,
    negative_sampling: Annotated[str, typer.Option(help="uniform | popularity (sampled protocol).")] = "uniform",
    keep_seen: Annotated[bool, typer.Option(help="Do not exclude training items from rankings.")] = False,
    resume: Annotated[
        Path | None, typer.Option(help="Continue a killed run from its folder (other options are read from it).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train a model on a log, evaluate it (validation and test) and write a run folder."""
    from attnrec.cli.progress import RichProgress
    from attnrec.runs import DataSpec, RunConfig, read_run_config, train_run

    if resume is not None:
        run_config = read_run_config(resume)
        out = resume
    else:
        missing = [name for name, value in (("--data", data), ("--model", model), ("--out", out)) if value is None]
        if missing:
            raise ConfigError(f"train needs {', '.join(missing)}")
        assert data is not None and model is not None
        try:
            run_config = RunConfig(
                model=model,
                params=parse_params(config, set_),
                data=DataSpec(
                    path=str(data),
                    format=format,
                    user_col=user_col,
                    item_col=item_col,
                    time_col=time_col,
                    rating_col=rating_col,
                    items_path=None if items is None else str(items),
                    items_format=items_format,
                    item_id_map=None if item_map is None else str(item_map),
                ),
                split=split,  # type: ignore[arg-type]
                test_frac=test_frac,
                valid_frac=valid_frac,
                min_user_interactions=min_user_interactions,
                min_item_interactions=min_item_interactions,
                min_rating=min_rating,
                seed=seed,
                threads=threads,
                processes=processes,
                ks=parse_ks(k),
                eval_negatives=eval_negatives,
                negative_sampling=negative_sampling,  # type: ignore[arg-type]
                keep_seen=keep_seen,
            )
        except ValueError as exc:  # pydantic validation of the run options
            raise ConfigError(_first_error(exc)) from None
    assert out is not None
    with RichProgress(err_console, enabled=not quiet) as progress:
        result = train_run(run_config, out, progress=progress, resume=resume is not None)
    _print_metrics_table(
        {run_config.model: result.metrics},
        title=f"{run_config.model}: {result.metrics['protocol']} ranking, {run_config.split} (± = 95% CI half-width)",
    )
    out_console.print(f"run folder: {result.out}")


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        err = errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ()))
        return f"--{field.replace('_', '-')}: {err['msg']}; got {err.get('input')!r}"
    return str(exc)


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
                if bounds and None not in bounds:
                    text += f" ± {(bounds[1] - bounds[0]) / 2:.4f}"
                cells.append(text)
            table.add_row(key, *cells)
        out_console.print(table)
        if "train_seconds" in metrics:
            out_console.print(f"trained in {metrics['train_seconds']:.1f} s ({metrics.get('epochs', 1)} epochs)")
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
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Re-evaluate a run folder on its validation and test splits (the data is re-read and checked)."""
    from attnrec.cli.progress import RichProgress
    from attnrec.runs import reevaluate_run

    with RichProgress(err_console, enabled=not (quiet or json_out)) as progress:
        metrics = reevaluate_run(run, ks=None if k is None else parse_ks(k), progress=progress)
    if json_out:
        sys.stdout.write(json.dumps(metrics, indent=2) + "\n")
        return
    _print_metrics_table({metrics["model"]: metrics}, title=f"{run}: {metrics['protocol']} ranking")


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
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON (CONTRACTS.md shape).")] = False,
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
    for entry in payload:
        title = f"user {entry['user']}" if entry["user"] else "history"
        if entry["fallback"]:
            title += f" ({entry['fallback']} fallback: no personal data)"
        table = Table(title=title)
        table.add_column("#", justify="right")
        table.add_column("item")
        if features is not None:
            table.add_column("title")
        table.add_column("score", justify="right")
        if explain:
            table.add_column("because")
        for rank, item in enumerate(entry["items"], start=1):
            cells = [str(rank), item["item"]]
            if features is not None:
                cells.append(item.get("title") or "")
            cells.append(f"{item['score']:.4f}")
            if explain:
                cells.append(
                    ", ".join(f"{b.get('title') or b['item']} ({b['weight']:.2f})" for b in item.get("because", []))
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
def benchmark(
    data: Annotated[Path, typer.Option(help="Interaction log.")],
    models_: Annotated[str, typer.Option("--models", help="Comma-separated model names.")],
    out: Annotated[Path, typer.Option(help="Folder receiving one run folder per model.")],
    config_dir: Annotated[
        Path | None, typer.Option(help="Folder of NAME.toml hyperparameter files (optional).")
    ] = None,
    format: Annotated[str | None, typer.Option("--format", help="Force the --data format.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    k: Annotated[str, typer.Option("--k", help="Cut-offs.")] = "10,20",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Train and evaluate several models on one dataset (same split) and print a table."""
    from attnrec.cli.progress import RichProgress
    from attnrec.runs import DataSpec, RunConfig, train_run

    names = [m.strip() for m in models_.split(",") if m.strip()]
    if not names:
        raise ConfigError(f"--models must list model names; got {models_!r}")
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        cfg_file = None if config_dir is None else config_dir / f"{name}.toml"
        params = parse_params(cfg_file if cfg_file is not None and cfg_file.is_file() else None, None)
        run_config = RunConfig(
            model=name, params=params, data=DataSpec(path=str(data), format=format), seed=seed, ks=parse_ks(k)
        )
        with RichProgress(err_console, enabled=not json_out) as progress:
            results[name] = train_run(run_config, out / name, progress=progress).metrics
    if json_out:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
        return
    _print_metrics_table(results, title=f"{data}: test")


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


_register_optional()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
