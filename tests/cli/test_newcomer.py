"""What a new user meets in the first hour: the README run as written, their own CSV, their own mistakes.

Each test here failed on attnrec 0.1: the README example crashed SASRec and left a half-written run folder,
run folders only worked from the folder they were trained in, `benchmark` could not read a custom CSV, model
errors reached the user as tracebacks, training printed "(1 epochs)" for closed-form models, and the CLI's JSON
used other keys than the REST service.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from attnrec.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _readme_tour() -> tuple[str, list[list[str]]]:
    """The CSV block and the `attnrec` commands of the README's tour, as written there."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = text[text.index("## A 5-minute tour") :]
    csv_block = re.search(r"```csv\n(.*?)```", tour, re.S)
    bash_block = re.search(r"```bash\n(.*?)```", tour, re.S)
    assert csv_block and bash_block, "the README tour lost its csv or bash block"
    commands = []
    for line in bash_block.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("attnrec "):
            commands.append(shlex.split(line)[1:])
    return csv_block.group(1), commands


def _invoke(args: list[str]) -> object:
    return runner.invoke(app, args, catch_exceptions=False)


def test_readme_tour_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv_text, commands = _readme_tour()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_log.csv").write_text(csv_text, encoding="utf-8")
    ran = []
    for args in commands:
        if args[0] == "serve":  # a server runs until stopped; tests/serving starts it on the same run folders
            continue
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"attnrec {shlex.join(args)}\n{result.output}"
        ran.append(args[0])
    assert {"train", "evaluate", "recommend", "explain"} <= set(ran)
    assert (tmp_path / "runs" / "sasrec" / "model.safetensors").is_file()


def test_a_log_no_model_can_learn_from_fails_in_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    log = tmp_path / "tiny.csv"
    log.write_text(
        "user_id,item_id,timestamp\nalice,matrix,1700000000\nalice,inception,1700003600\nbob,matrix,1700000100\n"
    )
    out = tmp_path / "runs" / "sasrec"
    for _ in range(2):  # the second try must not be refused by a half-written folder
        result = runner.invoke(app, ["train", "--data", str(log), "--model", "sasrec", "--out", str(out), "--quiet"])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        error_lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
        assert len(error_lines) == 1 and result.stderr.strip().endswith(error_lines[0]), result.stderr
        assert "sasrec" in error_lines[0].lower()
        assert not out.exists()


