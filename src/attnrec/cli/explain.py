"""``attnrec explain RUN --user ID --out FILE.png``: draw the attention behind a user's recommendations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer, handle_errors: Callable[[Any], Any]) -> None:
    @app.command()
    @handle_errors
    def explain(
        run: Annotated[Path, typer.Argument(help="Run folder of an attention model (e.g. sasrec).")],
        user: Annotated[str | None, typer.Option("--user", help="User id.")] = None,
        history: Annotated[str | None, typer.Option(help="Comma-separated item ids instead of a user.")] = None,
        out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("explain.png"),
        k: Annotated[int, typer.Option("--k", help="Recommended items to show.")] = 10,
        last: Annotated[int, typer.Option(help="History items to show (most recent).")] = 20,
    ) -> None:
        """Heatmap of how much each recent history item drove each recommended item."""
        from attnrec.errors import ConfigError
        from attnrec.explain.plot import explanation_heatmap
        from attnrec.runs import load_run, load_run_features

        model, _ = load_run(run)
        if not model.supports_explain:
            raise ConfigError(f"model {model.name!r} of {run} does not support attention explanations")
        if (user is None) == (history is None):
            raise ConfigError("explain needs exactly one of --user ID or --history ID,ID,...")
        features = load_run_features(run)
        path = explanation_heatmap(
            model,
            user=user,
            history=None if history is None else [h.strip() for h in history.split(",") if h.strip()],
            k=k,
            last=last,
            features=features,
            out=out,
        )
        typer.echo(f"wrote {path}")
