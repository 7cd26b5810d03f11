"""Benchmarks as data: a config file of datasets x models x seeds, one run folder per cell, resumable.

A benchmark config (TOML or JSON; ``docs/contracts.md``, "Benchmark config file") declares datasets (a log and
its data, split and evaluation options), models (a registry name, an optional label and hyperparameters),
seeds, cut-offs and the headline metric. :func:`plan_benchmark` turns it into :class:`Cell` objects, one per
(dataset, model, seed), each with a run configuration and a key (the sha256 of everything that decides its
result: the run configuration without threads/device, and the sha256 of every data file).

:func:`run_cell` trains one cell with :func:`attnrec.runs.train_run` into its folder, saves the per-user test
values (``per_user_test.npz``, for the report's confidence intervals and paired tests) and writes
``benchmark_cell.json`` last. A cell whose marker holds the same key is finished and never recomputed; a
folder without the marker (a killed cell) is removed and the cell trained again (or continued from its
checkpoints with ``resume=True``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from attnrec.errors import AttnRecError, ConfigError
from attnrec.io import read_json, write_json
from attnrec.training.options import torch_threads

CELL_JSON = "benchmark_cell.json"
PER_USER_NPZ = "per_user_test.npz"
CTR_TEST_NPZ = "ctr_test.npz"
CELL_FORMAT = 1
MINIMISED = ("rmse", "mae", "logloss")
"""Metrics where lower is better (the best model is the one with the lowest mean)."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_SIDE_FILES = {"items": "items_path", "users": "users_path", "item_map": "item_id_map"}
"""Config keys naming side files -> the ``DataSpec`` field they fill."""
_DATA_KEYS = (
    "format",
    "separator",
    "user_col",
    "item_col",
    "time_col",
    "rating_col",
    "dedup",
    "rating_scale",
    "items_format",
    "items_id_col",
    "items_kinds",
    "users_format",
    "users_id_col",
    "users_kinds",
    "cold_items",
)
_RUN_KEYS = (
    "task",
    "labels",
    "label_threshold",
    "label_negatives",
    "split",
    "test_frac",
    "valid_frac",
    "min_user_interactions",
    "min_item_interactions",
    "min_rating",
    "eval_negatives",
    "negative_sampling",
    "keep_seen",
)
DATASET_KEYS = ("name", "path", *_SIDE_FILES, *_DATA_KEYS, *_RUN_KEYS)
"""Every key a ``[[datasets]]`` entry accepts."""


class CellTimeoutError(AttnRecError):
    """A cell ran past its ``time_limit`` (raised inside the cell by the caller's guard)."""


class ModelEntry(BaseModel):
    """One ``[[models]]`` entry: a registry name, its hyperparameters and an optional wall-time limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Registry name (``attnrec models``)."""
    label: str | None = None
    """The row name in the report and the cell folder name (default: ``name``); unique in the config."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Hyperparameters; the model's defaults for the ones not given."""
    time_limit: float | None = Field(default=None, gt=0)
    """Seconds of wall time per cell (fit + evaluation); a cell past it is recorded as timed out."""

    @property
    def key(self) -> str:
        return self.label or self.name


class Reference(BaseModel):
    """One ``[[references]]`` entry: published figures shown under a dataset's table, for comparison only (never
    computed, never the best model, never in a paired test)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    """The name of a dataset of the config."""
    label: str = Field(min_length=1)
    """The row name, with its source (e.g. ``"BERT4Rec (Klenitskiy & Vasilev, RecSys 2023)"``)."""
    values: dict[str, float] = Field(min_length=1)
    """Metric -> published value; metrics of the table's columns (or the headline metric)."""