def test_failed_fit_removes_only_what_it_wrote_in_an_existing_empty_folder(tmp_path: Path) -> None:
    log = tmp_path / "tiny.csv"
    log.write_text("user_id,item_id\nalice,a\nalice,b\nbob,a\n")
    out = tmp_path / "given"
    out.mkdir()
    result = runner.invoke(app, ["train", "--data", str(log), "--model", "sasrec", "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    assert out.is_dir() and not any(out.iterdir())


def test_unexpected_exceptions_are_one_line_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import attnrec.models.ease as ease

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("shapes (3,4) and (5,6) not aligned:\nsecond line")

    monkeypatch.setattr(ease.EASE, "fit", broken)
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\n" + "".join(f"u{u},i{(u + j) % 7}\n" for u in range(20) for j in range(4)))
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(log), "--model", "ease", "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and result.stderr.strip().endswith(lines[0]), result.stderr
    assert "ValueError" in lines[0] and "not aligned" in lines[0] and "ATTNREC_DEBUG=1" in lines[0]
    assert not out.exists()
    monkeypatch.setenv("ATTNREC_DEBUG", "1")
    result = runner.invoke(app, ["train", "--data", str(log), "--model", "ease", "--out", str(out), "--quiet"])
    assert isinstance(result.exception, ValueError)  # the traceback is there for those who ask


@pytest.fixture
def spreadsheet_log(tmp_path: Path) -> Path:
    """A semicolon CSV with other column names, string ids, ISO timestamps and 1-5 stars."""
    rng = np.random.default_rng(0)
    lines = ["customer;sku;ts;stars"]
    for u in range(40):
        start = int(rng.integers(0, 30))
        for j in range(8):
            item = (start + j) % 30
            day = 1 + j
            lines.append(f"cust-{u:03d};SKU-{item:02d};2024-03-{day:02d}T10:{u % 60:02d}:00Z;{1 + (u + j) % 5}")
    (tmp_path / "project").mkdir()
    path = tmp_path / "project" / "shop.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


SHOP_COLUMNS = ["--separator", ";", "--user-col", "customer", "--item-col", "sku", "--time-col", "ts"]


def test_run_folder_works_from_anywhere_and_evaluate_takes_a_moved_file(
    spreadsheet_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = spreadsheet_log.parent
    monkeypatch.chdir(project)
    result = runner.invoke(
        app, ["train", "--data", "shop.csv", *SHOP_COLUMNS, "--model", "ease", "--out", "runs/ease", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["evaluate", str(project / "runs" / "ease"), "--json"])
    assert result.exit_code == 0, result.output
    trained = json.loads((project / "runs" / "ease" / "metrics.json").read_text())
    assert json.loads(result.stdout)["test"]["ndcg@10"] == pytest.approx(trained["test"]["ndcg@10"])
    # the whole project moves: the data is found next to the run folder
    moved = tmp_path / "moved"
    os.rename(project, moved)
    result = runner.invoke(app, ["evaluate", str(moved / "runs" / "ease"), "--json"])
    assert result.exit_code == 0, result.output
    # the data file alone moves: --data points at it, and a different file is refused
    (moved / "shop.csv").rename(elsewhere / "renamed.csv")
    (moved / "runs" / "ease" / "config.json").write_text(
        (moved / "runs" / "ease" / "config.json").read_text().replace('"path_from_run"', '"path_from_run_old"')
    )
    config = json.loads((moved / "runs" / "ease" / "config.json").read_text())
    config["data"].pop("path_from_run_old")
    (moved / "runs" / "ease" / "config.json").write_text(json.dumps(config))
    result = runner.invoke(app, ["evaluate", str(moved / "runs" / "ease"), "--json"])
    assert result.exit_code == 2 and "--data" in result.stderr
    result = runner.invoke(app, ["evaluate", str(moved / "runs" / "ease"), "--json", "--data", "renamed.csv"])
    assert result.exit_code == 0, result.output
    other = elsewhere / "other.csv"
    other.write_text((elsewhere / "renamed.csv").read_text().replace("SKU-01", "SKU-99"))
    result = runner.invoke(app, ["evaluate", str(moved / "runs" / "ease"), "--data", str(other)])
    assert result.exit_code == 2 and "sha256" in result.stderr


def test_benchmark_reads_a_custom_csv_with_the_train_options(spreadsheet_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    args = ["benchmark", "--data", str(spreadsheet_log), *SHOP_COLUMNS, "--rating-col", "stars"]
    result = runner.invoke(app, [*args, "--models", "popularity,ease", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert set(results) == {"popularity", "ease"}
    assert results["ease"]["dataset"]["users"] == 40
    config = json.loads((out / "ease" / "config.json").read_text())
    assert config["data"]["separator"] == ";" and config["data"]["user_col"] == "customer"


def test_training_says_what_it_does(spreadsheet_log: Path, tmp_path: Path) -> None:
    base = ["train", "--data", str(spreadsheet_log), *SHOP_COLUMNS]
    result = runner.invoke(app, [*base, "--model", "ease", "--out", str(tmp_path / "ease")])
    assert result.exit_code == 0, result.output
    assert re.search(r"data: 40 users, 30 items, 320 events; leave-one-out split: train 240", result.stderr)
    assert "fitted in" in result.stdout and "closed form" in result.stdout and "epochs" not in result.stdout
    fit = json.loads((tmp_path / "ease" / "metrics.json").read_text())["fit"]
    assert fit["kind"] == "closed-form" and set(fit) == {"kind", "data_rules"}
    l2 = fit["data_rules"]["l2"]  # EASE's l2 comes from the data: the value and the reason are shown and kept
    assert l2["value"] > 0 and f"chosen from the data: l2 {l2['value']} ({l2['why']})" in result.stdout
    result = runner.invoke(app, [*base, "--model", "ease", "--set", "l2=100", "--out", str(tmp_path / "ease100")])
    assert "chosen from the data" not in result.stdout
    assert json.loads((tmp_path / "ease100" / "metrics.json").read_text())["fit"] == {"kind": "closed-form"}

    result = runner.invoke(app, [*base, "--model", "als", "--set", "iterations=3", "--out", str(tmp_path / "als")])
    assert result.exit_code == 0, result.output
    assert "3 iterations" in result.stdout and "epochs" not in result.stdout

    sets = ["--set", "epochs=3", "--set", "embed_dim=16", "--set", "eval_every=1", "--set", "max_seq_len=8"]
    result = runner.invoke(app, [*base, "--model", "sasrec", *sets, "--out", str(tmp_path / "sasrec")])
    assert result.exit_code == 0, result.output
    epoch_lines = [line for line in result.stderr.splitlines() if line.startswith("sasrec epoch")]
    assert len(epoch_lines) == 3, result.stderr
    assert re.match(
        r"sasrec epoch 1/3, loss \d+\.\d+, valid ndcg@10 \d\.\d{4}, valid hr@10 \d\.\d{4}, .* s left", epoch_lines[0]
    ), epoch_lines[0]
    assert "last epoch" in epoch_lines[-1]
    assert re.search(r"3 epochs \(best [123]\)", result.stdout)
    rules = json.loads((tmp_path / "sasrec" / "metrics.json").read_text())["fit"]["data_rules"]
    assert {"dropout", "weight_decay", "batch_size"} <= set(rules)
    assert re.search(r"chosen from the data: .*dropout 0\.5.*events per item", result.stdout), result.stdout


def test_recommend_json_uses_the_rest_vocabulary_and_item_specific_reasons(
    spreadsheet_log: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sasrec"
    sets = ["--set", "epochs=2", "--set", "embed_dim=16", "--set", "max_seq_len=8"]
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(spreadsheet_log),
            *SHOP_COLUMNS,
            "--model",
            "sasrec",
            *sets,
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["recommend", str(out), "--user", "cust-001", "--k", "5", "--explain", "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    assert entry["user_id"] == "cust-001" and entry["user"] == "cust-001"  # old key kept until 0.3
    assert entry["explanation"]["item_specific"] is True and entry["explanation"]["method"] == "occlusion-search"
    for item in entry["items"]:
        assert item["item_id"] == item["item"] and item["because"]
        assert all(set(b) >= {"item_id", "weight"} for b in item["because"])
    reasons = {tuple((b["item_id"], b["weight"]) for b in item["because"]) for item in entry["items"]}
    assert len(reasons) > 1, "every recommended item got the same 'because' list"

    ease = tmp_path / "ease"
    result = runner.invoke(
        app, ["train", "--data", str(spreadsheet_log), *SHOP_COLUMNS, "--model", "ease", "--out", str(ease), "--quiet"]
    )
    assert result.exit_code == 0
    result = runner.invoke(app, ["recommend", str(ease), "--user", "cust-001", "--explain"])
    assert result.exit_code == 0
    assert "does not explain its recommendations" in result.stderr and "because" not in result.stdout


def test_training_leaves_the_torch_thread_count_as_it_found_it(tmp_path: Path) -> None:
    from attnrec.data.synthetic import make_synthetic
    from attnrec.runs import DataSpec, RunConfig, train_run

    log = tmp_path / "log.csv"
    make_synthetic(num_users=30, num_items=20, seed=1).interactions.write_csv(log)
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    config = RunConfig(
        model="sasrec",
        params={"epochs": 1, "embed_dim": 8, "max_seq_len": 8},
        data=DataSpec(path=str(log)),
        threads=target,
    )
    train_run(config, tmp_path / "run")
    assert torch.get_num_threads() == before


def test_the_evaluation_after_training_runs_at_the_runs_thread_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--threads`` holds for the whole run: two 1-thread benchmark processes must not evaluate at the default
    (all cores each), which oversubscribed 2 cores and made the final rankings many times slower."""
    import attnrec.runs
    from attnrec.data.synthetic import make_synthetic
    from attnrec.runs import DataSpec, RunConfig, train_run

    log = tmp_path / "log.csv"
    make_synthetic(num_users=30, num_items=20, seed=1).interactions.write_csv(log)
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    seen: list[int] = []
    real = attnrec.runs.evaluate_split

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(attnrec.runs, "evaluate_split", spy)
    config = RunConfig(model="ease", data=DataSpec(path=str(log)), threads=target)
    train_run(config, tmp_path / "run")
    assert seen == [target]
    assert torch.get_num_threads() == before


def test_heatmap_leaves_the_matplotlib_backend_alone(tmp_path: Path) -> None:
    import matplotlib

    from attnrec.data.synthetic import make_synthetic
    from attnrec.explain.plot import explanation_heatmap
    from attnrec.runs import DataSpec, RunConfig, train_run

    log = tmp_path / "log.csv"
    make_synthetic(num_users=30, num_items=60, seed=1).interactions.write_csv(log)
    config = RunConfig(
        model="sasrec", params={"epochs": 1, "embed_dim": 8, "max_seq_len": 8}, data=DataSpec(path=str(log))
    )
    model = train_run(config, tmp_path / "run").model
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a backend the library must not switch away from
    try:
        user = model.users_.all_ids[0]  # type: ignore[union-attr]
        explanation_heatmap(model, user=str(user), out=tmp_path / "x.png")
        assert matplotlib.get_backend() == "svg"
        assert (tmp_path / "x.png").stat().st_size > 1000
    finally:
        matplotlib.use(before)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["benchmark", "--data", "x.csv"], "Missing option '--models'"),
        (["trian"], "No such command 'trian'"),
        (["train", "--nope"], "No such option: --nope"),
    ],
)
def test_usage_errors_of_the_console_script_are_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from attnrec.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], err


def test_resume_refuses_changed_data_and_keeps_the_run(spreadsheet_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    sets = ["--set", "epochs=1", "--set", "embed_dim=8", "--set", "max_seq_len=8"]
    args = ["train", "--data", str(spreadsheet_log), *SHOP_COLUMNS, "--model", "sasrec", *sets, "--out", str(out)]
    assert runner.invoke(app, [*args, "--quiet"]).exit_code == 0
    spreadsheet_log.write_text(spreadsheet_log.read_text().replace("SKU-01", "SKU-77"))
    result = runner.invoke(app, ["train", "--resume", str(out), "--quiet"])
    assert result.exit_code == 2
    assert "data changed since the run started" in result.stderr and "sha256" in result.stderr
    assert (out / "model.safetensors").is_file() and (out / "checkpoints").is_dir()


def test_items_file_uses_the_logs_item_column_or_its_own(spreadsheet_log: Path, tmp_path: Path) -> None:
    items = tmp_path / "items.csv"
    items.write_text("sku,title\n" + "".join(f"SKU-{i:02d},Product {i}\n" for i in range(30)))
    out = tmp_path / "run"
    base = ["train", "--data", str(spreadsheet_log), *SHOP_COLUMNS, "--model", "ease", "--quiet"]
    result = runner.invoke(app, [*base, "--items", str(items), "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["recommend", str(out), "--user", "cust-001", "--k", "3", "--json"])
    assert all(item["title"].startswith("Product ") for item in json.loads(result.stdout)[0]["items"])

    other = tmp_path / "catalogue.csv"
    other.write_text("product_code,title\n" + "".join(f"SKU-{i:02d},Product {i}\n" for i in range(30)))
    result = runner.invoke(app, [*base, "--items", str(other), "--out", str(tmp_path / "r2")])
    assert result.exit_code == 2 and "--items-id-col" in result.stderr and "product_code" in result.stderr
    result = runner.invoke(
        app, [*base, "--items", str(other), "--items-id-col", "product_code", "--out", str(tmp_path / "r3")]
    )
    assert result.exit_code == 0, result.output
