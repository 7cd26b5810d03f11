"""score_pairs, GAUC, evaluate_ctr with bootstrap intervals, and task ctr / cold items through train_run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attnrec.data.labels import make_impressions
from attnrec.data.synthetic import block_interactions
from attnrec.evaluation import auc, evaluate_ctr, gauc
from attnrec.evaluation.ctr import _weighted_auc
from attnrec.models.ease import EASE
from attnrec.runs import DataSpec, RunConfig, load_run_user_features, train_run


def test_score_pairs_equals_the_score_row_without_a_full_matrix() -> None:
    data = block_interactions(20, 20, num_groups=2, density=0.5, seed=1)
    model = EASE(l2=1.0).fit(data)
    users = np.array([3, 1, 3, 0, 7, 1], dtype=np.int64)
    items = np.array([2, 5, 9, 4, 0, 1], dtype=np.int64)
    got = model.score_pairs(users, items, batch_size=2)
    rows, _ = model.scores_with_fallback(users, [model.history(int(u)) for u in users])
    expected = rows[np.arange(len(users)), items].astype(np.float64)
    assert np.allclose(got[items > 0], expected[items > 0]) and np.isnan(got[4])
    ids = model.score([data.users.id(3)], [data.items.id(9)])
    assert ids[0] == pytest.approx(got[2])


def test_gauc_is_impression_weighted_mean_over_users_with_both_classes() -> None:
    labels = np.array([1, 0, 0, 1, 1, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.8, 0.5, 0.6, 0.7])
    groups = np.array([1, 1, 1, 2, 2, 2, 3, 3])  # user 3 has only positives: left out
    u1 = auc(labels[:3], scores[:3])
    u2 = auc(labels[3:6], scores[3:6])
    value, n = gauc(labels, scores, groups)
    assert n == 2 and value == pytest.approx((3 * u1 + 3 * u2) / 6)


def test_weighted_auc_with_unit_weights_is_auc() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, 10, 200).astype(float)
    ranks = np.unique(scores, return_inverse=True)[1] + 1
    got = _weighted_auc(ranks, labels.astype(bool), np.ones(200), int(ranks.max()) + 1)
    assert got == pytest.approx(auc(labels, scores))


def test_evaluate_ctr_planted_model_beats_chance_with_intervals() -> None:
    data = block_interactions(40, 40, num_groups=4, density=0.5, seed=3)
    imp = make_impressions(data, source="sampled", negatives=2, seed=1)  # negatives come from other groups
    model = EASE(l2=1.0).fit(data)
    result = evaluate_ctr(model, imp, history=data, n_boot=50, seed=0)
    assert result.summary["auc"] > 0.9 and result.summary["gauc"] > 0.9
    assert "logloss" not in result.summary  # raw scores: no logloss
    low, high = result.ci["auc"]
    assert low <= result.summary["auc"] <= high and high - low < 0.2
    assert result.n_impressions == len(imp) and result.gauc_users == data.num_users


def write_log(tmp_path: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    lines = ["user_id,item_id,timestamp,rating"]
    for u in range(30):
        for t, i in enumerate(rng.choice(40, 10, replace=False).tolist()):
            lines.append(f"u{u},i{i},{1000 + 20 * u + t},{int(rng.integers(1, 6))}")
    log = tmp_path / "log.csv"
    log.write_text("\n".join(lines) + "\n")
    items = tmp_path / "items.csv"
    items.write_text("item_id,genre\n" + "".join(f"i{i},g{i % 3}\n" for i in range(45)))
    users = tmp_path / "u.user"
    users.write_text("".join(f"u{u}|{20 + u}|{'MF'[u % 2]}|job{u % 4}|{10000 + u}\n" for u in range(30)))
    return log, items, users


def test_train_run_task_ctr_writes_pointwise_metrics_and_user_features(tmp_path: Path) -> None:
    log, items, users = write_log(tmp_path)
    config = RunConfig(
        model="popularity", task="ctr", data=DataSpec(path=str(log), items_path=str(items), users_path=str(users))
    )
    result = train_run(config, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["task"] == "ctr" and metrics["split"] == "random" and metrics["protocol"] == "pointwise"
    assert set(metrics["test"]) == {"auc", "gauc"} and set(metrics["ci95"]["test"]) == {"auc", "gauc"}
    assert metrics["impressions"]["test"] == round(0.1 * 300)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["task"] == "ctr" and saved["labels"] == "auto" and saved["label_threshold"] == 4.0
    user_features = load_run_user_features(tmp_path / "run")
    assert user_features is not None and user_features.value("u3", "age") == 23.0
    assert result.model.user_features_ is user_features or result.model.user_features_ == user_features
    with pytest.raises(Exception, match="does not apply to task 'ctr'"):
        train_run(config.model_copy(update={"split": "leave-one-out"}), tmp_path / "run2")


def test_cold_items_are_opt_in_and_recommended(tmp_path: Path) -> None:
    log, items, _ = write_log(tmp_path)
    plain = train_run(
        RunConfig(model="popularity", data=DataSpec(path=str(log), items_path=str(items))), tmp_path / "a"
    )
    assert plain.model.num_items == 40  # default: the catalogue is the items with events
    spec = DataSpec(path=str(log), items_path=str(items), cold_items=True)
    run = train_run(RunConfig(model="ease", data=spec), tmp_path / "b")
    model = run.model
    assert model.num_items == 45 and model.items_.all_ids[40:] == [f"i{i}" for i in range(40, 45)]  # type: ignore[union-attr]
    recs = model.recommend(["u1"], k=45)
    assert {"i40", "i44"} <= set(recs.items[0].tolist())
    assert np.isfinite(model.score(["u1"], ["i42"])).all()
