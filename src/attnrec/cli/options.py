"""The options shared by every command that reads a log (``train``, ``benchmark``): one set, one meaning.

Each option is an ``Annotated`` alias so that a command declares it by name and gets the same flag, default and
help text; :func:`data_spec` and :func:`run_settings` turn the values into the library's ``DataSpec`` and
``RunConfig`` fields.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

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
UsersPath = Annotated[
    Path | None,
    typer.Option(
        "--users", help="User side information (users.dat, u.user, CSV/TSV/Parquet columns).", rich_help_panel=DATA
    ),
]
UsersFormat = Annotated[str | None, typer.Option(help="Force the --users format.", rich_help_panel=DATA)]
UsersIdCol = Annotated[
    str | None,
    typer.Option(
        help="User id column of --users (default: the log's user column, else user_id).", rich_help_panel=DATA
    ),
]
FieldKind = Annotated[
    list[str] | None,
    typer.Option(
        "--field-kind",
        help="Kind of a column of a --items/--users table: [items:|users:]NAME=categorical|multi|numeric|text "
        "(repeatable; without a prefix it applies to the table that has the column).",
        rich_help_panel=DATA,
    ),
]
ColdItems = Annotated[
    bool,
    typer.Option(
        "--cold-items/--no-cold-items",
        help="Add the --items entries without events to the catalogue (scored, recommended and served).",
        rich_help_panel=DATA,
    ),
]
Task = Annotated[
    str | None,
    typer.Option(help="ranking | ctr (click prediction on labelled impressions). Default: the model's task."),
]
Labels = Annotated[
    str,
    typer.Option(
        help="Task ctr: labels from 'ratings' (>= --label-threshold), 'sampled' negatives, or 'auto'.",
        rich_help_panel=SPLIT,
    ),
]
LabelThreshold = Annotated[float, typer.Option(help="Task ctr: ratings >= this are positive.", rich_help_panel=SPLIT)]
LabelNegatives = Annotated[
    int, typer.Option(help="Task ctr without ratings: sampled negatives per positive.", rich_help_panel=SPLIT)
]
SplitName = Annotated[
    str | None,
    typer.Option(
        help="leave-one-out | temporal | ratio | random. Default: leave-one-out (ranking), random (ctr).",
        rich_help_panel=SPLIT,
    ),
]
TestFrac = Annotated[float, typer.Option(help="Test fraction (temporal/ratio).", rich_help_panel=SPLIT)]
ValidFrac = Annotated[float, typer.Option(help="Validation fraction (temporal/ratio).", rich_help_panel=SPLIT)]
MinUser = Annotated[int, typer.Option(help="k-core: minimum events per user.", rich_help_panel=SPLIT)]
MinItem = Annotated[int, typer.Option(help="k-core: minimum events per item.", rich_help_panel=SPLIT)]
MinRating = Annotated[float | None, typer.Option(help="Keep events rated at least this.", rich_help_panel=SPLIT)]
Seed = Annotated[int, typer.Option(help="Random seed.")]
Threads = Annotated[int | None, typer.Option(help="Torch/BLAS threads (default: all cores).")]
DEVICES = "Devices and processes"
Device = Annotated[
    str | None,
    typer.Option(
        help="auto (the GPU when there is one, else the CPU) | cpu | cuda | cuda:N. Default auto (train: the run's "
        "device with --resume).",
        rich_help_panel=DEVICES,
    ),
]
Processes = Annotated[
    int | None,
    typer.Option(
        help="Training processes on this machine (neural models): runs the command under torchrun, each process "
        "with --threads threads (default: the cores divided among them). Default 1 (the run's with --resume).",
        rich_help_panel=DEVICES,
    ),
]
Nnodes = Annotated[
    int, typer.Option(help="Machines of a multi-machine job (with --processes on each).", rich_help_panel=DEVICES)
]
NodeRank = Annotated[
    int, typer.Option(help="This machine's rank, 0..nnodes-1 (0: the master).", rich_help_panel=DEVICES)
]
MasterAddr = Annotated[
    str | None,
    typer.Option(help="Address of the --node-rank 0 machine (multi-machine jobs).", rich_help_panel=DEVICES),
]
MasterPort = Annotated[int, typer.Option(help="TCP port on the master machine.", rich_help_panel=DEVICES)]
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


def parse_field_kinds(specs: list[str] | None, items: Path | None, users: Path | None) -> dict[str, Any]:
    """``--field-kind [items:|users:]NAME=KIND`` values as ``{"items_kinds": {...}, "users_kinds": {...}}``.

    Without a prefix the kind goes to the only feature file given (an error when both are given)."""
    out: dict[str, dict[str, str]] = {}
    for spec in specs or []:
        target, sep, rest = spec.partition(":")
        if not sep or target not in ("items", "users"):
            target, rest = "", spec
        name, eq, kind = rest.partition("=")
        if not eq or not name.strip() or not kind.strip():
            raise ConfigError(f"--field-kind expects [items:|users:]NAME=KIND; got {spec!r}")
        if not target:
            given = [t for t, p in (("items", items), ("users", users)) if p is not None]
            if len(given) != 1:
                raise ConfigError(
                    f"--field-kind {spec!r}: say which table it is for (items:{rest} or users:{rest})"
                    if given
                    else f"--field-kind {spec!r} needs --items or --users"
                )
            target = given[0]
        out.setdefault(f"{target}_kinds", {})[name.strip()] = kind.strip()
    return out


@dataclass(frozen=True)
class LogOptions:
    """The values of the shared options, as one object handed to the command (see :func:`with_log_options`)."""

    data: Path | None = None
    format: str | None = None
    separator: str | None = None
    user_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    rating_col: str | None = None
    dedup: str = "first"
    rating_scale: str | None = None
    items: Path | None = None
    items_format: str | None = None
    items_id_col: str | None = None
    item_map: Path | None = None
    users: Path | None = None
    users_format: str | None = None
    users_id_col: str | None = None
    field_kind: list[str] | None = None
    cold_items: bool = False
    task: str | None = None
    labels: str = "auto"
    label_threshold: float = 4.0
    label_negatives: int = 4
    split: str | None = None
    test_frac: float = 0.1
    valid_frac: float = 0.1
    min_user_interactions: int = 0
    min_item_interactions: int = 0
    min_rating: float | None = None
    seed: int = 42
    threads: int | None = None
    k: str = "10,20"
    eval_negatives: int | None = None
    negative_sampling: str = "uniform"
    keep_seen: bool = False

    def data_spec(self) -> dict[str, Any]:
        """The ``DataSpec`` fields (``train_run`` records the paths absolute in config.json)."""
        from attnrec.data.loaders import parse_rating_scale

        if self.data is None:
            raise ConfigError("--data is required: the interaction log to read")
        return {
            "path": str(self.data),
            "format": self.format,
            "separator": parse_separator(self.separator),
            "user_col": self.user_col,
            "item_col": self.item_col,
            "time_col": self.time_col,
            "rating_col": self.rating_col,
            "dedup": self.dedup,
            "rating_scale": None if self.rating_scale is None else parse_rating_scale(self.rating_scale),
            "items_path": None if self.items is None else str(self.items),
            "items_format": self.items_format,
            "items_id_col": self.items_id_col,
            "item_id_map": None if self.item_map is None else str(self.item_map),
            "users_path": None if self.users is None else str(self.users),
            "users_format": self.users_format,
            "users_id_col": self.users_id_col,
            "cold_items": self.cold_items,
            **parse_field_kinds(self.field_kind, self.items, self.users),
        }

    def run_settings(self) -> dict[str, Any]:
        """The ``RunConfig`` fields other than model, params and data."""
        return {
            "task": self.task,
            "labels": self.labels,
            "label_threshold": self.label_threshold,
            "label_negatives": self.label_negatives,
            "split": self.split,
            "test_frac": self.test_frac,
            "valid_frac": self.valid_frac,
            "min_user_interactions": self.min_user_interactions,
            "min_item_interactions": self.min_item_interactions,
            "min_rating": self.min_rating,
            "seed": self.seed,
            "threads": self.threads,
            "ks": parse_ks(self.k),
            "eval_negatives": self.eval_negatives,
            "negative_sampling": self.negative_sampling,
            "keep_seen": self.keep_seen,
        }


_OPTION_TYPES: dict[str, Any] = {
    "data": DataPath,
    "format": Format,
    "separator": Separator,
    "user_col": UserCol,
    "item_col": ItemCol,
    "time_col": TimeCol,
    "rating_col": RatingCol,
    "dedup": Dedup,
    "rating_scale": RatingScale,
    "items": ItemsPath,
    "items_format": ItemsFormat,
    "items_id_col": ItemsIdCol,
    "item_map": ItemMap,
    "users": UsersPath,
    "users_format": UsersFormat,
    "users_id_col": UsersIdCol,
    "field_kind": FieldKind,
    "cold_items": ColdItems,
    "task": Task,
    "labels": Labels,
    "label_threshold": LabelThreshold,
    "label_negatives": LabelNegatives,
    "split": SplitName,
    "test_frac": TestFrac,
    "valid_frac": ValidFrac,
    "min_user_interactions": MinUser,
    "min_item_interactions": MinItem,
    "min_rating": MinRating,
    "seed": Seed,
    "threads": Threads,
    "k": Ks,
    "eval_negatives": EvalNegatives,
    "negative_sampling": NegativeSampling,
    "keep_seen": KeepSeen,
}

F = TypeVar("F", bound=Callable[..., Any])


def with_log_options(func: F) -> F:
    """Give a typer command every option of :class:`LogOptions`; the command receives them as ``log``.

    The command's own parameters come first in ``--help``; the shared ones follow in their panels. The
    signature typer reads is rewritten, so each command that reads a log offers the same flags with the same
    defaults and help, declared once here.
    """
    sig = inspect.signature(func, eval_str=True)
    if "log" not in sig.parameters:
        raise TypeError(f"{func.__name__} must take a 'log: LogOptions' parameter")
    own = [p for p in sig.parameters.values() if p.name != "log"]
    defaults = LogOptions()
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=getattr(defaults, name))
        for name, kind in _OPTION_TYPES.items()
    ]

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _OPTION_TYPES if name in kwargs}
        return func(*args, log=LogOptions(**values), **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper  # type: ignore[return-value]
