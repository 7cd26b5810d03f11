"""Hyperparameter search with Optuna (``attnrec tune``): resumable, pruned, chosen on validation only.

One study per folder (``--out DIR``):

* ``study.db``: the Optuna study in SQLite. Its name is derived from the model, the data's sha256 and every
  setting that changes what a trial measures (split, filters, seed, metric, fixed hyperparameters), so that a
  rerun of the same command resumes it and a changed command is refused instead of mixing studies.
* ``best.toml``: the best configuration as a file ``attnrec train --config`` reads (fixed + searched values).
* ``summary.json`` and ``trials.csv``: what was searched, each trial, the best and the default trial.
* ``history.png`` and ``importances.png``: the search (values per trial with the best so far; PED-ANOVA parameter
  importances from :func:`optuna.importance.get_param_importances`).
* ``final-trial-N/``: the best configuration trained once as a normal run folder; its test metrics are the only
  test numbers the search ever computes.

Trials see the training and validation parts of the split only: each fits on ``split.train`` (neural models
early-stop on ``split.valid``) and is scored on the validation targets with the run's protocol. The first trial
of a study is the model's default configuration, so the best configuration's validation score is never below
the default's. Neural models report their validation metric at each validation (every ``eval_every`` epochs)
through the trainer's per-epoch ``log`` callback (:class:`PruningReporter`), and the pruner stops trials that
fall behind (median: below the median of finished trials at the same epoch, from the second validation on).

A killed search resumes when the same command runs again: finished trials (complete, pruned, or failed by the
model, e.g. a diverging loss) count towards ``--trials`` and are not recomputed; a trial that was running when
the process died is marked failed and run again with the same values.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from attnrec import __version__
from attnrec.errors import ConfigError, ModelFitError
from attnrec.io import write_json
from attnrec.registry import available_models, get_model_class
from attnrec.training.options import ProgressCallback, TrainingOptions
from attnrec.training.search_space import Choice, FloatRange, IntRange, SearchSpace, check_space, space_of

if TYPE_CHECKING:
    import optuna

    from attnrec.runs import LoadedData, RunConfig, RunResult

STUDY_DB = "study.db"
BEST_TOML = "best.toml"
SUMMARY_JSON = "summary.json"
TRIALS_CSV = "trials.csv"
HISTORY_PNG = "history.png"
IMPORTANCES_PNG = "importances.png"
LOCK = ".lock"

MINIMISED = ("rmse", "mae", "logloss")
"""Metrics where lower is better; every other metric is maximised."""

Pruner = Literal["median", "hyperband", "none"]


@dataclass(frozen=True)
class TuneSettings:
    """How to search.

    Attributes:
        trials: finished trials the study should hold (a rerun adds only the missing ones).
        timeout: stop starting new trials after this many seconds of this call (``None``: no limit).
        metric: validation metric to optimise (``ndcg@10``; ``rmse``/``mae``/``logloss`` are minimised).
        pruner: ``median`` (default), ``hyperband`` or ``none``; classic models are never pruned.
        fixed: hyperparameters fixed for every trial (removed from the search space).
        final: train the best configuration once at the end and report its test metrics.
    """

    trials: int
    timeout: float | None = None
    metric: str = "ndcg@10"
    pruner: Pruner = "median"
    fixed: Mapping[str, Any] | None = None
    final: bool = True

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials must be >= 1; got {self.trials}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"--timeout must be > 0 seconds; got {self.timeout}")
        if self.pruner not in ("median", "hyperband", "none"):
            raise ConfigError(f"--pruner must be median, hyperband or none; got {self.pruner!r}")
        name, _, k = self.metric.partition("@")
        if not name or (k and not k.isdigit()) or (not k and name not in (*MINIMISED, "auc")):
            raise ConfigError(f"--metric must look like ndcg@10, hr@20, mrr@10 or rmse; got {self.metric!r}")

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "minimize" if self.metric in MINIMISED else "maximize"


@dataclass
class TuneResult:
    """What :func:`tune` did: the summary written to ``summary.json`` and the final run (when trained)."""

    out: Path
    summary: dict[str, Any]
    final: RunResult | None = None


# ---------------------------------------------------------------------------------------------- search spaces
def tunable_models() -> list[str]:
    """Registered models whose config declares a ``search_space``."""
    return [n for n in available_models() if space_of(get_model_class(n).config_class)]


def model_space(model: str, fixed: Mapping[str, Any] | None = None) -> SearchSpace:
    """The search space of ``model`` without the ``fixed`` names, checked against the config's validation."""
    config_class = get_model_class(model).config_class
    space = space_of(config_class)
    if space is None:
        raise ConfigError(
            f"model {model!r} declares no search space; models that can be tuned: {', '.join(tunable_models())}"
        )
    fixed = dict(fixed or {})
    config_class.create(fixed)  # a bad --set value fails here, named by the config
    free = {name: dim for name, dim in space.items() if name not in fixed}
    if not free:
        raise ConfigError(f"--set fixes every searched parameter of {model} ({', '.join(space)}); nothing to search")
    check_space(config_class, free, fixed)
    return free


