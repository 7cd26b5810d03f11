"""Click-prediction benchmarks: the cells keep their test impressions, the report's intervals are user
bootstraps of the seed mean and its paired test resamples the same users for both models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from attnrec.cli.main import app
from attnrec.data.synthetic import make_synthetic
from attnrec.evaluation.benchmark import PER_USER_NPZ, read_ctr_test
from attnrec.evaluation.ctr import bootstrap_ctr, ctr_replicates, user_multiplicities
from attnrec.evaluation.metrics import auc
from attnrec.evaluation.report import CTR_BOOTSTRAP_SAMPLES, ModelRow, _ctr_seed_replicates, _paired_ctr

CONFIG = """
name = "ctr-tiny"
seeds = [1, 2]
ks = [10]
metric = "auc"
columns = ["auc", "gauc", "logloss"]
threads = 1

[[datasets]]
name = "synth"
path = "log.csv"
task = "ctr"
labels = "sampled"
label_negatives = 2
split = "random"

[[models]]
name = "lr"
params = { epochs = 3 }

[[models]]
name = "fm"
params = { epochs = 3, embed_dim = 4 }
"""


@pytest.fixture(scope="module")
def ctr_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ctr-bench")
    make_synthetic(num_users=80, num_items=120, seed=5, events_per_user=15).interactions.write_csv(folder / "log.csv")
    (folder / "bench.toml").write_text(CONFIG, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["benchmark", "--config", str(folder / "bench.toml"), "--out", str(folder / "out"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    return folder


def _cell(folder: Path, model: str, seed: int) -> Path:
    return folder / "out" / "cells" / "synth" / model / f"seed-{seed}"


def test_ctr_cells_keep_the_evaluated_test_impressions(ctr_bench: Path) -> None:
    for seed in (1, 2):
        saved = {m: read_ctr_test(_cell(ctr_bench, m, seed)) for m in ("lr", "fm")}
        for model, t in saved.items():
            assert t is not None and not (_cell(ctr_bench, model, seed) / PER_USER_NPZ).exists()
            metrics = json.loads((_cell(ctr_bench, model, seed) / "metrics.json").read_text())
            assert auc(t["labels"], t["scores"]) == pytest.approx(metrics["test"]["auc"], abs=1e-12)
            assert bool(t["probabilistic"][0])  # lr and fm give probabilities
        # both models were scored on the same impressions of the seed's split
        lr, fm = saved["lr"], saved["fm"]
        assert lr is not None and fm is not None
        assert np.array_equal(lr["users"], fm["users"]) and np.array_equal(lr["labels"], fm["labels"])
    one, two = read_ctr_test(_cell(ctr_bench, "lr", 1)), read_ctr_test(_cell(ctr_bench, "lr", 2))
    assert one is not None and two is not None
    assert not (len(one["labels"]) == len(two["labels"]) and np.array_equal(one["users"], two["users"]))


def test_report_rows_have_bootstrap_intervals_and_a_paired_p_value(ctr_bench: Path) -> None:
    report = json.loads((ctr_bench / "out" / "report" / "report.json").read_text())
    rows = report["datasets"]["synth"]["models"]
    assert set(rows) == {"lr", "fm"}
    best = report["datasets"]["synth"]["best"]
    other = "lr" if best == "fm" else "fm"
    for row in rows.values():
        low, high = row["ci95"]
        assert low < row["mean"]["auc"] < high
    assert rows[best]["p_value_t"] is None
    assert 0.0 < rows[other]["p_value_t"] <= 1.0 and rows[other]["p_value_wilcoxon"] is None
    assert "paired bootstrap" in report["statistics"]
    text = (ctr_bench / "out" / "report" / "report.md").read_text()
    assert "paired bootstrap" in text


def test_one_seed_interval_is_the_pointwise_evaluation_bootstrap(ctr_bench: Path) -> None:
    """With one seed the report's resamples are evaluate_ctr's own bootstrap (same users, same seed)."""
    t = read_ctr_test(_cell(ctr_bench, "fm", 2))
    assert t is not None
    reps = _ctr_seed_replicates({2: t}, "auc")
    expected = bootstrap_ctr(
        t["labels"], t["scores"], t["users"], probabilistic=True, n_boot=CTR_BOOTSTRAP_SAMPLES, seed=2
    )["auc"]
    assert (float(np.quantile(reps, 0.025)), float(np.quantile(reps, 0.975))) == pytest.approx(expected)


def _row(name: str, tests: dict[int, dict[str, np.ndarray]]) -> ModelRow:
    row = ModelRow(name, name, {}, sorted(tests), {}, [], [], {})
    row.ctr_tests = tests
    row.ctr_replicates = _ctr_seed_replicates(tests, "auc")
    return row


def _impressions(seed: int, scores_from: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(200), 5)
    labels = (rng.random(len(users)) < 0.4).astype(np.float64)
    noise = rng.random(len(users))
    scores = {"labels": 0.3 * labels + 0.7 * noise, "noise": noise, "noise-again": noise.copy()}[scores_from]
    return {"users": users, "labels": labels, "scores": scores, "probabilistic": np.asarray([True])}


def test_paired_bootstrap_tells_a_real_difference_from_none() -> None:
    good = _row("good", {s: _impressions(s, "labels") for s in (0, 1)})
    noise = _row("noise", {s: _impressions(s, "noise") for s in (0, 1)})
    same = _row("same", {s: _impressions(s, "noise-again") for s in (0, 1)})
    strong = _paired_ctr(noise, good)
    assert strong is not None and strong["p_value_t"] < 0.01 and strong["n_users"] == 400
    tie = _paired_ctr(same, noise)
    assert tie is not None and tie["p_value_t"] == 1.0
    # other impressions (another split): no paired test
    shifted = _row("shifted", {s: _impressions(s + 10, "noise") for s in (0, 1)})
    assert _paired_ctr(shifted, noise) is None


def test_replicates_follow_the_resampled_users() -> None:
    t = _impressions(3, "labels")
    mult = user_multiplicities(t["users"], 4, seed=0)
    mult[0] = 1.0  # the identity resample gives the metric itself
    reps = ctr_replicates(t["labels"], t["scores"], t["users"], mult, probabilistic=True)
    assert reps["auc"][0] == pytest.approx(auc(t["labels"], t["scores"]))
    assert set(reps) == {"auc", "gauc", "logloss"} and all(len(v) == 4 for v in reps.values())
