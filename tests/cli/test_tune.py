"""``attnrec tune``: a resumable study per folder, validation-only choice, a --config file that train reads,
pruning through the trainer's log callback, plots, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from attnrec.cli.main import app
from attnrec.config import ModelConfig
from attnrec.data.synthetic import make_synthetic
from attnrec.errors import ConfigError
from attnrec.registry import available_models, get_model_class
from attnrec.training.search_space import FloatRange, IntRange, check_space, space_of
from attnrec.training.tuning import STUDY_DB, PruningReporter, default_in_space, model_space

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def log_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "log.csv"
    make_synthetic(num_users=80, num_items=60, seed=3).interactions.write_csv(path)
    return path


def _tune(log: Path, out: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["tune", "--data", str(log), "--out", str(out), "--quiet", *args])
    return result.exit_code, result.output


def _study(out: Path) -> optuna.Study:
    storage = f"sqlite:///{out / STUDY_DB}"
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


@pytest.fixture(scope="module")
def ease_study(log_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tune") / "ease"
    code, output = _tune(log_csv, out, "--model", "ease", "--trials", "3")
    assert code == 0, output
    return out


def test_three_trials_of_a_classic_model_write_the_study_folder(ease_study: Path) -> None:
    for name in ("study.db", "best.toml", "summary.json", "trials.csv", "history.png", "importances.png"):
        assert (ease_study / name).is_file(), name
    for plot in ("history.png", "importances.png"):
        assert (ease_study / plot).read_bytes()[:8] == PNG
    summary = json.loads((ease_study / "summary.json").read_text())
    assert summary["model"] == "ease" and summary["metric"] == "ndcg@10" and summary["direction"] == "maximize"
    assert summary["trials"]["complete"] == 3 and summary["trials"]["finished"] == 3
    # trial 0 is the default configuration; the choice is the best validation value, so never below it
    study = _study(ease_study)
    # (EASE's default l2 is None, the data rule's value, so trial 0 samples nothing and the config applies it)
    assert study.trials[0].user_attrs["default"] and study.trials[0].params == {}
    assert summary["default"]["trial"] == 0
    values = [t.value for t in study.trials]
    assert summary["best"]["value"] == max(values) >= summary["default"]["value"]
    # trials saw validation only; the test metrics exist once, in the final run
    assert all(set(t.user_attrs["valid"]) and "test" not in t.user_attrs for t in study.trials)
    final = ease_study / summary["final"]["run"]
    assert summary["final"]["run"] == f"final-trial-{summary['best']['trial']}"
    metrics = json.loads((final / "metrics.json").read_text())
    assert metrics["valid"]["ndcg@10"] == pytest.approx(summary["best"]["value"], abs=1e-6)
    assert summary["final"]["test"] == metrics["test"]


def test_best_config_file_loads_with_train(ease_study: Path, log_csv: Path, tmp_path: Path) -> None:
    summary = json.loads((ease_study / "summary.json").read_text())
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(log_csv),
            "--model",
            "ease",
            "--config",
            str(ease_study / "best.toml"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["params"]["l2"] == pytest.approx(summary["best"]["params"]["l2"], rel=1e-12)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["valid"]["ndcg@10"] == pytest.approx(summary["best"]["value"], abs=1e-6)


def test_rerun_with_more_trials_runs_only_the_missing_ones(log_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    code, output = _tune(log_csv, out, "--model", "itemknn", "--trials", "2", "--no-final")
    assert code == 0, output
    first = [(t.number, t.datetime_start, t.value) for t in _study(out).trials]
    assert len(first) == 2
    code, output = _tune(log_csv, out, "--model", "itemknn", "--trials", "4", "--no-final")
    assert code == 0, output
    trials = _study(out).trials
    assert len(trials) == 4  # two new ones, not four
    assert [(t.number, t.datetime_start, t.value) for t in trials[:2]] == first  # not recomputed
    code, output = _tune(log_csv, out, "--model", "itemknn", "--trials", "4", "--no-final")
    assert code == 0, output
    assert len(_study(out).trials) == 4  # already done: nothing runs
    assert not list(out.glob("final-trial-*"))


def test_a_trial_killed_mid_way_is_marked_failed_and_run_again(log_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    code, output = _tune(log_csv, out, "--model", "ease", "--trials", "2", "--no-final")
    assert code == 0, output
    # what a killed process leaves behind: a trial that started (its value drawn) and never finished
    study = _study(out)
    killed = study.ask()
    killed.suggest_float("l2", 1.0, 20_000.0, log=True)
    assert study.trials[-1].state == optuna.trial.TrialState.RUNNING
    code, output = _tune(log_csv, out, "--model", "ease", "--trials", "3", "--no-final")
    assert code == 0, output
    trials = _study(out).trials
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].user_attrs["interrupted"]
    assert trials[3].user_attrs["retry_of"] == 2 and trials[3].params == trials[2].params


def test_pruning_reporter_prunes_a_clearly_bad_trial() -> None:
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    )
    for value in (0.30, 0.32, 0.34):
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                params={},
                distributions={},
                intermediate_values={1: value - 0.1, 2: value},
            )
        )
    seen: list[dict[str, float]] = []
    good = PruningReporter(study.ask(), "ndcg@10", seen.append)
    good({"epoch": 1, "loss": 1.0})  # an epoch without validation: passed on, nothing reported
    good({"epoch": 2, "valid_ndcg@10": 0.40})
    assert good.reported == 1 and len(seen) == 2
    bad = PruningReporter(study.ask(), "ndcg@10")
    with pytest.raises(optuna.TrialPruned, match="epoch 2"):
        bad({"epoch": 2, "valid_ndcg@10": 0.01})


def test_a_bad_neural_trial_is_pruned_inside_fit(log_csv: Path) -> None:
    """The reporter stops a real SASRec fit at its first validation, and the model stays unfitted."""
    import polars as pl

    from attnrec.data.interactions import Interactions
    from attnrec.data.split import prepare_split
    from attnrec.models.sasrec import SASRec
    from attnrec.training.options import TrainingOptions

    split, _ = prepare_split(Interactions.from_frame(pl.read_csv(log_csv)), "leave-one-out")
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    )
    study.add_trial(
        optuna.trial.create_trial(value=0.5, params={}, distributions={}, intermediate_values={1: 0.5, 2: 0.5})
    )
    trial = study.ask()
    model = SASRec(epochs=3, embed_dim=8, num_heads=1, num_layers=1, max_seq_len=10, lr=1e-7, eval_every=1)
    rows: list[dict[str, float]] = []
    reporter = PruningReporter(trial, "ndcg@10", rows.append)
    with pytest.raises(optuna.TrialPruned):
        model.fit(split.train, split.valid, options=TrainingOptions(seed=0, device="cpu", log=reporter))
    assert [r["epoch"] for r in rows] == [1]  # stopped after the first validation, not after 3 epochs
    assert not model.is_fitted


def test_every_declared_space_passes_its_config_validation() -> None:
    tunable = [n for n in available_models() if space_of(get_model_class(n).config_class)]
    assert {"sasrec", "ease", "itemknn"} <= set(tunable)
    for name in tunable:
        config_class = get_model_class(name).config_class
        space = space_of(config_class)
        assert space is not None
        check_space(config_class, space)
    # the SASRec default trial takes the defaults inside the space; the None of dropout and weight_decay (data
    # rules) stays unset
    defaults = default_in_space("sasrec", model_space("sasrec"))
    assert defaults == {"lr": 2e-3, "embed_dim": 128, "num_layers": 2}


def test_a_space_outside_the_config_rules_is_refused() -> None:
    from pydantic import Field

    class Cfg(ModelConfig):
        l2: float = Field(1.0, gt=0.0)
        k: int = Field(5, ge=1, le=50)

    with pytest.raises(ConfigError, match="l2"):
        check_space(Cfg, {"l2": FloatRange(0.0, 10.0)})
    with pytest.raises(ConfigError, match="'k'"):
        check_space(Cfg, {"k": IntRange(1, 100)})
    with pytest.raises(ConfigError, match="not one of its parameters"):
        check_space(Cfg, {"alpha": FloatRange(0.1, 1.0)})
    check_space(Cfg, {"l2": FloatRange(0.1, 10.0, log=True), "k": IntRange(1, 50)})


def test_set_fixes_a_parameter_for_every_trial(log_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    code, output = _tune(log_csv, out, "--model", "itemknn", "--trials", "2", "--set", "neighbors=7", "--no-final")
    assert code == 0, output
    assert all(set(t.params) == {"shrinkage"} for t in _study(out).trials)
    assert "neighbors = 7" in (out / "best.toml").read_text()


def test_errors_are_one_line(log_csv: Path, ease_study: Path, tmp_path: Path) -> None:
    code, output = _tune(log_csv, tmp_path / "a", "--model", "popularity", "--trials", "2")
    assert code == 2 and len(output.strip().splitlines()) == 1
    assert "'popularity' declares no search space" in output and "sasrec" in output and "ease" in output
    assert not (tmp_path / "a").exists()
    # the folder of an EASE study refuses another model's (or another setting's) study instead of mixing them
    code, output = _tune(log_csv, ease_study, "--model", "itemknn", "--trials", "2")
    assert code == 2 and "holds the study 'ease-" in output and len(output.strip().splitlines()) == 1
    code, output = _tune(log_csv, tmp_path / "b", "--model", "ease", "--trials", "0")
    assert code == 2 and "--trials must be >= 1; got 0" in output
    code, output = _tune(log_csv, tmp_path / "c", "--model", "ease", "--trials", "2", "--set", "l2=-1")
    assert code == 2 and "'l2'" in output and len(output.strip().splitlines()) == 1
