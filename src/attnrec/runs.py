"""Run folders: train a model from a log, evaluate it and write everything a later command or service needs.

A run folder (``--out DIR``) holds, per ``docs/contracts.md``:

* ``config.json``: the fully resolved configuration (model and hyperparameters, data path and sha256
  fingerprint, format and columns, filters, split, seed, evaluation settings, library versions);
* ``model.json`` + ``model.safetensors`` + ``vocab.json``: the fitted model (never pickle);
* ``metrics.json``: validation and test metrics, timing, epochs;
* ``history.csv``: one row per epoch (neural models) or one summary row (closed-form models);
* ``item_features.json``: item titles and attributes when ``--items`` was given;
* ``user_features.json``: user features when ``--users`` was given.

Nothing is written when the data fails validation: the folder is created only after the data is loaded.
"""

from __future__ import annotations

import csv
import hashlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from attnrec import __version__
from attnrec.base import Recommender
from attnrec.data.interactions import Interactions
from attnrec.data.split import Split, prepare_split
from attnrec.errors import ConfigError, PersistenceError
from attnrec.io import read_json, write_json
from attnrec.registry import create_model
from attnrec.training import distributed
from attnrec.training.options import ProgressCallback, TrainingOptions, resolve_device, torch_threads

CONFIG_JSON = "config.json"
METRICS_JSON = "metrics.json"
HISTORY_CSV = "history.csv"
ITEM_FEATURES_JSON = "item_features.json"
USER_FEATURES_JSON = "user_features.json"
TASKS = ("ranking", "ctr")