class BenchmarkConfig(BaseModel):
    """A whole benchmark config file (``docs/contracts.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """The benchmark's name (the default ``--section`` of ``--update-docs``)."""
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1)
    ks: list[int] = Field(default_factory=lambda: [10, 20], min_length=1)
    metric: str = "ndcg@10"
    """The headline metric: best model, confidence intervals, paired tests, plots."""
    columns: list[str] | None = None
    """Table columns (default: hr, ndcg, mrr and coverage at the first k)."""
    threads: int | None = Field(default=None, ge=1)
    device: str = "auto"
    time_limit: float | None = Field(default=None, gt=0)
    """Default wall-time limit of every cell (a model's own ``time_limit`` wins)."""
    datasets: list[dict[str, Any]] = Field(min_length=1)
    models: list[ModelEntry] = Field(min_length=1)
    references: list[Reference] = Field(default_factory=list)
    """Published figures shown under the tables (they decide nothing: no cell, key, best model or test)."""

    def table_columns(self) -> list[str]:
        if self.columns:
            return list(self.columns)
        k = self.ks[0]
        return [f"{m}@{k}" for m in ("hr", "ndcg", "mrr", "coverage")]

    @property
    def minimise(self) -> bool:
        return self.metric.split("@")[0] in MINIMISED


@dataclass(frozen=True)
class DatasetPlan:
    name: str
    files: dict[str, str]
    """Role (``data``, ``items``, ``users``, ``item_map``) -> absolute path."""
    sha256: dict[str, str]
    """Role -> sha256 of the file."""