def sample_params(trial: optuna.Trial, space: SearchSpace, names: Iterator[str] | None = None) -> dict[str, Any]:
    """One value per dimension of ``space`` (or of ``names`` only) from ``trial``'s sampler."""
    out: dict[str, Any] = {}
    for name in names if names is not None else iter(space):
        dim = space[name]
        if isinstance(dim, FloatRange):
            out[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
        elif isinstance(dim, IntRange):
            out[name] = trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
        elif isinstance(dim, Choice):
            out[name] = trial.suggest_categorical(name, list(dim.values))
    return out


def default_in_space(model: str, space: SearchSpace, fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The default config's values that lie inside ``space`` (the first trial's values; a default outside the
    space, such as a ``None`` that a data rule resolves, is left to the config)."""
    config = get_model_class(model).config_class.create(dict(fixed or {}))
    out: dict[str, Any] = {}
    for name, dim in space.items():
        value = getattr(config, name)
        if isinstance(dim, Choice):
            inside = value in dim.values
        elif isinstance(value, bool) or not isinstance(value, int | float):
            inside = False
        else:
            inside = dim.low <= value <= dim.high
            if isinstance(dim, IntRange):
                inside = inside and float(value).is_integer() and (int(value) - dim.low) % dim.step == 0
        if inside:
            out[name] = value
    return out


# ---------------------------------------------------------------------------------------------- pruning
class PruningReporter:
    """A trainer ``log`` callback (:attr:`TrainingOptions.log`): reports the validation ``metric`` of each epoch
    that validated to ``trial`` at step = epoch, and raises :class:`optuna.TrialPruned` when the pruner says so
    (the fit stops there and the model stays as it was before the fit). Rows without the metric (epochs between
    validations) are only passed on to ``forward``."""

    def __init__(
        self, trial: optuna.Trial, metric: str, forward: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.trial = trial
        self.key = f"valid_{metric}"
        self.metric = metric
        self.forward = forward
        self.reported = 0

    def __call__(self, row: dict[str, Any]) -> None:
        import optuna

        if self.forward is not None:
            self.forward(row)
        value = row.get(self.key)
        if value is None:
            return
        step = int(row["epoch"])
        self.trial.report(float(value), step)
        self.reported += 1
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {step}: valid {self.metric} {float(value):.4f}")


def make_pruner(kind: Pruner, *, eval_every: int, epochs: int) -> optuna.pruners.BasePruner:
    """``median``: below the median of the finished trials at the same epoch, from the second validation on
    (after 2 finished trials); ``hyperband``: successive halving from ``eval_every`` to ``epochs`` epochs."""
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=eval_every + 1)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=eval_every, max_resource=max(epochs, eval_every + 1), reduction_factor=3
        )
    return optuna.pruners.NopPruner()


# ---------------------------------------------------------------------------------------------- the study
def study_name(run_config: RunConfig, fingerprint: str, settings: TuneSettings) -> str:
    """``MODEL-DATA12-SETTINGS8``: the model, the data's sha256 and a hash of what a trial's value depends on."""
    described = run_config.model_dump(mode="json", exclude={"device", "threads", "processes", "params"})
    described["data"] = {k: v for k, v in described["data"].items() if k not in ("path", "path_from_run", "sha256")}
    described["fixed"] = dict(settings.fixed or {})
    described["metric"] = settings.metric
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()
    return f"{run_config.model}-{fingerprint[:12]}-{digest[:8]}"


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One ``tune`` process per study folder (a second one would mark the first one's running trial failed)."""
    with open(out / LOCK, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(
                f"--out {out}: another `attnrec tune` is running on this study ({out / LOCK}); wait for it or use "
                "another folder"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _open_study(out: Path, name: str, direction: Literal["maximize", "minimize"]) -> optuna.Study:
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{(out / STUDY_DB).resolve()}")
    others = [s for s in optuna.get_all_study_names(storage) if s != name]
    if others:
        raise ConfigError(
            f"--out {out} holds the study {others[0]!r}, not {name!r} (another model, data file or setting: split, "
            "seed, metric, --set values); rerun that command to resume it, or use a new folder"
        )
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise ConfigError(f"--out {out}: study {name!r} is {study.direction.name.lower()}d, not {direction}d")
    return study


def _recover(study: optuna.Study) -> int:
    """Mark trials left running by a killed process failed (``interrupted``), and queue each interrupted trial
    (killed, or stopped by Ctrl-C) once again with the same values. Returns how many were queued."""
    from optuna.trial import TrialState

    storage = study._storage
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    queued = 0
    for trial in trials:
        if trial.state == TrialState.RUNNING:  # attributes can only be set before the trial is finished
            storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        elif not (trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted")):
            continue
        if trial.number in retried:
            continue
        again = {k: v for k, v in trial.user_attrs.items() if k in ("default", "default_params")}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study.enqueue_trial(dict(trial.params), user_attrs={**again, "retry_of": trial.number})
        queued += 1
    return queued


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count towards ``--trials``: complete, pruned, or failed by the model (not interrupted)."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            t.state == TrialState.FAIL and "fit_error" in t.user_attrs
        ):
            out.append(t)
    return out


def tune(
    run_config: RunConfig,
    out: str | Path,
    settings: TuneSettings,
    *,
    progress: ProgressCallback | None = None,
    on_data_loaded: Callable[[LoadedData], None] | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Search ``run_config.model``'s space on ``run_config``'s data and write the study folder ``out``.

    ``run_config.params`` are ignored (``settings.fixed`` are the fixed hyperparameters). ``on_trial`` receives
    a dict per finished trial (``number``, ``state``, ``value``, ``params``, ``seconds``, ``best_value``,
    ``best_number``, ``note``); ``on_epoch`` each epoch row of the trial in progress.

    Raises:
        ConfigError: the model has no search space, a ``--set`` value or option is invalid, the folder holds
            another study or is in use by another process, or no trial completed.
    """
    import optuna

    from attnrec.runs import load_data

    out = Path(out)
    fixed = dict(settings.fixed or {})
    space = model_space(run_config.model, fixed)
    run_config = run_config.model_copy(update={"params": fixed})
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    data = load_data(run_config)
    if on_data_loaded is not None:
        on_data_loaded(data)
    name = study_name(run_config, data.fingerprint, settings)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        study = _open_study(out, name, settings.direction)
        queued = _recover(study)
        if not study.trials:  # the first trial is the default configuration
            defaults = default_in_space(run_config.model, space, fixed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                study.enqueue_trial(defaults, user_attrs={"default": True, "default_params": sorted(defaults)})
        done = len(finished_trials(study))
        missing = max(settings.trials - done, 0)
        model_class = get_model_class(run_config.model)
        base = model_class.config_class.create(fixed)
        neural = model_class.fit_kind == "epochs"
        study.sampler = optuna.samplers.TPESampler(
            seed=run_config.seed + len(study.trials), n_startup_trials=min(10, max(2, settings.trials // 3))
        )
        if neural and settings.pruner != "none":
            study.pruner = make_pruner(
                settings.pruner, eval_every=int(getattr(base, "eval_every", 1)), epochs=int(getattr(base, "epochs", 1))
            )
        else:
            study.pruner = optuna.pruners.NopPruner()
        objective = _Objective(run_config, data, space, settings, neural, progress, on_epoch)
        start = time.perf_counter()
        if missing:
            callbacks = [_TrialCallback(on_trial, settings.trials)] if on_trial is not None else []
            study.optimize(
                objective,
                n_trials=missing,
                timeout=settings.timeout,
                catch=(ModelFitError,),
                callbacks=callbacks,  # type: ignore[arg-type]
                gc_after_trial=True,
            )
        seconds = time.perf_counter() - start
        summary = _summary(study, run_config, data, settings, space, seconds=seconds, requeued=queued)
        best_params = summary["best"]["params"]
        write_best_toml(out / BEST_TOML, {**fixed, **best_params}, header=_best_header(summary))
        write_trials_csv(out / TRIALS_CSV, study)
        summary["plots"] = plot_study(study, out, settings.metric)
        final = None
        if settings.final:
            final = _final_run(run_config, out, {**fixed, **best_params}, summary, progress, on_epoch)
        write_json(out / SUMMARY_JSON, summary)
    return TuneResult(out, summary, final)


class _Objective:
    """One trial: sample, fit on train (early stopping and pruning on valid), score on valid."""

    def __init__(
        self,
        run_config: RunConfig,
        data: LoadedData,
        space: SearchSpace,
        settings: TuneSettings,
        neural: bool,
        progress: ProgressCallback | None,
        on_epoch: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.run_config = run_config
        self.data = data
        self.space = space
        self.settings = settings
        self.neural = neural
        self.progress = progress
        self.on_epoch = on_epoch
        k = settings.metric.partition("@")[2]
        self.ks = (int(k),) if k else run_config.ks

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run(trial)
        except KeyboardInterrupt:  # optuna marks the trial failed and re-raises; the next run retries it
            trial.set_user_attr("interrupted", True)
            raise

    def _run(self, trial: optuna.Trial) -> float:
        from attnrec.registry import create_model
        from attnrec.runs import evaluate_split

        names = trial.user_attrs.get("default_params") if trial.user_attrs.get("default") else None
        sampled = sample_params(trial, self.space, None if names is None else iter(names))
        params = {**dict(self.settings.fixed or {}), **sampled}
        model = create_model(self.run_config.model, params)
        log: Callable[[dict[str, Any]], None] | None = self.on_epoch
        if self.neural:
            log = PruningReporter(trial, self.settings.metric, self.on_epoch)
        options = TrainingOptions(
            seed=self.run_config.seed,
            threads=self.run_config.threads,
            device=self.run_config.device,
            progress=self.progress,
            log=log,
        )
        start = time.perf_counter()
        split = self.data.split
        try:
            model.fit(split.train, split.valid, options=options)
        except ModelFitError as exc:
            trial.set_user_attr("fit_error", str(exc))
            raise
        trial.set_user_attr("fit_seconds", round(time.perf_counter() - start, 3))
        info = model.train_info_
        if "epochs_run" in info:
            trial.set_user_attr("epochs", int(info["epochs_run"]))
            trial.set_user_attr("best_epoch", int(info.get("best_epoch", info["epochs_run"])))
        metrics = evaluate_split(model, split, self.run_config, targets=("valid",), ks=self.ks)
        valid = metrics.get("valid", {})
        if self.settings.metric not in valid:
            raise ConfigError(
                f"--metric {self.settings.metric}: the validation of {self.run_config.model} gives "
                f"{', '.join(valid) or 'nothing (no validation events)'}"
            )
        trial.set_user_attr("valid", {k: round(float(v), 6) for k, v in valid.items()})
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        return float(valid[self.settings.metric])


class _TrialCallback:
    def __init__(self, on_trial: Callable[[dict[str, Any]], None], total: int) -> None:
        self.on_trial = on_trial
        self.total = total

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.on_trial(_trial_row(study, trial, self.total))


def _trial_row(study: optuna.Study, trial: optuna.trial.FrozenTrial, total: int) -> dict[str, Any]:
    best = _best_trial(study)
    note = trial.user_attrs.get("fit_error")
    if trial.state.name == "PRUNED" and trial.intermediate_values:
        step = trial.last_step
        note = f"pruned at epoch {step} (valid {trial.intermediate_values[step]:.4f})" if step is not None else None
    return {
        "number": trial.number,
        "finished": len(finished_trials(study)),
        "total": total,
        "state": trial.state.name.lower(),
        "value": trial.value,
        "params": dict(trial.params),
        "default": bool(trial.user_attrs.get("default")),
        "seconds": None if trial.duration is None else trial.duration.total_seconds(),
        "best_value": None if best is None else best.value,
        "best_number": None if best is None else best.number,
        "note": note,
    }


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    sign = 1.0 if study.direction.name == "MAXIMIZE" else -1.0
    return max(complete, key=lambda t: (sign * float(t.value or 0.0), -t.number))  # ties: the earlier trial


# ---------------------------------------------------------------------------------------------- outputs
def _summary(
    study: optuna.Study,
    run_config: RunConfig,
    data: LoadedData,
    settings: TuneSettings,
    space: SearchSpace,
    *,
    seconds: float,
    requeued: int,
) -> dict[str, Any]:
    import optuna

    best = _best_trial(study)
    if best is None:
        raise ConfigError(
            f"no trial of study {study.study_name} completed (see {TRIALS_CSV}); raise --trials or --timeout"
        )
    default = next((t for t in study.trials if t.user_attrs.get("default") and t.state.name == "COMPLETE"), None)
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    durations = [t.duration.total_seconds() for t in study.trials if t.duration is not None]
    return {
        "study": study.study_name,
        "model": run_config.model,
        "metric": settings.metric,
        "direction": settings.direction,
        "data": {"path": run_config.data.path, "sha256": data.fingerprint},
        "split": run_config.split,
        "seed": run_config.seed,
        "fixed": dict(settings.fixed or {}),
        "space": {name: _describe(dim) for name, dim in space.items()},
        "pruner": settings.pruner,
        "budget": {
            "trials": settings.trials,
            "timeout": settings.timeout,
            "trials_seconds_total": round(sum(durations), 1),
            "this_call_seconds": round(seconds, 1),
        },
        "trials": {**states, "finished": len(finished_trials(study)), "requeued_after_interruption": requeued},
        "best": {
            "trial": best.number,
            "value": best.value,
            "params": dict(best.params),
            "valid": best.user_attrs.get("valid", {}),
            "is_default": bool(best.user_attrs.get("default")),
        },
        "default": None if default is None else {"trial": default.number, "value": default.value},
        "chosen_on": "validation only (test is computed once, for the final run)",
        "versions": {"attnrec": __version__, "optuna": optuna.__version__, "python": platform.python_version()},
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count()},
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _describe(dim: Any) -> str:
    if isinstance(dim, Choice):
        return "choice " + ", ".join(map(str, dim.values))
    kind = "float" if isinstance(dim, FloatRange) else "int"
    scale = " (log)" if dim.log else ""
    step = f" step {dim.step}" if isinstance(dim, IntRange) and dim.step != 1 else ""
    return f"{kind} [{dim.low}, {dim.high}]{step}{scale}"


def _best_header(summary: dict[str, Any]) -> list[str]:
    best = summary["best"]
    return [
        f"best configuration of study {summary['study']} ({summary['model']}), trial {best['trial']}",
        f"validation {summary['metric']} = {best['value']:.6f}"
        + (f" (default trial: {summary['default']['value']:.6f})" if summary.get("default") else ""),
        f"use: attnrec train --model {summary['model']} --config THIS_FILE --data ... --out ...",
    ]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ConfigError(f"cannot write {value} to a TOML config")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write a {type(value).__name__} to a TOML config; got {value!r}")


def write_best_toml(path: Path, params: Mapping[str, Any], *, header: list[str] | None = None) -> None:
    """A flat TOML file of hyperparameters (what ``attnrec train --config`` reads); ``None`` values (a default
    resolved by the model) are written as comments, since TOML has no null."""
    lines = [f"# {h}" for h in header or []]
    for key in sorted(params):
        value = params[key]
        lines.append(f"# {key} = None (the model's default)" if value is None else f"{key} = {_toml_value(value)}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_trials_csv(path: Path, study: optuna.Study) -> None:
    """One row per trial: number, state, value, seconds, epochs, the default flag and every parameter."""
    names: list[str] = []
    for t in study.trials:
        names += [n for n in t.params if n not in names]
    columns = ["number", "state", "value", "seconds", "epochs", "pruned_at_epoch", "default", "note", *names]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for t in study.trials:
            writer.writerow(
                {
                    "number": t.number,
                    "state": t.state.name.lower(),
                    "value": "" if t.value is None else t.value,
                    "seconds": "" if t.duration is None else round(t.duration.total_seconds(), 2),
                    "epochs": t.user_attrs.get("epochs", ""),
                    "pruned_at_epoch": t.last_step if t.state.name == "PRUNED" and t.last_step is not None else "",
                    "default": bool(t.user_attrs.get("default")),
                    "note": t.user_attrs.get("fit_error", "interrupted" if t.user_attrs.get("interrupted") else ""),
                    **{n: t.params.get(n, "") for n in names},
                }
            )


def plot_study(study: optuna.Study, out: Path, metric: str) -> dict[str, str]:
    """Write ``history.png`` (value per trial, pruned trials at their last reported value, the best so far)
    and ``importances.png`` (PED-ANOVA importances; skipped, with the reason, when fewer than two complete trials
    vary the parameters). Returns ``{plot: file name or "skipped: why"}``."""
    # object-oriented Figures with their own Agg canvas: no pyplot, the caller's backend and figures are untouched
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    maximise = study.direction.name == "MAXIMIZE"
    done: dict[str, str] = {}
    fig = Figure(figsize=(7, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    best_x: list[int] = []
    best_y: list[float] = []
    best: float | None = None
    for t in study.trials:
        if t.state.name == "COMPLETE" and t.value is not None:
            marker, color = ("*", "tab:orange") if t.user_attrs.get("default") else ("o", "tab:blue")
            ax.scatter([t.number], [t.value], marker=marker, color=color, s=80 if marker == "*" else 30, zorder=3)
            if best is None or (t.value > best if maximise else t.value < best):
                best = t.value
        elif t.state.name == "PRUNED" and t.intermediate_values:
            ax.scatter([t.number], [t.intermediate_values[max(t.intermediate_values)]], marker="x", color="grey")
        if best is not None:
            best_x.append(t.number)
            best_y.append(best)
    ax.step(best_x, best_y, where="post", color="tab:red", label="best so far")
    ax.scatter([], [], marker="o", color="tab:blue", label="complete")
    ax.scatter([], [], marker="*", color="tab:orange", label="default configuration")
    ax.scatter([], [], marker="x", color="grey", label="pruned (last validation)")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"{study.study_name}: optimisation history")
    ax.legend(loc="lower right" if maximise else "upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / HISTORY_PNG)
    done["history"] = HISTORY_PNG
    try:
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()  # numpy only (fANOVA needs sklearn)
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ImportError, RuntimeError, ValueError, ZeroDivisionError) as exc:
        importances, why = {}, str(exc)
    else:
        why = "fewer than two complete trials with every parameter"
    if not importances:
        (out / IMPORTANCES_PNG).unlink(missing_ok=True)
        done["importances"] = f"skipped: {why}"
        return done
    names = list(importances)[::-1]
    fig = Figure(figsize=(6, 0.5 * len(names) + 1.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (PED-ANOVA: how much the top trials' values differ from all trials', normalised)")
    ax.set_title(f"{study.study_name}: parameter importances")
    fig.tight_layout()
    fig.savefig(out / IMPORTANCES_PNG)
    done["importances"] = IMPORTANCES_PNG
    done["importance_values"] = json.dumps({k: round(float(v), 4) for k, v in importances.items()})
    return done


def _final_run(
    run_config: RunConfig,
    out: Path,
    params: dict[str, Any],
    summary: dict[str, Any],
    progress: ProgressCallback | None,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> RunResult:
    """Train the best configuration once (run folder ``final-trial-N``) or reuse the one already trained."""
    from attnrec.io import read_json
    from attnrec.runs import METRICS_JSON, RunResult, load_run, train_run

    folder = out / f"final-trial-{summary['best']['trial']}"
    if (folder / METRICS_JSON).is_file():
        model, _ = load_run(folder)
        metrics = read_json(folder / METRICS_JSON)
        result = RunResult(folder, model, metrics)
        summary["final"] = {"run": folder.name, "reused": True}
    else:
        if folder.exists():  # a final run killed half-way: start it again
            import shutil

            shutil.rmtree(folder)
        result = train_run(
            run_config.model_copy(update={"params": params}), folder, progress=progress, on_epoch=on_epoch
        )
        summary["final"] = {"run": folder.name, "reused": False}
    summary["final"].update(valid=result.metrics.get("valid", {}), test=result.metrics.get("test", {}))
    return result


__all__ = [
    "PruningReporter",
    "TuneResult",
    "TuneSettings",
    "default_in_space",
    "finished_trials",
    "make_pruner",
    "model_space",
    "plot_study",
    "sample_params",
    "study_name",
    "tunable_models",
    "tune",
    "write_best_toml",
]
