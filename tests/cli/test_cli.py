"""The command line: run folders per docs/contracts.md, JSON shapes, and one-line errors with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from attnrec.cli.main import app
from attnrec.data.synthetic import make_synthetic

runner = CliRunner()


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("data")
    data = make_synthetic(num_users=80, num_items=60, seed=3)
    log, items = folder / "log.csv", folder / "items.csv"
    data.interactions.write_csv(log)
    data.items.write_csv(items)
    return log, items


@pytest.fixture(scope="module")
def ease_run(synthetic_csv: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    log, items = synthetic_csv
    out = tmp_path_factory.mktemp("runs") / "ease"
    result = runner.invoke(
        app, ["train", "--data", str(log), "--items", str(items), "--model", "ease", "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_contract_run_folder(ease_run: Path) -> None:
    for name in ("config.json", "model.json", "model.safetensors", "vocab.json", "metrics.json", "history.csv"):
        assert (ease_run / name).is_file(), name
    metrics = json.loads((ease_run / "metrics.json").read_text())
    assert metrics["model"] == "ease"
    assert set(metrics["dataset"]) >= {"path", "users", "items", "interactions"}
    assert metrics["dataset"]["users"] == 80
    assert metrics["split"] == "leave-one-out" and metrics["protocol"] == "full"
    assert {"hr@10", "ndcg@10", "mrr@10", "coverage@10", "hr@20"} <= set(metrics["test"])
    assert 0.0 <= metrics["test"]["ndcg@10"] <= metrics["test"]["hr@10"] <= 1.0
    assert "ndcg@10" in metrics["valid"]
    assert isinstance(metrics["train_seconds"], float) and metrics["epochs"] >= 1
    config = json.loads((ease_run / "config.json").read_text())
    assert config["model"] == "ease" and "l2" in config["params"] and len(config["data"]["sha256"]) == 64
    assert not list(ease_run.rglob("*.pkl")) and not list(ease_run.rglob("*.pickle"))


def test_evaluate_json_reproduces_training_metrics(ease_run: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(ease_run), "--json"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    trained = json.loads((ease_run / "metrics.json").read_text())
    assert again["test"]["ndcg@10"] == pytest.approx(trained["test"]["ndcg@10"], abs=1e-9)


def test_recommend_json_shape_and_titles(ease_run: Path, synthetic_csv: tuple[Path, Path]) -> None:
    log, _ = synthetic_csv
    user = pl.read_csv(log, schema_overrides={"user_id": pl.Utf8})["user_id"][0]
    result = runner.invoke(app, ["recommend", str(ease_run), "--user", user, "--user", "nobody", "--k", "5", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [p["user"] for p in payload] == [user, "nobody"]
    assert payload[0]["fallback"] is None and payload[1]["fallback"] == "popularity"
    assert len(payload[0]["items"]) == 5
    first = payload[0]["items"][0]
    assert set(first) >= {"item", "score", "title"} and "because" not in first
    scores = [i["score"] for i in payload[0]["items"]]
    assert scores == sorted(scores, reverse=True)


def test_recommend_from_history_without_user(ease_run: Path, synthetic_csv: tuple[Path, Path]) -> None:
    log, _ = synthetic_csv
    items = pl.read_csv(log, schema_overrides={"item_id": pl.Utf8})["item_id"].unique(maintain_order=True)[:3]
    result = runner.invoke(app, ["recommend", str(ease_run), "--history", ",".join(items), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload[0]["fallback"] is None
    assert not set(items) & {i["item"] for i in payload[0]["items"]}


def test_models_lists_hyperparameters() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert {"popularity", "ease", "itemknn"} <= set(listing)
    assert "l2" in listing["ease"]["params"]


def _assert_one_line_error(result, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


BAD_INPUTS = {
    "missing column": ("user_id,movie,timestamp\n1,2,3\n", ["item_id", "movie"]),
    "empty file": ("", ["empty"]),
    "bad timestamp": ("user_id,item_id,timestamp\n1,2,3\n1,3,yesterday\n", ["timestamp", "yesterday"]),
    "empty id": ("user_id,item_id\n1,2\n,3\n", ["user_id"]),
    "bad rating": ("user_id,item_id,rating\n1,2,4\n1,3,five\n", ["rating", "five"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: str, tmp_path: Path) -> None:
    text, needles = BAD_INPUTS[case]
    path = tmp_path / "log.csv"
    path.write_text(text)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(path), "--model", "popularity", "--out", str(out)])
    _assert_one_line_error(result, str(path), *needles)
    assert not out.exists()


def test_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"user_id,item_id\n1,2\n\xff\xfe,3\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(path), "--model", "popularity", "--out", str(out)])
    _assert_one_line_error(result, str(path))
    assert not out.exists()


def test_missing_file_and_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    for target in (tmp_path / "nope.csv", tmp_path):
        result = runner.invoke(app, ["train", "--data", str(target), "--model", "popularity", "--out", str(out)])
        _assert_one_line_error(result, str(target))
        assert not out.exists()


def test_unknown_model_and_parameter(synthetic_csv: tuple[Path, Path], tmp_path: Path) -> None:
    log, _ = synthetic_csv
    result = runner.invoke(app, ["train", "--data", str(log), "--model", "nosuch", "--out", str(tmp_path / "a")])
    _assert_one_line_error(result, "nosuch", "ease")
    result = runner.invoke(
        app, ["train", "--data", str(log), "--model", "ease", "--set", "lambda=3", "--out", str(tmp_path / "b")]
    )
    _assert_one_line_error(result, "lambda", "l2")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_recommend_on_missing_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["recommend", str(tmp_path / "norun"), "--user", "1"])
    _assert_one_line_error(result, "norun")