@dataclass(frozen=True)
class Cell:
    """One (dataset, model, seed) run of a benchmark."""

    dataset: str
    model: str
    """The model entry's label (its key in the report)."""
    seed: int
    run_config: Any  # attnrec.runs.RunConfig
    folder: Path
    key: str
    time_limit: float | None
    needs: tuple[Cell, ...] = ()
    """Cells whose run folders this cell reads (a ``fusion`` whose members are ``{cell = LABEL}``)."""
    legacy_key: str | None = None
    """The key of markers written before keys held every hyperparameter (only the ones the config file gave):
    such a marker still counts when the run's stored hyperparameters equal today's (see :func:`marker_matches`)."""
    sha256: dict[str, str] = field(default_factory=dict)
    """Role of each data file (``data``, ``items``, ...) -> sha256 of its contents, as in :attr:`key`."""
    trained: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Filled by :func:`same_trained_run`: the hyperparameters this cell trains with (read from its data once)."""

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.model}/seed-{self.seed}"


@dataclass(frozen=True)
class BenchmarkPlan:
    config: BenchmarkConfig
    datasets: list[DatasetPlan]
    cells: list[Cell]
    source: Path | None
    """The config file (``None`` for the single-dataset command line form)."""


@dataclass
class CellOutcome:
    cell: Cell
    status: Literal["done", "timeout", "failed"]
    skipped: bool
    """True when the cell was already finished (nothing was computed)."""
    seconds: float = 0.0
    message: str = ""
    metrics: dict[str, Any] | None = None


# ------------------------------------------------------------------------------------------------ config file
def read_benchmark_config(path: Path) -> BenchmarkConfig:
    """Read and validate a benchmark config file (``.toml`` or ``.json``); errors name the file and the key."""
    if not path.is_file():
        raise ConfigError(f"--config {path}: file not found")
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'} ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a table of keys; got {type(raw).__name__}")
    return parse_benchmark_config(raw, where=str(path))


def parse_benchmark_config(raw: dict[str, Any], *, where: str = "benchmark config") -> BenchmarkConfig:
    """A :class:`BenchmarkConfig` from parsed TOML/JSON values (``where`` prefixes the error messages)."""
    try:
        config = BenchmarkConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_pydantic_line(exc)}") from None
    _check_names(config, where)
    return config


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _pydantic_line(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> str:
    err = exc.errors()[0]
    loc = (*prefix, *err.get("loc", ()))
    if err.get("type") == "extra_forbidden":
        return f"{_key_path(loc)}: unknown key"
    if err.get("type") == "missing":
        return f"{_key_path(loc)}: required key is missing"
    return f"{_key_path(loc)}: {err['msg']}; got {err.get('input')!r}"


def _check_names(config: BenchmarkConfig, where: str) -> None:
    from attnrec.evaluation.metrics import RANKING_METRICS

    for i, entry in enumerate(config.datasets):
        unknown = [k for k in entry if k not in DATASET_KEYS]
        if unknown:
            raise ConfigError(f"{where}: datasets[{i}].{unknown[0]}: unknown key (valid: {', '.join(DATASET_KEYS)})")
        for key in ("name", "path"):
            if key not in entry:
                raise ConfigError(f"{where}: datasets[{i}].{key}: required key is missing")
    for what, names in (
        ("datasets", [str(d["name"]) for d in config.datasets]),
        ("models", [m.key for m in config.models]),
    ):
        for i, name in enumerate(names):
            key = "name" if what == "datasets" else ("label" if config.models[i].label else "name")
            if not _NAME.match(name):
                raise ConfigError(
                    f"{where}: {what}[{i}].{key}: must be letters, digits, '.', '_' or '-' (a folder name); "
                    f"got {name!r}"
                )
            if names.index(name) != i:
                raise ConfigError(f"{where}: {what}[{i}].{key}: {name!r} is used twice (give a distinct label)")
    for i, entry_m in enumerate(config.models):
        earlier = [m.key for m in config.models[:i]]
        for j, label in cell_members(entry_m.params):
            if label not in earlier:
                raise ConfigError(
                    f"{where}: models[{i}].params.members[{j}].cell: must name a model listed before this one "
                    f"(its cells are the members; listed before: {', '.join(earlier) or 'none'}); got {label!r}"
                )
    datasets = [str(d["name"]) for d in config.datasets]
    shown = {*config.table_columns(), config.metric}
    for i, ref in enumerate(config.references):
        if ref.dataset not in datasets:
            raise ConfigError(
                f"{where}: references[{i}].dataset: must name a dataset of the config ({', '.join(datasets)}); "
                f"got {ref.dataset!r}"
            )
        for metric in ref.values:
            if metric not in shown:
                raise ConfigError(
                    f"{where}: references[{i}].values.{metric}: not a column of the table ({', '.join(sorted(shown))})"
                )
    if len(set(config.seeds)) != len(config.seeds):
        raise ConfigError(f"{where}: seeds: each seed once; got {config.seeds}")
    if min(config.ks) < 1:
        raise ConfigError(f"{where}: ks: cut-offs must be positive integers; got {config.ks}")
    for key, metrics in (("metric", [config.metric]), ("columns", config.columns or [])):
        for metric in metrics:
            base, _, k = metric.partition("@")
            known = base in (*RANKING_METRICS, "coverage") and k.isdigit() and int(k) in config.ks
            if not (known or (not k and base in (*MINIMISED, "auc", "gauc"))):
                raise ConfigError(
                    f"{where}: {key}: {metric!r} is not a metric this benchmark computes (a ranking metric at one "
                    f"of ks {config.ks} such as 'ndcg@{config.ks[0]}', or rmse, mae, auc, gauc, logloss)"
                )


def cell_members(params: dict[str, Any]) -> list[tuple[int, str]]:
    """``(position, label)`` of the members given as ``{cell = LABEL}`` in ``params["members"]`` (fusion)."""
    members = params.get("members")
    if not isinstance(members, list | tuple):
        return []
    return [(j, str(m["cell"])) for j, m in enumerate(members) if isinstance(m, dict) and set(m) == {"cell"}]


def _with_member_runs(params: dict[str, Any], runs: dict[str, str]) -> dict[str, Any]:
    """``params`` with each member ``{cell = LABEL}`` replaced by ``{run = runs[LABEL]}``."""
    if not cell_members(params):
        return dict(params)
    members = [
        {"run": runs[str(m["cell"])]} if isinstance(m, dict) and set(m) == {"cell"} else m for m in params["members"]
    ]
    return {**params, "members": members}


# ------------------------------------------------------------------------------------------------------ plan
def plan_benchmark(
    config: BenchmarkConfig,
    out: Path,
    *,
    source: Path | None = None,
    base_dir: Path | None = None,
    flat: bool = False,
    threads: int | None = None,
    device: str | None = None,
    where: str = "benchmark config",
) -> BenchmarkPlan:
    """Resolve paths (relative to ``base_dir``, the config file's folder), fingerprint the data files, check
    every model's hyperparameters and build the cells (``flat``: the single-dataset form, ``out/LABEL``;
    otherwise ``out/cells/DATASET/LABEL/seed-N``)."""
    from attnrec.registry import create_model
    from attnrec.runs import DataSpec, file_sha256

    base = base_dir or Path.cwd()
    for i, model_entry in enumerate(config.models):
        placeholders = {label: f"<cell {label}>" for _, label in cell_members(model_entry.params)}
        try:
            create_model(model_entry.name, _with_member_runs(model_entry.params, placeholders))
        except ConfigError as exc:
            raise ConfigError(f"{where}: models[{i}] ({model_entry.key}): {exc}") from None
    datasets: list[DatasetPlan] = []
    cells: list[Cell] = []
    for i, entry in enumerate(config.datasets):
        name = str(entry["name"])
        files: dict[str, str] = {}
        for key in ("path", *_SIDE_FILES):
            if entry.get(key) is None:
                continue
            path = Path(str(entry[key])).expanduser()
            path = path if path.is_absolute() else base / path
            if not path.is_file():
                raise ConfigError(f"{where}: datasets[{i}].{key}: file not found: {path}")
            files["data" if key == "path" else key] = str(path.resolve())
        sha = {role: file_sha256(p) for role, p in files.items()}
        spec_fields = {k: entry[k] for k in _DATA_KEYS if k in entry}
        spec_fields.update({_SIDE_FILES[k]: files[k] for k in _SIDE_FILES if k in files})
        settings = {k: entry[k] for k in _RUN_KEYS if k in entry}
        try:
            spec = DataSpec(path=files["data"], **spec_fields)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_pydantic_line(exc, ('datasets', i))}") from None
        datasets.append(DatasetPlan(name, files, sha))
        planned: dict[tuple[str, int], Cell] = {}
        for entry_m in config.models:
            refs = [label for _, label in cell_members(entry_m.params)]
            for seed in config.seeds:
                needs = tuple(planned[(label, seed)] for label in refs)
                folder = out / entry_m.key if flat else out / "cells" / name / entry_m.key / f"seed-{seed}"

                build = partial(
                    _run_config,
                    entry_m.name,
                    spec=spec,
                    seed=seed,
                    ks=tuple(config.ks),
                    threads=threads if threads is not None else config.threads,
                    device=device or config.device,
                    settings=settings,
                    where=where,
                    prefix=("datasets", i),
                )
                run_config = build(_with_member_runs(entry_m.params, {c.model: str(c.folder) for c in needs}))
                # the key of a cell built on other cells holds their keys, not their folders: moving --out
                # keeps it, retraining a member (another key) reruns it
                keyed = (
                    build(_with_member_runs(entry_m.params, {c.model: f"cell:{c.key}" for c in needs}))
                    if needs
                    else run_config
                )
                cell = Cell(
                    dataset=name,
                    model=entry_m.key,
                    seed=seed,
                    run_config=run_config,
                    folder=folder,
                    key=cell_key(keyed, sha),
                    time_limit=entry_m.time_limit or config.time_limit,
                    needs=needs,
                    legacy_key=None if needs else cell_key(keyed, sha, all_params=False),
                    sha256=dict(sha),
                )
                planned[(entry_m.key, seed)] = cell
                cells.append(cell)
    return BenchmarkPlan(config, datasets, cells, source)


def _run_config(
    model: str,
    params: dict[str, Any],
    *,
    spec: Any,
    seed: int,
    ks: tuple[int, ...],
    threads: int | None,
    device: str,
    settings: dict[str, Any],
    where: str,
    prefix: tuple[Any, ...],
) -> Any:
    """The resolved :class:`attnrec.runs.RunConfig` of one cell."""
    from attnrec.runs import RunConfig

    try:
        return RunConfig(
            model=model, params=params, data=spec, seed=seed, ks=ks, threads=threads, device=device, **settings
        ).resolved()
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_pydantic_line(exc, prefix)}") from None


NEUTRAL_PARAMS: dict[str, Any] = {"ema_decay": None, "output_transform": True, "init_std": None}
"""Hyperparameters added after benchmark records existed (``ema_decay`` to every neural model,
``output_transform`` and ``init_std`` to BERT4Rec), with the value at which a run is exactly the earlier one: at
that value they are left out of :func:`model_params` (and so of the cell keys), so adding an option does not
invalidate the finished cells it does not change."""


def model_params(run_config: Any) -> dict[str, Any]:
    """Every hyperparameter of the cell's model, the defaults of this attnrec version filled in (JSON values),
    except the :data:`NEUTRAL_PARAMS` at their neutral value."""
    from attnrec.registry import get_model_class

    config = get_model_class(run_config.model).config_class.create(dict(run_config.params))
    return without_neutral(json.loads(json.dumps(config.model_dump(mode="json"))))


def without_neutral(params: Any) -> Any:
    """``params`` (a run folder's stored hyperparameters) without the :data:`NEUTRAL_PARAMS` at their neutral
    value; anything but a dict is returned as it is."""
    if not isinstance(params, dict):
        return params
    return {k: v for k, v in params.items() if not (k in NEUTRAL_PARAMS and v == NEUTRAL_PARAMS[k])}


def cell_key(
    run_config: Any, sha256: dict[str, str], *, all_params: bool = True, params: dict[str, Any] | None = None
) -> str:
    """sha256 of what decides a cell's result: the run configuration (without ``threads``, ``device`` and
    ``processes``, which decide only where and how fast it runs; data paths replaced by their contents'
    sha256), every hyperparameter of the model (defaults included, so a release that changes a default reruns
    the cells it touches) and the data files' sha256. ``all_params=False``: the key of earlier releases
    (hyperparameters as the config gave them); ``params``: these hyperparameters instead."""
    payload = run_config.model_dump(mode="json", exclude={"threads", "device", "processes"})
    if params is not None:
        payload["params"] = params
    elif all_params:
        payload["params"] = model_params(run_config)
    data = dict(payload["data"])
    for name in ("path", "items_path", "users_path", "item_id_map"):
        data.pop(name, None)
    payload["data"] = data
    payload["files_sha256"] = dict(sorted(sha256.items()))
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------------------- cells
def read_marker(cell: Cell) -> dict[str, Any] | None:
    """The cell's ``benchmark_cell.json`` when it exists and is readable, else ``None``."""
    path = cell.folder / CELL_JSON
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except Exception:  # a torn or foreign file: the cell is not finished
        return None
    return data if isinstance(data, dict) else None


