"""``attnrec tune``: resumable Optuna search of a model's hyperparameters (the library: training/tuning.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from attnrec.cli import options as o


def register(app: typer.Typer, handle_errors: Callable[[Any], Any]) -> None:
    @app.command()
    @handle_errors
    @o.with_log_options
    def tune(
        log: o.LogOptions,
        model: Annotated[
            str, typer.Option(help="Model name (one with a search space; any other gets an error listing them).")
        ],
        trials: Annotated[
            int, typer.Option(help="Finished trials the study should hold (a rerun adds only the missing ones).")
        ],
        out: Annotated[
            Path,
            typer.Option(
                "--out", "--study-dir", help="Study folder (study.db, best.toml, summary.json, plots, final run)."
            ),
        ],
        timeout: Annotated[
            float | None, typer.Option(help="Start no new trial after this many seconds (this call).")
        ] = None,
        metric: Annotated[
            str, typer.Option(help="Validation metric to optimise (rmse/mae/logloss are minimised).")
        ] = "ndcg@10",
        pruner: Annotated[
            str, typer.Option(help="Neural models: median | hyperband | none (classic models are never pruned).")
        ] = "median",
        config: Annotated[
            Path | None, typer.Option("--config", help="TOML file of hyperparameters fixed for every trial.")
        ] = None,
        set_: Annotated[
            list[str] | None, typer.Option("--set", help="Fix a hyperparameter for every trial: key=value.")
        ] = None,
        final: Annotated[
            bool, typer.Option(help="Train the best configuration once and report its test metrics.")
        ] = True,
        device: o.Device = None,
        quiet: Annotated[bool, typer.Option(help="No progress bars or per-trial lines.")] = False,
    ) -> None:
        """Search a model's hyperparameters on validation (Optuna, SQLite study in --out: rerun to resume), write
        the best configuration as a --config file, plots, and the best configuration's test result."""
        import optuna

        from attnrec.cli.main import _print_metrics_table, _run_config, _TrainReporter, err_console, out_console
        from attnrec.cli.main import parse_params as read_params
        from attnrec.cli.progress import RichProgress
        from attnrec.training.options import resolve_device
        from attnrec.training.tuning import TuneSettings
        from attnrec.training.tuning import tune as run_tune

        if device is not None:
            resolve_device(device, "--device")
        settings = TuneSettings(
            trials=trials,
            timeout=timeout,
            metric=metric,
            pruner=pruner,  # type: ignore[arg-type]
            fixed=read_params(config, set_),
            final=final,
        )
        run_config = _run_config(model, {}, log.data_spec(), device=device or "auto", **log.run_settings())
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the trial lines below say what optuna would
        with RichProgress(err_console, enabled=not quiet) as progress:
            reporter = _TrainReporter(progress.console, model, quiet=True)
            lines = _TrialLines(progress.console, settings.metric, quiet=quiet)
            result = run_tune(
                run_config,
                out,
                settings,
                progress=progress,
                on_data_loaded=None if quiet else reporter.data_loaded,
                on_trial=lines,
            )
        summary = result.summary
        best, default = summary["best"], summary.get("default")
        head = (
            f"study {summary['study']}: {summary['trials']['finished']} finished trials "
            f"({summary['trials'].get('complete', 0)} complete, {summary['trials'].get('pruned', 0)} pruned); "
            f"best trial {best['trial']}: valid {summary['metric']} {best['value']:.4f}"
        )
        if default is not None:
            head += f" (default configuration: {default['value']:.4f}, trial {default['trial']})"
        out_console.print(head, highlight=False, soft_wrap=True)
        params = ", ".join(f"{k}={_short(v)}" for k, v in best["params"].items()) or "the defaults"
        out_console.print(f"best configuration: {params}", highlight=False, soft_wrap=True)
        out_console.print(f"config file: {out / 'best.toml'} (attnrec train --config)", highlight=False)
        plots = summary.get("plots", {})
        for name in ("history", "importances"):
            where = plots.get(name, "")
            shown = where if where.startswith("skipped") else str(out / where)
            out_console.print(f"plot {name}: {shown}", highlight=False, soft_wrap=True)
        if result.final is not None:
            _print_metrics_table(
                {model: result.final.metrics},
                title=f"{model}, best configuration (trial {best['trial']}), trained once: the test column is "
                "reported once and was never used to choose",
            )
            out_console.print(f"final run folder: {result.final.out}", highlight=False)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class _TrialLines:
    """One line per finished trial: its value or why it stopped, the best so far, its values and duration."""

    def __init__(self, console: Any, metric: str, *, quiet: bool) -> None:
        self.console = console
        self.metric = metric
        self.quiet = quiet

    def __call__(self, row: dict[str, Any]) -> None:
        if self.quiet:
            return
        label = f"trial {row['number']} ({row['finished']}/{row['total']})"
        if row["default"]:
            label += " default configuration"
        if row["state"] == "complete":
            status = f"valid {self.metric} {row['value']:.4f}"
        else:
            status = row["note"] or row["state"]
        parts = [label, status]
        if row["best_value"] is not None:
            parts.append(f"best {row['best_value']:.4f} (trial {row['best_number']})")
        if row["params"]:
            parts.append(" ".join(f"{k}={_short(v)}" for k, v in row["params"].items()))
        if row["seconds"] is not None:
            parts.append(f"{row['seconds']:.1f} s")
        self.console.print(
            ": ".join(parts[:2]) + ("; " + "; ".join(parts[2:]) if parts[2:] else ""), highlight=False, soft_wrap=True
        )
