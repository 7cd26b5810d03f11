"""Run folders: train a model from a log, evaluate it and write everything a later command or service needs.

A run folder (``--out DIR``) holds, per CONTRACTS.md:

* ``config.json``: the fully resolved configuration (model and hyperparameters, data path and sha256
  fingerprint, format and columns, filters, split, seed, evaluation settings, library versions);
* ``model.json`` + ``model.safetensors`` + ``vocab.json``: the fitted model (never pickle);
* ``metrics.json``: validation and test metrics, timing, epochs;
* ``history.csv``: one row per epoch (neural models) or one summary row (closed-form models);
* ``item_features.json``: item titles and attributes when ``--items`` was given.

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
from attnrec.data.split import Split, filter_interactions, split_interactions
from attnrec.errors import ConfigError, PersistenceError
from attnrec.io import read_json, write_json
from attnrec.registry import create_model
from attnrec.training.options import ProgressCallback, TrainingOptions

CONFIG_JSON = "config.json"
METRICS_JSON = "metrics.json"
HISTORY_CSV = "history.csv"
ITEM_FEATURES_JSON = "item_features.json"


class DataSpec(BaseModel):
    """Where the interactions come from and how to read them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    format: str | None = None
    user_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    rating_col: str | None = None
    items_path: str | None = None
    items_format: str | None = None
    item_id_map: str | None = None
    sha256: str | None = None


class RunConfig(BaseModel):
    """Everything that determines a run (saved as ``config.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    data: DataSpec
    split: Literal["leave-one-out", "temporal", "ratio"] = "leave-one-out"
    test_frac: float = 0.1
    valid_frac: float = 0.1
    min_user_interactions: int = 0
    min_item_interactions: int = 0
    min_rating: float | None = None
    seed: int = 42
    threads: int | None = None
    processes: Annotated[int, Field(ge=1)] = 1
    ks: tuple[int, ...] = (10, 20)
    eval_negatives: int | None = None
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    keep_seen: bool = False


@dataclass
class LoadedData:
    interactions: Interactions
    split: Split
    features: Any | None = None
    fingerprint: str = ""


@dataclass
class RunResult:
    out: Path
    model: Recommender
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_data(config: RunConfig) -> LoadedData:
    """Load, validate, filter and split the data of a run (raises DataError/ConfigError on bad input)."""
    from attnrec.data.loaders import load_interactions

    spec = config.data
    frame = load_interactions(
        spec.path,
        format=spec.format,
        user_col=spec.user_col,
        item_col=spec.item_col,
        time_col=spec.time_col,
        rating_col=spec.rating_col,
    )
    inter = Interactions.from_frame(frame)
    if config.min_user_interactions or config.min_item_interactions or config.min_rating is not None:
        inter = filter_interactions(
            inter,
            min_user_interactions=config.min_user_interactions,
            min_item_interactions=config.min_item_interactions,
            min_rating=config.min_rating,
        )
    kwargs = {} if config.split == "leave-one-out" else {"test_frac": config.test_frac, "valid_frac": config.valid_frac}
    split = split_interactions(inter, config.split, **kwargs)
    features = None
    if spec.items_path:
        from attnrec.data.features import load_item_features

        features = load_item_features(spec.items_path, format=spec.items_format, id_map=spec.item_id_map)
    return LoadedData(inter, split, features, file_sha256(spec.path))


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
) -> dict[str, Any]:
    """Evaluate a fitted model on the split's validation and test targets; returns the metrics.json parts."""
    from attnrec.evaluation import evaluate, evaluate_ratings

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
        values = {k: float(v) for k, v in result.summary.items()}
        if model.predicts_ratings and split.targets(target).rating is not None:
            values.update(evaluate_ratings(model, split.targets(target)))
        out[target] = values
        out[f"{target}_ci95"] = {
            m: list(result.confidence_interval(m)) for m in result.per_user if not m.startswith("coverage")
        }
        out[f"{target}_users"] = len(result.users)
    out["protocol"] = protocol
    return out