def trained_params(run_config: Any, rules: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters a run of ``run_config`` trains with: every one of its model's (defaults filled in),
    those left to the data replaced by the data rules' values ``rules`` (JSON values, without the
    :data:`NEUTRAL_PARAMS` at their neutral value)."""
    from attnrec.registry import get_model_class

    config = get_model_class(run_config.model).config_class.create(dict(run_config.params))
    return without_neutral(json.loads(json.dumps({**config.model_dump(mode="json"), **rules})))


def same_trained_run(cell: Cell, folder: Path) -> bool:
    """True when ``folder`` (the cell's own folder, or its copy in a record) holds a finished run that trained
    exactly as this cell would, although its marker has another key: the run configuration is the cell's except
    for hyperparameters (same model, data contents, split, seed, ...), and the hyperparameters it trained with
    (its ``config.json`` with the data rules' values of its ``metrics.json``) equal the ones this release
    trains the cell with (its config with the rules applied to the cell's training data, which this loads).
    So a default that became a rule from the data, and gives the earlier value on some data, keeps those
    cells. Only for cells of one data file and no member cells (other files' contents are not in a run's
    config); anything unreadable is False."""
    from attnrec.registry import create_model, get_model_class
    from attnrec.runs import RunConfig, load_data

    rc = cell.run_config
    if cell.needs or set(cell.sha256) != {"data"}:
        return False
    try:
        stored = read_json(folder / "config.json")
        metrics = read_json(folder / "metrics.json")
        if not isinstance(stored, dict) or not isinstance(metrics, dict):
            return False
        if stored.get("model") != rc.model or (stored.get("data") or {}).get("sha256") != cell.sha256["data"]:
            return False
        known = get_model_class(rc.model).config_class.model_fields
        neutral = {k: v for k, v in NEUTRAL_PARAMS.items() if k in known}  # options added since: at neutral
        fields = {k: v for k, v in stored.items() if k in RunConfig.model_fields}
        fields["params"] = {**neutral, **(stored.get("params") or {})}
        # where the run found its files (paths, the data's sha256) is not part of the key: the cell's
        located = ("sha256", "path_from_run", "items_from_run", "users_from_run")
        fields["data"] = {**fields["data"], **{k: getattr(rc.data, k) for k in located}}
        stored_rc = RunConfig.model_validate(fields)
        if cell_key(stored_rc, cell.sha256, params={}) != cell_key(rc, cell.sha256, params={}):
            return False
        stored_rules = {k: v["value"] for k, v in ((metrics.get("fit") or {}).get("data_rules") or {}).items()}
        if "params" not in cell.trained:
            rules = create_model(rc.model, rc.params).rules_for(load_data(rc).split.train)
            cell.trained["params"] = trained_params(rc, {k: v for k, (v, _) in rules.items()})
        return bool(trained_params(stored_rc, stored_rules) == cell.trained["params"])
    except Exception:  # a torn file, a removed option, unreadable data: not the same run
        return False


def marker_matches(cell: Cell, marker: dict[str, Any] | None) -> bool:
    """True when ``marker`` was written for this very configuration: its key is the cell's, or it is the
    earlier releases' key and the run folder's stored hyperparameters (``config.json``, defaults filled in at
    training time) equal the ones this version resolves (then the marker is upgraded to the new key)."""
    if marker is None:
        return False
    if marker.get("key") == cell.key:
        return True
    if marker.get("status") == "done" and same_trained_run(cell, cell.folder):
        pass  # another key, the same training: the marker is upgraded to this key
    elif cell.legacy_key is None or marker.get("key") != cell.legacy_key:
        return False
    else:
        stored = read_json(cell.folder / "config.json") if (cell.folder / "config.json").is_file() else None
        if not isinstance(stored, dict) or without_neutral(stored.get("params")) != model_params(cell.run_config):
            return False
    upgraded = {**marker, "key": cell.key}
    tmp = cell.folder / (CELL_JSON + ".tmp")
    write_json(tmp, upgraded)
    os.replace(tmp, cell.folder / CELL_JSON)
    return True


def is_finished(cell: Cell) -> bool:
    """True when the cell's folder holds a result of this very configuration (:func:`marker_matches`): a
    finished run (``metrics.json`` present) or a timeout under the same or a larger limit."""
    if not marker_matches(cell, read_marker(cell)):
        return False
    marker = read_marker(cell) or {}
    if marker.get("status") == "done":
        return (cell.folder / "metrics.json").is_file()
    if marker.get("status") == "timeout":
        limit = marker.get("time_limit")
        return limit is not None and cell.time_limit is not None and float(limit) >= cell.time_limit
    return False


def host_info() -> dict[str, Any]:
    """The CPU (``/proc/cpuinfo``, else ``lscpu``, else ``platform``), core count and OS of this machine."""
    return {"cpu": cpu_name(), "cores": os.cpu_count() or 0, "platform": platform.platform()}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        import subprocess

        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5, check=False).stdout
        for line in text.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown"


def run_cell(
    cell: Cell,
    *,
    resume: bool = False,
    replace_stale: bool = True,
    progress: Any | None = None,
    on_data_loaded: Callable[[Any], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    time_guard: Callable[[float | None], AbstractContextManager[Any]] | None = None,
) -> CellOutcome:
    """Train one cell unless it is finished; returns what happened.

    ``resume``: a killed neural cell (its folder has ``config.json`` but no marker) continues from its
    checkpoints instead of starting again. ``replace_stale``: a folder holding another configuration's result
    (another key) is replaced; otherwise that is a :class:`ConfigError` (the single-dataset form, whose folders
    ``out/NAME`` may be a user's earlier runs). ``time_guard(seconds)``: a context manager raising
    :class:`CellTimeoutError` inside the block when the cell's ``time_limit`` passes (the CLI's uses ``SIGALRM``).
    """
    from attnrec.runs import train_run

    if is_finished(cell):
        marker = read_marker(cell) or {}
        status = marker.get("status", "done")
        return CellOutcome(
            cell,
            status,
            True,
            float(marker.get("seconds", 0.0)),
            str(marker.get("message", "")),
            _read_metrics(cell.folder) if status == "done" else None,
        )
    for need in cell.needs:
        found_need = read_marker(need)
        if not is_finished(need) or (found_need or {}).get("status") != "done":
            state = "not run" if found_need is None else str(found_need.get("status", "unfinished"))
            raise ConfigError(
                f"{cell.name}: member cell {need.name} has no finished run ({state}); it must finish first"
            )
        if (found_need or {}).get("restored_from"):  # attnrec.evaluation.record.RESTORED_KEY
            raise ConfigError(
                f"{cell.name}: member cell {need.name} was restored from a benchmark record without its model "
                f"({need.folder}); remove that folder and run the benchmark again to compute it here"
            )
    folder = cell.folder
    continuing = False
    if folder.exists():
        found = read_marker(cell)
        finished_other = found is not None or (folder / "metrics.json").is_file()
        if finished_other and not replace_stale:
            raise ConfigError(f"{folder} holds a finished run of another configuration: remove it or use another --out")
        continuing = resume and found is None and resumable(cell)
        if not continuing:
            shutil.rmtree(folder)
    loaded: list[Any] = []

    def data_loaded(data: Any) -> None:
        loaded.append(data)
        if on_data_loaded is not None:
            on_data_loaded(data)

    guard = time_guard(cell.time_limit) if time_guard is not None and cell.time_limit else nullcontext()
    start = time.perf_counter()
    try:
        with guard, torch_threads(cell.run_config.threads):  # the test arrays below at --threads too
            result = train_run(
                cell.run_config,
                folder,
                progress=progress,
                resume=continuing,
                on_data_loaded=data_loaded,
                on_epoch=on_epoch,
            )
            per_user = (
                _per_user_test(result.model, loaded[0], cell.run_config, progress, result.evaluations.get("test"))
                if loaded
                else None
            )
            ctr_test = _ctr_test(result.model, loaded[0], cell.run_config) if loaded else None
    except CellTimeoutError as exc:
        seconds = time.perf_counter() - start
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        _write_marker(cell, "timeout", seconds, str(exc))
        return CellOutcome(cell, "timeout", False, seconds, str(exc))
    seconds = time.perf_counter() - start
    if per_user is not None:
        np.savez(folder / PER_USER_NPZ, **per_user)  # type: ignore[arg-type]
    if ctr_test is not None:
        np.savez(folder / CTR_TEST_NPZ, **ctr_test)  # type: ignore[arg-type]
    _write_marker(cell, "done", seconds, "")
    return CellOutcome(cell, "done", False, seconds, "", result.metrics)


def resumable(cell: Cell) -> bool:
    """True when the cell's folder holds a killed run of this very model configuration (its ``config.json`` has
    the cell's model, seed and hyperparameters), which ``--resume`` may continue; a killed run of another
    configuration (a default changed since) is started over instead of continued under the new key."""
    path = cell.folder / "config.json"
    if not path.is_file():
        return False
    try:
        stored = read_json(path)
    except Exception:  # a torn file: nothing to continue
        return False
    if not isinstance(stored, dict):
        return False
    rc = cell.run_config
    same_params = without_neutral(stored.get("params")) == model_params(rc)
    return stored.get("model") == rc.model and stored.get("seed") == rc.seed and same_params


def _read_metrics(folder: Path) -> dict[str, Any] | None:
    data = read_json(folder / "metrics.json")
    return data if isinstance(data, dict) else None


def _write_marker(cell: Cell, status: str, seconds: float, message: str) -> None:
    marker = {
        "format": CELL_FORMAT,
        "key": cell.key,
        "dataset": cell.dataset,
        "model": cell.model,
        "seed": cell.seed,
        "status": status,
        "seconds": round(seconds, 3),
        "time_limit": cell.time_limit,
        "message": message,
        "host": host_info(),
    }
    tmp = cell.folder / (CELL_JSON + ".tmp")
    write_json(tmp, marker)
    os.replace(tmp, cell.folder / CELL_JSON)  # the marker appears whole or not at all


def _per_user_test(
    model: Any, data: Any, run_config: Any, progress: Any | None, done: Any | None = None
) -> dict[str, np.ndarray] | None:
    """The test split's per-user metrics (``users`` + one array per metric), for ranking tasks; ``done``: the
    run's own test evaluation (``RunResult.evaluations["test"]``), reused instead of evaluating again."""
    from attnrec.evaluation import evaluate

    if run_config.task == "ctr" or len(data.split.targets("test")) == 0:
        return None
    if done is not None:
        return {"users": np.asarray(done.users, dtype=np.int64), **{k: v for k, v in done.per_user.items()}}
    result = evaluate(
        model,
        data.split,
        target="test",
        ks=run_config.ks,
        exclude_seen=not run_config.keep_seen,
        negatives=run_config.eval_negatives,
        negative_sampling=run_config.negative_sampling,
        seed=run_config.seed,
        progress=progress,
    )
    return {"users": np.asarray(result.users, dtype=np.int64), **{k: v for k, v in result.per_user.items()}}


def _ctr_test(model: Any, data: Any, run_config: Any) -> dict[str, np.ndarray] | None:
    """Task ``ctr``: the test impressions' users, labels and scores (``probabilistic``: whether the scores are
    probabilities), for the report's user-bootstrap intervals and paired tests."""
    from attnrec.evaluation import evaluate_ctr

    targets = data.split.targets("test")
    if run_config.task != "ctr" or len(targets) == 0:
        return None
    result = evaluate_ctr(model, targets, history=data.split.history_for("test").positives(), n_boot=0)
    assert targets.label is not None  # evaluate_ctr refuses unlabelled impressions
    return {
        "users": np.asarray(targets.user_idx, dtype=np.int64),
        "labels": np.asarray(targets.label, dtype=np.float64),
        "scores": np.asarray(result.scores, dtype=np.float64),
        "probabilistic": np.asarray([bool(model.predicts_probabilities)]),
    }


def read_ctr_test(folder: Path) -> dict[str, np.ndarray] | None:
    """A click-prediction cell's saved test impressions (``None`` when it has none)."""
    path = folder / CTR_TEST_NPZ
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        return {k: np.asarray(npz[k]) for k in npz.files}


def read_per_user(folder: Path) -> dict[str, np.ndarray] | None:
    """A cell's saved per-user test values (``None`` when it has none)."""
    path = folder / PER_USER_NPZ
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        return {k: np.asarray(npz[k]) for k in npz.files}


def iter_cells(plan: BenchmarkPlan, dataset: str) -> Iterator[Cell]:
    return (c for c in plan.cells if c.dataset == dataset)