class DataSpec(BaseModel):
    """Where the interactions come from and how to read them.

    Paths are stored as given by :func:`train_run` callers and written to ``config.json`` as absolute paths, with
    ``path_from_run`` (and ``items_from_run``) relative to the run folder, so that a run folder works from any
    working directory and still finds its data when the project folder moves with its data.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    format: str | None = None
    separator: str | None = None
    user_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    rating_col: str | None = None
    dedup: Literal["first", "last", "none"] = "first"
    rating_scale: tuple[float, float] | None = None
    items_path: str | None = None
    items_format: str | None = None
    items_id_col: str | None = None
    item_id_map: str | None = None
    sha256: str | None = None
    path_from_run: str | None = None
    items_from_run: str | None = None
    items_kinds: dict[str, str] | None = None
    users_path: str | None = None
    users_format: str | None = None
    users_id_col: str | None = None
    users_kinds: dict[str, str] | None = None
    users_from_run: str | None = None
    cold_items: bool = False
    """Add the items of ``items_path`` that have no event to the catalogue (indices after the items with events)."""


class RunConfig(BaseModel):
    """Everything that determines a run (saved as ``config.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    data: DataSpec
    split: Literal["leave-one-out", "temporal", "ratio", "random"] | None = None
    """``None``: the task's default (``leave-one-out`` for ranking, ``random`` for ctr); see :meth:`resolved`."""
    task: Literal["ranking", "ctr"] | None = None
    """``None``: the model's own ``task`` class attribute."""
    labels: Literal["auto", "ratings", "sampled"] = "auto"
    """Task ctr: how impressions are labelled (:func:`attnrec.data.labels.make_impressions`)."""
    label_threshold: float = 4.0
    """Task ctr with ratings: ratings ``>=`` this are positive."""
    label_negatives: Annotated[int, Field(ge=1)] = 4
    """Task ctr without ratings: sampled negatives per positive."""
    test_frac: float = 0.1
    valid_frac: float = 0.1
    min_user_interactions: int = 0
    min_item_interactions: int = 0
    min_rating: float | None = None
    seed: int = 42
    threads: int | None = None
    processes: Annotated[int, Field(ge=1)] = 1
    device: str = "auto"
    ks: tuple[int, ...] = (10, 20)
    eval_negatives: int | None = None
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    keep_seen: bool = False

    def resolved(self) -> RunConfig:
        """This configuration with ``task`` (the model's default) and ``split`` (the task's default) filled in.

        Raises:
            ConfigError: task ``ctr`` with a per-user split (``leave-one-out``, ``ratio``).
        """
        from attnrec.registry import get_model_class

        task = self.task or get_model_class(self.model).task
        split = self.split or ("random" if task == "ctr" else "leave-one-out")
        if task == "ctr" and split not in ("random", "temporal"):
            raise ConfigError(f"--split {split!r} does not apply to task 'ctr' (use random or temporal)")
        if task == "ctr" and self.eval_negatives is not None:
            raise ConfigError("--eval-negatives applies to task 'ranking' only; task 'ctr' scores its impressions")
        if self.task == task and self.split == split:
            return self
        return self.model_copy(update={"task": task, "split": split})


@dataclass
class LoadedData:
    interactions: Interactions
    split: Split
    features: Any | None = None
    fingerprint: str = ""
    load_report: Any | None = None
    split_report: Any | None = None
    user_features: Any | None = None


@dataclass
class RunResult:
    out: Path
    model: Recommender
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    evaluations: dict[str, Any] = field(default_factory=dict)
    """The ranking evaluations behind ``metrics`` by target (``"valid"``, ``"test"``), with per-user metrics."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(path: str, from_run: str | None, run: str | Path | None, *, what: str, flag: str) -> str:
    """The file of a recorded ``path``: as recorded (absolute since 0.2), else relative to the run folder."""
    if Path(path).is_file() or run is None:
        return path
    if from_run is not None:
        candidate = Path(run) / from_run
        if candidate.is_file():
            return str(candidate)
    raise ConfigError(
        f"{what} of run {run} not found at {path}"
        + (f" nor at {Path(run) / from_run}" if from_run else "")
        + f": pass {flag} PATH to point at the moved file (its sha256 is checked against the run's)"
    )


def load_data(config: RunConfig, *, run: str | Path | None = None) -> LoadedData:
    """Load, validate, filter and split the data of a run (raises DataError/ConfigError on bad input).

    ``run``: the run folder whose ``config`` this is; recorded paths that no longer exist are then looked up
    relative to it (``path_from_run``).
    """
    from attnrec.data.loaders import load_interactions_with_report

    spec = config.data
    path = locate(spec.path, spec.path_from_run, run, what="data", flag="--data")
    frame, report = load_interactions_with_report(
        path,
        format=spec.format,
        separator=spec.separator,
        user_col=spec.user_col,
        item_col=spec.item_col,
        time_col=spec.time_col,
        rating_col=spec.rating_col,
        dedup=spec.dedup,
        rating_scale=spec.rating_scale,
    )
    inter = Interactions.from_frame(frame)
    config = config.resolved()
    features = None
    if spec.items_path:
        from attnrec.data.features import load_item_features

        items_path = locate(spec.items_path, spec.items_from_run, run, what="item features", flag="--items")
        features = load_item_features(
            items_path,
            format=spec.items_format,
            id_map=spec.item_id_map,
            id_col=spec.items_id_col,
            log_item_col=spec.item_col,
            kinds=spec.items_kinds,
        )
    user_features = None
    if spec.users_path:
        from attnrec.data.features import load_user_features

        users_path = locate(spec.users_path, spec.users_from_run, run, what="user features", flag="--users")
        user_features = load_user_features(
            users_path,
            format=spec.users_format,
            id_col=spec.users_id_col,
            log_user_col=spec.user_col,
            kinds=spec.users_kinds,
        )
    if spec.cold_items and features is None:
        raise ConfigError("--cold-items adds the items of --items without events: pass --items FILE")
    catalogue = features.ids if (features is not None and spec.cold_items) else []
    if config.task == "ctr":
        from attnrec.data.labels import make_impressions, split_impressions
        from attnrec.data.split import FilterReport, PartCounts, filter_interactions

        if config.min_rating is not None:
            raise ConfigError("--min-rating does not apply to task 'ctr' (low ratings are its negatives)")
        log = inter
        if config.min_user_interactions or config.min_item_interactions:
            log = filter_interactions(
                inter,
                min_user_interactions=config.min_user_interactions,
                min_item_interactions=config.min_item_interactions,
            )
        impressions = make_impressions(
            log,
            source=config.labels,
            threshold=config.label_threshold,
            negatives=config.label_negatives,
            seed=config.seed,
        )
        assert config.split is not None
        split = split_impressions(
            impressions, config.split, test_frac=config.test_frac, valid_frac=config.valid_frac, seed=config.seed
        ).with_items(catalogue)
        split_report = FilterReport(
            config.split,
            "log",
            {"log": PartCounts.of(inter, log)},
            config.min_user_interactions,
            config.min_item_interactions,
            None,
        )
    else:
        assert config.split is not None
        split, split_report = prepare_split(
            inter,
            config.split,
            test_frac=config.test_frac,
            valid_frac=config.valid_frac,
            min_user_interactions=config.min_user_interactions,
            min_item_interactions=config.min_item_interactions,
            min_rating=config.min_rating,
            seed=config.seed,
            catalogue=catalogue,
        )
    return LoadedData(split.full, split, features, file_sha256(path), report, split_report, user_features)


def _versions() -> dict[str, str]:
    import polars
    import scipy
    import torch

    return {
        "attnrec": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "polars": polars.__version__,
        "torch": torch.__version__,
    }


def evaluate_split(
    model: Recommender,
    split: Split,
    config: RunConfig,
    *,
    targets: tuple[str, ...] = ("valid", "test"),
    ks: tuple[int, ...] | None = None,
    progress: ProgressCallback | None = None,
    results: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate a fitted model on the split's validation and test targets; returns the metrics.json parts.

    ``results``: when given, receives each ranking target's :class:`~attnrec.evaluation.EvaluationResult` (its
    per-user metrics), so that callers need not evaluate again.

    Task ``ctr`` (labelled impressions): AUC, GAUC and logloss (:func:`attnrec.evaluation.evaluate_ctr`).
    """
    from attnrec.evaluation import evaluate, evaluate_ratings

    if config.resolved().task == "ctr":
        return _evaluate_ctr_split(model, split, config, targets=targets)
    out: dict[str, Any] = {}
    protocol = "full"
    for target in targets:
        if len(split.targets(target)) == 0:
            out[target] = {}
            continue
        result = evaluate(
            model,
            split,
            target=target,
            ks=ks or config.ks,
            exclude_seen=not config.keep_seen,
            negatives=config.eval_negatives,
            negative_sampling=config.negative_sampling,
            seed=config.seed,
            progress=progress,
        )
        protocol = result.protocol
        if results is not None:
            results[target] = result
        values = {k: float(v) for k, v in result.summary.items()}
        if model.predicts_ratings and split.targets(target).rating is not None:
            values.update(evaluate_ratings(model, split.targets(target)))
        out[target] = values
        out[f"{target}_ci95"] = {
            m: list(result.confidence_interval(m)) for m in result.per_user if not m.startswith("coverage")
        }
        out[f"{target}_users"] = len(result.users)
        out[f"{target}_fallback"] = int(result.num_fallback)
        out[f"{target}_unreachable"] = int(getattr(result, "unreachable_targets", 0))
    out["protocol"] = protocol
    return out


def _evaluate_ctr_split(
    model: Recommender, split: Split, config: RunConfig, *, targets: tuple[str, ...]
) -> dict[str, Any]:
    from attnrec.evaluation import evaluate_ctr

    out: dict[str, Any] = {"protocol": "pointwise"}
    for target in targets:
        if len(split.targets(target)) == 0:
            out[target] = {}
            continue
        result = evaluate_ctr(
            model, split.targets(target), history=split.history_for(target).positives(), seed=config.seed
        )
        report = result.to_json()
        out[target] = dict(report["summary"])
        out[f"{target}_ci95"] = report["ci"]
        out[f"{target}_users"] = result.n_users
        out[f"{target}_impressions"] = result.n_impressions
        out[f"{target}_gauc_users"] = result.gauc_users
        out[f"{target}_fallback"] = 0
        out[f"{target}_unreachable"] = 0
    return out


def train_run(
    config: RunConfig,
    out: str | Path,
    *,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    on_data_loaded: Callable[[LoadedData], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Load data, fit ``config.model``, evaluate on validation and test, and write the run folder ``out``.

    A failed run leaves nothing behind: when loading, fitting, evaluating or saving raises, every file this call
    wrote is removed (and the folder too when this call created it). An interrupted run (``KeyboardInterrupt``)
    keeps its folder and checkpoints so that ``--resume`` can continue it. With ``resume`` the data must be the
    same file as the run's (its sha256 is checked).

    ``on_epoch`` receives each epoch's history row (``epoch``, ``loss``, ``valid_*``, ``seconds``) as it ends.

    Inside a torchrun job (``attnrec train --processes N``) every process calls this; only rank 0 writes the
    folder and evaluates, the others train with it and return a result without metrics.
    """
    out = Path(out)
    config = config.resolved()
    main = distributed.is_main_process()
    if main and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if main and out.is_dir() and any(out.iterdir()) and not resume:
        raise ConfigError(f"--out {out} already exists and is not empty (use a new folder, or --resume to continue)")
    resolve_device(config.device, "device")
    model = create_model(config.model, config.params)  # validates hyperparameters before any work
    if getattr(model, "needs_item_features", False) and not config.data.items_path:
        raise ConfigError(f"model {config.model!r} needs item features: pass --items FILE (none was given)")
    data = load_data(config, run=out if resume else None)
    if resume and config.data.sha256 and data.fingerprint != config.data.sha256:
        raise ConfigError(
            f"--resume {out}: the data changed since the run started ({config.data.path}: sha256 "
            f"{data.fingerprint[:12]}..., the run recorded {config.data.sha256[:12]}...); start a new run instead"
        )
    if data.features is not None or data.user_features is not None:
        model.set_features(data.features, data.user_features)
    if on_data_loaded is not None:
        on_data_loaded(data)
    if not main:
        model.fit(data.split.train, data.split.valid, options=_training_options(config, out, None, resume, None))
        return RunResult(out, model, {}, list(getattr(model, "history_", None) or []))
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with torch_threads(config.threads):  # training, evaluation and saving all at --threads
            return _fit_and_write(config, out, model, data, progress=progress, resume=resume, on_epoch=on_epoch)
    except Exception:
        if not resume:
            _remove_run_files(out, remove_folder=created)
        raise


def _remove_run_files(out: Path, *, remove_folder: bool) -> None:
    """Undo a failed run: the folder was empty (or absent) before it started, so everything in it is the run's."""
    import shutil

    if remove_folder:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _absolute_spec(spec: DataSpec, out: Path, fingerprint: str) -> DataSpec:
    """The data spec as written to config.json: absolute paths plus paths relative to the run folder."""
    import os

    def rel(path: str) -> str:
        return os.path.relpath(Path(path).resolve(), out.resolve())

    update: dict[str, Any] = {"sha256": fingerprint}
    if Path(spec.path).is_file():
        update.update(path=str(Path(spec.path).resolve()), path_from_run=rel(spec.path))
    if spec.items_path and Path(spec.items_path).is_file():
        update.update(items_path=str(Path(spec.items_path).resolve()), items_from_run=rel(spec.items_path))
    if spec.users_path and Path(spec.users_path).is_file():
        update.update(users_path=str(Path(spec.users_path).resolve()), users_from_run=rel(spec.users_path))
    if spec.item_id_map and Path(spec.item_id_map).is_file():
        update["item_id_map"] = str(Path(spec.item_id_map).resolve())
    return spec.model_copy(update=update)


def _fit_and_write(
    config: RunConfig,
    out: Path,
    model: Recommender,
    data: LoadedData,
    *,
    progress: ProgressCallback | None,
    resume: bool,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> RunResult:
    history: list[dict[str, Any]] = []
    resolved = config.model_copy(
        update={"params": model.get_config(), "data": _absolute_spec(config.data, out, data.fingerprint)}
    )
    config_json = resolved.model_dump(mode="json")
    config_json["versions"] = _versions()
    config_json["dataset"] = _dataset_info(config, data)
    reports = _data_reports(data)
    if reports:
        config_json["data_report"] = reports
    write_json(out / CONFIG_JSON, config_json)

    def log(row: dict[str, Any]) -> None:
        history.append(row)
        if on_epoch is not None:
            on_epoch(dict(row))

    options = _training_options(config, out, progress, resume, log)
    start = time.perf_counter()
    model.fit(data.split.train, data.split.valid, options=options)
    train_seconds = time.perf_counter() - start
    # the device asked for is config.device; the one used (a neural model's, else the CPU) is recorded too
    config_json["device_used"] = str(model.train_info_.get("device", "cpu"))
    config_json["world_size"] = distributed.world_size()
    write_json(out / CONFIG_JSON, config_json)
    evaluations: dict[str, Any] = {}
    metrics = evaluate_split(model, data.split, config, progress=progress, results=evaluations)
    # recommendations after training should use everything known about each user
    model.set_histories(data.split.full)
    model.save(out)
    if data.features is not None:
        data.features.save(out / ITEM_FEATURES_JSON)
    if data.user_features is not None:
        data.user_features.save(out / USER_FEATURES_JSON)
    info = dict(model.train_info_)
    # a resumed run's trainer restores the rows of the epochs before the interruption
    history = list(getattr(model, "history_", None) or history)
    summary = {
        "model": config.model,
        "task": config.task,
        "dataset": _dataset_info(config, data),
        "split": config.split,
        "protocol": metrics.pop("protocol"),
        "valid": metrics.get("valid", {}),
        "test": metrics.get("test", {}),
        "train_seconds": round(train_seconds, 3),
        "epochs": int(info.get("epochs_run", info.get("epochs", len(history) or 1))),
        "best_epoch": int(info.get("best_epoch", len(history) or 1)),
        "fit": fit_description(model, info, len(history)),
        "ci95": {"valid": metrics.get("valid_ci95", {}), "test": metrics.get("test_ci95", {})},
        "users_evaluated": {"valid": metrics.get("valid_users", 0), "test": metrics.get("test_users", 0)},
        "fallback_users": {"valid": metrics.get("valid_fallback", 0), "test": metrics.get("test_fallback", 0)},
        "unreachable_targets": {
            "valid": metrics.get("valid_unreachable", 0),
            "test": metrics.get("test_unreachable", 0),
        },
        **_ctr_counts(metrics),
    }
    summary.update(_ctr_counts(metrics))
    write_json(out / METRICS_JSON, summary)
    if not history:
        history = [{"epoch": 1, "loss": None, "seconds": round(train_seconds, 3)}]
    write_history(out / HISTORY_CSV, history)
    return RunResult(out, model, summary, history, evaluations)


def _ctr_counts(metrics: dict[str, Any]) -> dict[str, Any]:
    """Task ctr's extra metrics.json keys: impressions and GAUC users per target (empty for ranking)."""
    if not any(k.endswith("_impressions") for k in metrics):
        return {}
    return {
        "impressions": {t: metrics.get(f"{t}_impressions", 0) for t in ("valid", "test")},
        "gauc_users": {t: metrics.get(f"{t}_gauc_users", 0) for t in ("valid", "test")},
    }


def _training_options(
    config: RunConfig,
    out: Path,
    progress: ProgressCallback | None,
    resume: bool,
    log: Callable[[dict[str, Any]], None] | None,
) -> TrainingOptions:
    """The training options of a run. Inside a torchrun job the job decides the processes (``processes=1``)."""
    return TrainingOptions(
        seed=config.seed,
        threads=config.threads,
        processes=1 if distributed.launched() else config.processes,
        device=config.device,
        progress=progress,
        checkpoint_dir=out / "checkpoints",
        resume=resume,
        log=log,
    )


def fit_description(model: Recommender, info: dict[str, Any], epochs_logged: int) -> dict[str, Any]:
    """What fitting did, in the model's own unit: ``{"kind": "closed-form" | "epochs" | "iterations", ...}``, with
    ``data_rules`` (``{field: {"value", "why"}}``) when the training data chose hyperparameters."""
    kind = model.fit_kind
    if kind == "epochs":
        fit: dict[str, Any] = {
            "kind": "epochs",
            "epochs": int(info.get("epochs_run", epochs_logged)),
            "best_epoch": int(info.get("best_epoch", epochs_logged)),
            "stopped_early": bool(info.get("stopped_early", False)),
        }
    elif kind == "iterations":
        fit = {"kind": "iterations", "iterations": int(getattr(model.config, "iterations", 0))}
    else:
        fit = {"kind": "closed-form"}
    rules = info.get("data_rules")
    if rules:
        fit["data_rules"] = {k: {"value": v["value"], "why": v["why"]} for k, v in rules.items()}
    return fit


def _data_reports(data: LoadedData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, report in (("load", data.load_report), ("split", data.split_report)):
        if report is not None:
            out[name] = report_json(report)
    return out


def report_json(report: Any) -> dict[str, Any]:
    """A report dataclass as JSON-ready values."""
    import dataclasses

    if hasattr(report, "to_json"):
        return dict(report.to_json())
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(report).items()}
    return dict(report)


def report_notes(data: LoadedData) -> list[str]:
    """The one-line notes of the load and split reports, for the CLI to print."""
    notes = list(getattr(data.load_report, "notes", ()) or ())
    split = data.split_report
    if split is not None and split.events_removed:
        basis = "the training part" if split.filtered_on == "train" else "the whole log"
        notes += [f"filters applied on {basis}: {line}" for line in split.lines()]
    return notes


def _dataset_info(config: RunConfig, data: LoadedData) -> dict[str, Any]:
    return {
        "path": config.data.path,
        "users": data.interactions.num_users,
        "items": data.interactions.num_items,
        "interactions": len(data.interactions),
    }


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})


def read_run_config(run: str | Path) -> RunConfig:
    """The RunConfig saved in a run folder."""
    run = Path(run)
    data = read_json(run / CONFIG_JSON)
    if not isinstance(data, dict):
        raise PersistenceError(f"{run / CONFIG_JSON}: not a run configuration")
    data = {k: v for k, v in data.items() if k in RunConfig.model_fields}
    if isinstance(data.get("data"), dict) and "dedup" not in data["data"]:
        # runs written before --dedup existed read every event: keep re-evaluating them on the same data
        data["data"] = {**data["data"], "dedup": "none"}
    try:
        return RunConfig.model_validate(data)
    except Exception as exc:  # pydantic ValidationError
        raise PersistenceError(f"{run / CONFIG_JSON}: invalid run configuration ({exc})") from None


def load_run(run: str | Path) -> tuple[Recommender, RunConfig | None]:
    """Load the model and (when present) the run configuration of a run folder or a bare saved model folder."""
    run = Path(run)
    if not run.is_dir():
        raise PersistenceError(f"{run}: run folder not found")
    model = Recommender.load(run)
    return model, (read_run_config(run) if (run / CONFIG_JSON).is_file() else None)


def load_run_features(run: str | Path) -> Any | None:
    path = Path(run) / ITEM_FEATURES_JSON
    if not path.is_file():
        return None
    from attnrec.data.features import ItemFeatures

    return ItemFeatures.load(path)


def load_run_user_features(run: str | Path) -> Any | None:
    """The :class:`~attnrec.data.features.UserFeatures` saved in a run folder (``None`` without ``--users``)."""
    path = Path(run) / USER_FEATURES_JSON
    if not path.is_file():
        return None
    from attnrec.data.features import UserFeatures

    return UserFeatures.load(path)


def reevaluate_run(
    run: str | Path,
    *,
    ks: tuple[int, ...] | None = None,
    progress: ProgressCallback | None = None,
    data_path: str | Path | None = None,
    items_path: str | Path | None = None,
    users_path: str | Path | None = None,
) -> dict[str, Any]:
    """Re-create the split of a run (checking the data fingerprint) and evaluate its saved model again.

    ``data_path`` / ``items_path`` point at the run's files when they moved; the fingerprint still checks that
    ``data_path`` holds the same data.
    """
    model, config = load_run(run)
    if config is None:
        raise PersistenceError(
            f"{run}: no {CONFIG_JSON}; only run folders written by `attnrec train` can be re-evaluated"
        )
    update: dict[str, Any] = {}
    if data_path is not None:
        if not Path(data_path).is_file():
            raise ConfigError(f"--data {data_path}: file not found")
        update.update(path=str(data_path), path_from_run=None)
    if items_path is not None:
        if not Path(items_path).is_file():
            raise ConfigError(f"--items {items_path}: file not found")
        update.update(items_path=str(items_path), items_from_run=None)
    if users_path is not None:
        if not Path(users_path).is_file():
            raise ConfigError(f"--users {users_path}: file not found")
        update.update(users_path=str(users_path), users_from_run=None)
    if update:
        config = config.model_copy(update={"data": config.data.model_copy(update=update)})
    data = load_data(config, run=run)
    if config.data.sha256 and data.fingerprint != config.data.sha256:
        raise ConfigError(
            f"{data_path or config.data.path} is not the data the run was trained on (sha256 "
            f"{data.fingerprint[:12]}..., run recorded {config.data.sha256[:12]}...)"
        )
    # evaluation must use the split's histories, not the full histories saved for recommending
    config = config.resolved()
    metrics = evaluate_split(model, data.split, config, ks=ks, progress=progress)
    return {
        "model": config.model,
        "task": config.task,
        "dataset": _dataset_info(config, data),
        "split": config.split,
        "protocol": metrics.pop("protocol"),
        "valid": metrics.get("valid", {}),
        "test": metrics.get("test", {}),
        "ci95": {"valid": metrics.get("valid_ci95", {}), "test": metrics.get("test_ci95", {})},
        "fallback_users": {"valid": metrics.get("valid_fallback", 0), "test": metrics.get("test_fallback", 0)},
        "unreachable_targets": {
            "valid": metrics.get("valid_unreachable", 0),
            "test": metrics.get("test_unreachable", 0),
        },
    }
