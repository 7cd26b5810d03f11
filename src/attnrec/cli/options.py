"""The options shared by every command that reads a log (``train``, ``benchmark``): one set, one meaning.

Each option is an ``Annotated`` alias so that a command declares it by name and gets the same flag, default and
help text; :func:`data_spec` and :func:`run_settings` turn the values into the library's ``DataSpec`` and
``RunConfig`` fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from attnrec.errors import ConfigError

DATA = "Data"
SPLIT = "Split and filters"
EVAL = "Evaluation"

DataPath = Annotated[
    Path | None,
    typer.Option("--data", help="Interaction log (CSV/TSV/Parquet/MovieLens/SASRec/S3-Rec).", rich_help_panel=DATA),
]
Format = Annotated[str | None, typer.Option("--format", help="Force the --data format.", rich_help_panel=DATA)]
Separator = Annotated[
    str | None,
    typer.Option(
        "--separator",
        help="Field separator of a CSV/TSV log (e.g. ';', or tab; detected when the header makes it clear).",
        rich_help_panel=DATA,
    ),
]
UserCol = Annotated[str | None, typer.Option(help="User id column (default user_id).", rich_help_panel=DATA)]
ItemCol = Annotated[str | None, typer.Option(help="Item id column (default item_id).", rich_help_panel=DATA)]
TimeCol = Annotated[str | None, typer.Option(help="Timestamp column (default timestamp).", rich_help_panel=DATA)]
RatingCol = Annotated[str | None, typer.Option(help="Rating column (default rating).", rich_help_panel=DATA)]
Dedup = Annotated[
    str,
    typer.Option(
        help="Repeated (user, item) events: keep the 'first' of each, the 'last', or 'none' (keep all).",
        rich_help_panel=DATA,
    ),
]
RatingScale = Annotated[
    str | None,
    typer.Option(
        help="Declared rating scale MIN,MAX (e.g. 1,5); ratings outside it are an error. Inferred when not given.",
        rich_help_panel=DATA,
    ),
]
ItemsPath = Annotated[
    Path | None, typer.Option("--items", help="Item side information (titles, attributes).", rich_help_panel=DATA)
]
ItemsFormat = Annotated[str | None, typer.Option(help="Force the --items format.", rich_help_panel=DATA)]
ItemsIdCol = Annotated[
    str | None,
    typer.Option(
        help="Item id column of --items (default: the log's item column, else item_id).", rich_help_panel=DATA
    ),
]
ItemMap = Annotated[
    Path | None,
    typer.Option(help="Two-column 'log_id original_id' file joining --data ids to --items ids.", rich_help_panel=DATA),
]
SplitName = Annotated[str, typer.Option(help="leave-one-out | temporal | ratio.", rich_help_panel=SPLIT)]
TestFrac = Annotated[float, typer.Option(help="Test fraction (temporal/ratio).", rich_help_panel=SPLIT)]
ValidFrac = Annotated[float, typer.Option(help="Validation fraction (temporal/ratio).", rich_help_panel=SPLIT)]
MinUser = Annotated[int, typer.Option(help="k-core: minimum events per user.", rich_help_panel=SPLIT)]
MinItem = Annotated[int, typer.Option(help="k-core: minimum events per item.", rich_help_panel=SPLIT)]
MinRating = Annotated[float | None, typer.Option(help="Keep events rated at least this.", rich_help_panel=SPLIT)]
Seed = Annotated[int, typer.Option(help="Random seed.")]
Threads = Annotated[int | None, typer.Option(help="Torch/BLAS threads (default: all cores).")]
Ks = Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.", rich_help_panel=EVAL)]
EvalNegatives = Annotated[
    int | None,
    typer.Option(help="Sampled protocol with N negatives (default: full ranking).", rich_help_panel=EVAL),
]
NegativeSampling = Annotated[str, typer.Option(help="uniform | popularity (sampled protocol).", rich_help_panel=EVAL)]
KeepSeen = Annotated[bool, typer.Option(help="Do not exclude training items from rankings.", rich_help_panel=EVAL)]

_SEPARATOR_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}


def parse_separator(text: str | None) -> str | None:
    """``--separator``: one character, or a name (``tab``, ``semicolon``, ``comma``, ``pipe``, ``space``)."""
    if text is None:
        return None
    sep = _SEPARATOR_NAMES.get(text.lower(), text)
    if len(sep) != 1:
        raise ConfigError(f"--separator must be one character or one of {', '.join(_SEPARATOR_NAMES)}; got {text!r}")
    return sep


def parse_ks(text: str) -> tuple[int, ...]:
    """``--k 10,20`` as a tuple of positive integers."""
    try:
        ks = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--k must be comma-separated positive integers; got {text!r}") from None
    if not ks or min(ks) < 1:
        raise ConfigError(f"--k must be comma-separated positive integers; got {text!r}")
    return ks


def data_spec(
    *,
    data: Path,
    format: str | None,
    separator: str | None,
    user_col: str | None,
    item_col: str | None,
    time_col: str | None,
    rating_col: str | None,
    dedup: str,
    rating_scale: str | None,
    items: Path | None,
    items_format: str | None,
    items_id_col: str | None,
    item_map: Path | None,
) -> dict[str, Any]:
    """The ``DataSpec`` fields of the data options (``train_run`` records the paths absolute in config.json)."""
    from attnrec.data.loaders import parse_rating_scale

    return {
        "path": str(data),
        "format": format,
        "separator": parse_separator(separator),
        "user_col": user_col,
        "item_col": item_col,
        "time_col": time_col,
        "rating_col": rating_col,
        "dedup": dedup,
        "rating_scale": None if rating_scale is None else parse_rating_scale(rating_scale),
        "items_path": None if items is None else str(items),
        "items_format": items_format,
        "items_id_col": items_id_col,
        "item_id_map": None if item_map is None else str(item_map),
    }