def train_run(
    config: RunConfig,
    out: str | Path,
    *,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    on_data_loaded: Callable[[LoadedData], None] | None = None,
) -> RunResult:
    """Load data, fit ``config.model``, evaluate on validation and test, and write the run folder ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise ConfigError(f"--out {out} already exists and is not empty (use a new folder, or --resume to continue)")
    model = create_model(config.model, config.params)  # validates hyperparameters before any work
    data = load_data(config)
    if on_data_loaded is not None:
        on_data_loaded(data)
    history: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)
    resolved = config.model_copy(
        update={
            "params": model.get_config(),
            "data": config.data.model_copy(update={"sha256": data.fingerprint}),
        }
    )
    config_json = resolved.model_dump(mode="json")
    config_json["versions"] = _versions()
    config_json["dataset"] = _dataset_info(config, data)
    write_json(out / CONFIG_JSON, config_json)
    options = TrainingOptions(
        seed=config.seed,
        threads=config.threads,
        processes=config.processes,
        progress=progress,
        checkpoint_dir=out / "checkpoints",
        resume=resume,
        log=history.append,
    )
    start = time.perf_counter()
    model.fit(data.split.train, data.split.valid, options=options)
    train_seconds = time.perf_counter() - start
    metrics = evaluate_split(model, data.split, config, progress=progress)
    # recommendations after training should use everything known about each user
    model.set_histories(data.split.full)
    model.save(out)
    if data.features is not None:
        data.features.save(out / ITEM_FEATURES_JSON)
    info = dict(model.train_info_)
    # a resumed run's trainer restores the rows of the epochs before the interruption
    history = list(getattr(model, "history_", None) or history)
    summary = {
        "model": config.model,
        "dataset": _dataset_info(config, data),
        "split": config.split,
        "protocol": metrics.pop("protocol"),
        "valid": metrics.get("valid", {}),
        "test": metrics.get("test", {}),
        "train_seconds": round(train_seconds, 3),
        "epochs": int(info.get("epochs_run", info.get("epochs", len(history) or 1))),
        "best_epoch": int(info.get("best_epoch", len(history) or 1)),
        "ci95": {"valid": metrics.get("valid_ci95", {}), "test": metrics.get("test_ci95", {})},
        "users_evaluated": {"valid": metrics.get("valid_users", 0), "test": metrics.get("test_users", 0)},
    }
    write_json(out / METRICS_JSON, summary)
    if not history:
        history = [{"epoch": 1, "loss": None, "seconds": round(train_seconds, 3)}]
    write_history(out / HISTORY_CSV, history)
    return RunResult(out, model, summary, history)


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


def reevaluate_run(
    run: str | Path, *, ks: tuple[int, ...] | None = None, progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """Re-create the split of a run (checking the data fingerprint) and evaluate its saved model again."""
    model, config = load_run(run)
    if config is None:
        raise PersistenceError(
            f"{run}: no {CONFIG_JSON}; only run folders written by `attnrec train` can be re-evaluated"
        )
    data = load_data(config)
    if config.data.sha256 and data.fingerprint != config.data.sha256:
        raise ConfigError(
            f"{config.data.path} changed since the run was trained (sha256 {data.fingerprint[:12]}..., "
            f"run recorded {config.data.sha256[:12]}...)"
        )
    # evaluation must use the split's histories, not the full histories saved for recommending
    metrics = evaluate_split(model, data.split, config, ks=ks, progress=progress)
    return {
        "model": config.model,
        "dataset": _dataset_info(config, data),
        "split": config.split,
        "protocol": metrics.pop("protocol"),
        "valid": metrics.get("valid", {}),
        "test": metrics.get("test", {}),
        "ci95": {"valid": metrics.get("valid_ci95", {}), "test": metrics.get("test_ci95", {})},
    }
