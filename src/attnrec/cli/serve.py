"""``attnrec serve RUN``: run the recommendation service (uvicorn) on a run folder.

Registered by :mod:`attnrec.cli.main` through :func:`register` when the ``serve`` extra is installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn  # ImportError here = the serve extra is missing (main.py then skips the command)


def serve_command(
    run_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    db: str | None = None,
    api_keys_file: Path | None = None,
    *,
    rate_limit: float | None = None,
    rate_burst: int = 20,
    torch_threads: int | None = None,
    log_level: str = "info",
    access_log: bool = False,
    device: str = "auto",
    compare: Path | None = None,
) -> None:
    """Validate the options, then serve ``run_dir`` on ``host:port`` until interrupted.

    Raises :class:`~attnrec.errors.AttnRecError` subclasses (exit status 2 in the CLI) for a missing or unsafe
    run folder, a bad ``--db``, unreadable key files, or a non-loopback ``--host`` without API keys.
    """
    from attnrec.errors import ConfigError
    from attnrec.serving.app import create_app
    from attnrec.serving.holder import check_run_folder
    from attnrec.serving.settings import ServeSettings, check_bind
    from attnrec.training.options import resolve_device

    resolve_device(device, "--device")
    if log_level.lower() not in {"debug", "info", "warning", "error"}:
        raise ConfigError(f"--log-level must be debug, info, warning or error; got {log_level!r}")
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be within 1..65535; got {port}")
    settings = ServeSettings.from_env(
        api_keys_file=api_keys_file,
        run_dir=run_dir,
        db=db,
        rate_limit=rate_limit,
        rate_burst=rate_burst,
        torch_threads=torch_threads,
        device=device,
        compare_run_dir=compare,
        handle_sighup=True,
        load_in_background=True,
    )
    check_bind(host, settings)
    check_run_folder(settings.run_dir)
    if settings.compare_run_dir is not None:
        check_run_folder(settings.compare_run_dir)
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=10,
        server_header=False,
    )


def register(app: typer.Typer, handle_errors: Callable[[Any], Any]) -> None:
    """Add ``attnrec serve`` to the CLI."""

    @app.command()
    @handle_errors
    def serve(
        run: Annotated[Path, typer.Argument(help="Run folder to serve (model.json, model.safetensors, vocab.json).")],
        host: Annotated[str, typer.Option(help="Address to bind; non-loopback needs API keys.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
        db: Annotated[
            str | None,
            typer.Option(help="Event store: sqlite:///PATH or postgresql://... (default: RUN/events.sqlite3)."),
        ] = None,
        api_keys_file: Annotated[
            Path | None,
            typer.Option(help="File of 'role:key' lines (roles read, write, admin); adds to $ATTNREC_API_KEYS."),
        ] = None,
        rate_limit: Annotated[
            float | None, typer.Option(help="Per-key requests per second (token bucket); default unlimited.")
        ] = None,
        rate_burst: Annotated[int, typer.Option(help="Requests a key may send at once.")] = 20,
        threads: Annotated[int | None, typer.Option(help="torch threads for scoring.")] = None,
        log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
        access_log: Annotated[bool, typer.Option(help="Log every request (path and status; never keys).")] = False,
        device: Annotated[
            str, typer.Option(help="Where the model scores: auto (the GPU when there is one) | cpu | cuda | cuda:N.")
        ] = "auto",
        compare: Annotated[
            Path | None,
            typer.Option(help="A second run folder shown beside RUN on the web page's compare view (/web/compare)."),
        ] = None,
    ) -> None:
        """Serve real-time recommendations over HTTP: events in, fresh recommendations out (docs/serving.md)."""
        serve_command(
            run,
            host,
            port,
            db,
            api_keys_file,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            torch_threads=threads,
            log_level=log_level,
            access_log=access_log,
            device=device,
            compare=compare,
        )
