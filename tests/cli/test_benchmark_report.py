"""``attnrec benchmark --config``: cells that are never recomputed, a killed run that resumes, the report folder
(right means, CIs and paired tests; a self-contained HTML page), the docs-section rewrite, one-line config errors,
and the one-dataset form kept as a special case."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

import attnrec.evaluation.benchmark
import attnrec.runs
from attnrec.cli.main import app
from attnrec.data.synthetic import make_synthetic
from attnrec.errors import ConfigError
from attnrec.evaluation.benchmark import (
    CELL_JSON,
    PER_USER_NPZ,
    CellTimeoutError,
    parse_benchmark_config,
    plan_benchmark,
    read_benchmark_config,
    read_per_user,
    run_cell,
)
from attnrec.evaluation.report import bootstrap_ci, update_docs_section

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
PER_USER = PER_USER_NPZ

CONFIG = """
name = "tiny"
description = "two cheap models on a synthetic log"
seeds = [1, 2]
ks = [5, 10]
metric = "ndcg@10"

[[datasets]]
name = "synth"
path = "log.csv"

[[models]]
name = "popularity"

[[models]]
name = "als"
params = { factors = 8, iterations = 3 }
"""


@pytest.fixture()
def bench(tmp_path: Path) -> Path:
    make_synthetic(num_users=60, num_items=40, seed=3).interactions.write_csv(tmp_path / "log.csv")
    (tmp_path / "bench.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


class Counter:
    """Counts the cells trained (wraps ``attnrec.runs.train_run``); ``interrupt_at`` raises Ctrl-C there."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, interrupt_at: int | None = None) -> None:
        self.calls: list[str] = []
        self.interrupt_at = interrupt_at
        real = attnrec.runs.train_run

        def counted(config: Any, out: Any, **kwargs: Any) -> Any:
            self.calls.append(str(out))
            if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
                raise KeyboardInterrupt
            return real(config, out, **kwargs)

        monkeypatch.setattr(attnrec.runs, "train_run", counted)


def _run(folder: Path, *extra: str) -> Any:
    return runner.invoke(
        app, ["benchmark", "--config", str(folder / "bench.toml"), "--out", str(folder / "out"), "--quiet", *extra]
    )


def _cells(out: Path) -> list[Path]:
    return sorted(p.parent for p in (out / "cells").rglob(CELL_JSON))


def test_report_tables_hold_the_means_over_seeds_ci_and_paired_test(bench: Path) -> None:
    result = _run(bench)
    assert result.exit_code == 0, result.output
    out = bench / "out"
    assert len(_cells(out)) == 4
    report = json.loads((out / "report" / "report.json").read_text())
    md = (out / "report" / "report.md").read_text()
    models = report["datasets"]["synth"]["models"]
    per_user = {}
    for model in ("popularity", "als"):
        tests = [
            json.loads((out / "cells" / "synth" / model / f"seed-{s}" / "metrics.json").read_text())["test"]
            for s in (1, 2)
        ]
        for metric in ("hr@5", "ndcg@5", "mrr@5", "coverage@5", "ndcg@10"):
            values = [t[metric] for t in tests]
            assert models[model]["mean"][metric] == pytest.approx(np.mean(values))
            assert models[model]["sd"][metric] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        row = next(line for line in md.splitlines() if line.startswith(f"| {model} |"))
        mean, sd = np.mean([t["ndcg@5"] for t in tests]), np.std([t["ndcg@5"] for t in tests], ddof=1)
        assert f"{mean:.4f} ± {sd:.4f}" in row
        arrays = [read_per_user(out / "cells" / "synth" / model / f"seed-{s}") for s in (1, 2)]
        assert arrays[0] is not None and arrays[1] is not None
        assert np.array_equal(arrays[0]["users"], arrays[1]["users"])
        assert np.mean(arrays[0]["ndcg@10"]) == pytest.approx(tests[0]["ndcg@10"])
        per_user[model] = (arrays[0]["ndcg@10"] + arrays[1]["ndcg@10"]) / 2
        low, high = models[model]["ci95"]
        assert (low, high) == pytest.approx(bootstrap_ci(per_user[model]))
        assert low <= float(np.mean(per_user[model])) <= high
    best = report["datasets"]["synth"]["best"]
    other = "als" if best == "popularity" else "popularity"
    assert models[best]["mean"]["ndcg@10"] >= models[other]["mean"]["ndcg@10"]
    expected_p = sps.ttest_rel(per_user[other], per_user[best]).pvalue
    assert models[other]["p_value_t"] == pytest.approx(expected_p)
    assert models[best]["p_value_t"] is None
    # reproducibility facts
    sha = report["datasets"]["synth"]["files"]["data"]["sha256"]
    assert sha == attnrec.runs.file_sha256(bench / "log.csv") and sha in md
    assert "attnrec benchmark" in report["command"] and "--config" in report["command"]
    assert report["environment"]["torch"] and report["environment"]["cpu"]
    assert (out / "report" / "bench.toml").read_text() == CONFIG
    assert (out / "report" / "quality-time-synth.png").read_bytes()[:8] == PNG


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, name, value))


def test_html_report_is_self_contained_with_embedded_plots(bench: Path) -> None:
    config = CONFIG.replace(
        'name = "popularity"', 'name = "sasrec"\nparams = { epochs = 3, embed_dim = 16, eval_every = 1 }'
    )
    (bench / "bench.toml").write_text(config, encoding="utf-8")
    result = _run(bench)
    assert result.exit_code == 0, result.output
    html = (bench / "out" / "report" / "report.html").read_text()
    parser = _Refs()
    parser.feed(html)
    parser.close()
    assert "table" in parser.tags and "style" in parser.tags
    assert "link" not in parser.tags and "script" not in parser.tags
    images = [v for tag, _, v in parser.refs if tag == "img"]
    assert len(images) == 2  # the training curves (sasrec logs validation per epoch) and quality vs time
    for ref in (v for _, _, v in parser.refs):
        assert not ref.lower().startswith(("http:", "https:", "//")), ref
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG
    assert (bench / "out" / "report" / "curves-synth.png").is_file()


def test_tables_show_seconds_per_epoch_and_the_kept_epoch_of_models_that_train_in_epochs(bench: Path) -> None:
    config = CONFIG.replace(
        'name = "popularity"', 'name = "sasrec"\nparams = { epochs = 4, embed_dim = 16, eval_every = 1 }'
    )
    (bench / "bench.toml").write_text(config, encoding="utf-8")
    assert _run(bench).exit_code == 0
    out = bench / "out"
    models = json.loads((out / "report" / "report.json").read_text())["datasets"]["synth"]["models"]
    sasrec, als = models["sasrec"], models["als"]
    kept, medians = [], []
    for seed in (1, 2):
        cell = out / "cells" / "synth" / "sasrec" / f"seed-{seed}"
        kept.append(json.loads((cell / "metrics.json").read_text())["best_epoch"])
        lines = (cell / "history.csv").read_text().splitlines()
        col = lines[0].split(",").index("seconds")
        medians.append(float(np.median([float(line.split(",")[col]) for line in lines[1:]])))
    assert sasrec["best_epochs"] == kept and all(1 <= e <= 4 for e in kept)
    assert sasrec["epoch_seconds"] == pytest.approx(medians) and min(medians) > 0
    assert als["best_epochs"] == [] and als["epoch_seconds"] == []  # fitted in closed-form sweeps, not epochs
    table = [line for line in (out / "report" / "report.md").read_text().splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[-4:] == ["fit s", "s / epoch", "best epoch", "seeds"]
    rows = {r.strip("|").split("|")[0].strip(): [c.strip() for c in r.strip("|").split("|")] for r in table[2:]}
    assert rows["sasrec"][-2] == f"{kept[0]}, {kept[1]}"
    assert rows["sasrec"][-3] == f"{np.mean(medians):.1f}"
    assert rows["als"][-3:-1] == ["-", "-"]


def test_rerun_skips_finished_cells_and_a_killed_cell_is_recomputed(
    bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Counter(monkeypatch)
    assert _run(bench).exit_code == 0
    assert len(first.calls) == 4
    out = bench / "out"
    stamps = {p: (p / "metrics.json").stat().st_mtime_ns for p in _cells(out)}
    again = Counter(monkeypatch)
    result = _run(bench)
    assert result.exit_code == 0, result.output
    assert again.calls == []
    assert {p: (p / "metrics.json").stat().st_mtime_ns for p in _cells(out)} == stamps
    # a cell killed before it finished: its metrics are gone; only that cell is trained again
    killed = out / "cells" / "synth" / "als" / "seed-2"
    before = json.loads((killed / "metrics.json").read_text())["test"]
    (killed / "metrics.json").unlink()
    third = Counter(monkeypatch)
    assert _run(bench).exit_code == 0
    assert third.calls == [str(killed)]
    assert json.loads((killed / "metrics.json").read_text())["test"] == pytest.approx(before)
    # a changed hyperparameter is another configuration: only that model's cells run again
    (bench / "bench.toml").write_text(CONFIG.replace("iterations = 3", "iterations = 4"), encoding="utf-8")
    fourth = Counter(monkeypatch)
    assert _run(bench).exit_code == 0
    assert sorted(Path(c).name for c in fourth.calls) == ["seed-1", "seed-2"]
    assert all("/als/" in c for c in fourth.calls)


def test_every_hyperparameter_is_in_the_key_so_a_changed_default_reruns_its_cells(
    bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run(bench).exit_code == 0
    out = bench / "out"
    # writing a default out is the same configuration: nothing runs again
    (bench / "bench.toml").write_text(CONFIG.replace("iterations = 3", "iterations = 3, regularization = 0.05"))
    spelled = Counter(monkeypatch)
    assert _run(bench).exit_code == 0
    assert spelled.calls == []
    # a release whose ALS resolves another default: exactly the ALS cells run again
    real = attnrec.evaluation.benchmark.model_params

    def new_default(run_config: Any) -> dict[str, Any]:
        params = real(run_config)
        return {**params, "alpha": params["alpha"] + 1.0} if run_config.model == "als" else params

    real_trained = attnrec.evaluation.benchmark.trained_params

    def trained_with_new_default(run_config: Any, rules: dict[str, Any]) -> dict[str, Any]:
        params = real_trained(run_config, rules)  # a run that wrote alpha out (as every stored run does) keeps it
        new = run_config.model == "als" and "alpha" not in run_config.params
        return {**params, "alpha": params["alpha"] + 1.0} if new else params

    monkeypatch.setattr(attnrec.evaluation.benchmark, "model_params", new_default)
    monkeypatch.setattr(attnrec.evaluation.benchmark, "trained_params", trained_with_new_default)
    changed = Counter(monkeypatch)
    assert _run(bench).exit_code == 0
    assert sorted(Path(c).parent.name + "/" + Path(c).name for c in changed.calls) == ["als/seed-1", "als/seed-2"]
    assert all((out / "cells" / "synth" / m / "seed-1" / CELL_JSON).is_file() for m in ("als", "popularity"))


def test_a_marker_of_the_earlier_key_counts_while_the_stored_hyperparameters_are_todays(
    bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run(bench).exit_code == 0
    plan = plan_benchmark(read_benchmark_config(bench / "bench.toml"), bench / "out", base_dir=bench)
    als = next(c for c in plan.cells if c.model == "als" and c.seed == 1)
    pop = next(c for c in plan.cells if c.model == "popularity" and c.seed == 1)
    assert als.legacy_key is not None and als.legacy_key != als.key
    for cell in (als, pop):  # markers as an earlier release wrote them
        marker = json.loads((cell.folder / CELL_JSON).read_text())
        (cell.folder / CELL_JSON).write_text(json.dumps({**marker, "key": cell.legacy_key}))
    # the ALS run was trained under an older default: its config.json says so
    stored = json.loads((als.folder / "config.json").read_text())
    stored["params"]["alpha"] = stored["params"]["alpha"] + 1.0
    (als.folder / "config.json").write_text(json.dumps(stored))
    calls = Counter(monkeypatch)
    assert _run(bench).exit_code == 0
    assert calls.calls == [str(als.folder)]  # popularity kept (and its marker upgraded), ALS retrained
    assert json.loads((pop.folder / CELL_JSON).read_text())["key"] == pop.key
    assert json.loads((als.folder / CELL_JSON).read_text())["key"] == als.key


def test_a_default_that_became_a_data_rule_keeps_the_cells_it_trains_the_same(
    bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cell whose key changed only because a hyperparameter is now given otherwise (here: EASE's ``l2``
    written out as the value its data rule chose, or the reverse) is kept, in the out folder and from a record,
    when the run trained with the same values; a value that trains otherwise is computed again."""
    rule_config = CONFIG.replace('name = "als"\nparams = { factors = 8, iterations = 3 }', 'name = "ease"')
    (bench / "bench.toml").write_text(rule_config)
    record = bench / "record"
    assert _run(bench, "--record", str(record)).exit_code == 0
    ease = bench / "out" / "cells" / "synth" / "ease"
    chosen = {s: json.loads((ease / f"seed-{s}" / "metrics.json").read_text())["fit"]["data_rules"] for s in (1, 2)}
    l2 = chosen[1]["l2"]["value"]
    assert l2 == chosen[2]["l2"]["value"] and l2 > 0
    keys = {s: json.loads((ease / f"seed-{s}" / CELL_JSON).read_text())["key"] for s in (1, 2)}

    (bench / "bench.toml").write_text(
        rule_config.replace('name = "ease"', f'name = "ease"\nparams = {{ l2 = {l2!r} }}')
    )
    plan = plan_benchmark(read_benchmark_config(bench / "bench.toml"), bench / "out", base_dir=bench)
    cells = {c.seed: c for c in plan.cells if c.model == "ease"}
    assert all(cells[s].key != keys[s] for s in (1, 2))  # the key holds the hyperparameters as given
    kept = Counter(monkeypatch)
    assert _run(bench).exit_code == 0
    assert kept.calls == []
    assert all(json.loads((ease / f"seed-{s}" / CELL_JSON).read_text())["key"] == cells[s].key for s in (1, 2))
    fresh = Counter(monkeypatch)  # a fresh out folder restores both from the record of the rule's runs
    result = runner.invoke(
        app, ["benchmark", "--config", str(bench / "bench.toml"), "--out", str(bench / "out2"), "--quiet",
              "--record", str(record)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert fresh.calls == []
    restored = bench / "out2" / "cells" / "synth" / "ease" / "seed-1" / CELL_JSON
    assert json.loads(restored.read_text())["key"] == cells[1].key
    assert json.loads((record / "cells" / "synth" / "ease" / "seed-1" / CELL_JSON).read_text())["key"] == cells[1].key

    (bench / "bench.toml").write_text(
        rule_config.replace('name = "ease"', f'name = "ease"\nparams = {{ l2 = {2 * l2!r} }}')
    )
    other = Counter(monkeypatch)
    assert _run(bench).exit_code == 0
    assert sorted(Path(c).name for c in other.calls) == ["seed-1", "seed-2"]
    assert all(Path(c).parent.name == "ease" for c in other.calls)


def test_only_computes_the_selected_cells_and_reports_the_rest_as_found(
    bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Counter(monkeypatch)
    result = _run(bench, "--only", "synth/als")
    assert result.exit_code == 0, result.output
    assert sorted(Path(c).parent.name + "/" + Path(c).name for c in calls.calls) == ["als/seed-1", "als/seed-2"]
    report = json.loads((bench / "out" / "report" / "report.json").read_text())
    models = report["datasets"]["synth"]["models"]
    assert models["als"]["seeds"] == [1, 2] and models["popularity"]["seeds"] == []
    rest = Counter(monkeypatch)
    assert _run(bench, "--only", "synth").exit_code == 0  # the dataset: the cells not finished yet
    assert sorted(Path(c).parent.name for c in rest.calls) == ["popularity", "popularity"]
    for selector, expected in (
        ("other", "no dataset 'other'"),
        ("synth/knn", "no model 'knn'"),
        ("synth/als/seed-7", "seeds: 1, 2"),
        ("synth/als/x", "seeds: 1, 2"),
    ):
        bad = _run(bench, "--only", selector)
        assert bad.exit_code != 0 and expected in bad.output


def test_published_references_are_shown_under_the_models_and_decide_nothing(
    bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _run(bench)
    assert first.exit_code == 0, first.output
    report = bench / "out" / "report"
    before = json.loads((report / "report.json").read_text())["datasets"]["synth"]
    reference = (
        '\n[[references]]\ndataset = "synth"\nlabel = "A paper (2019)"\nvalues = { "ndcg@10" = 0.99, "hr@5" = 0.5 }\n'
    )
    (bench / "bench.toml").write_text(CONFIG + reference, encoding="utf-8")
    calls = Counter(monkeypatch)
    again = _run(bench)
    assert again.exit_code == 0, again.output
    assert calls.calls == []  # no cell's key changed
    after = json.loads((report / "report.json").read_text())["datasets"]["synth"]
    assert after["references"] == [{"label": "A paper (2019)", "values": {"ndcg@10": 0.99, "hr@5": 0.5}}]
    assert after["best"] == before["best"] and after["models"] == before["models"]  # 0.99 is not the best model
    rows = [line for line in (report / "report.md").read_text().splitlines() if line.startswith("| published")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    header = next(line for line in (report / "report.md").read_text().splitlines() if line.startswith("| model"))
    names = [c.strip() for c in header.strip("|").split("|")]
    shown = dict(zip(names, cells, strict=True))
    assert shown["model"] == "published: A paper (2019)" and shown["ndcg@10"] == "0.9900" and shown["hr@5"] == "0.5000"
    assert shown["mrr@5"] == "-" and shown["p vs best"] == "-" and shown["seeds"] == "published"
    html = (report / "report.html").read_text()
    assert '<tr class="published"><td>published: A paper (2019)</td>' in html
    for extra, expected in (
        ('dataset = "other"', "references[0].dataset: must name a dataset"),
        ('dataset = "synth"\nvalues = { "auc" = 0.7 }', "references[0].values.auc: not a column"),
    ):
        text = CONFIG + f'\n[[references]]\nlabel = "x"\n{extra}\n'
        if "values" not in extra:
            text += 'values = { "ndcg@10" = 0.1 }\n'
        (bench / "bench.toml").write_text(text, encoding="utf-8")
        bad = _run(bench)
        assert bad.exit_code != 0 and expected in bad.output, bad.output


def test_only_selects_one_seed_of_a_model(bench: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Counter(monkeypatch)
    result = _run(bench, "--only", "synth/als/seed-2", "--only", "synth/popularity/1")
    assert result.exit_code == 0, result.output
    assert sorted(Path(c).parent.name + "/" + Path(c).name for c in calls.calls) == ["als/seed-2", "popularity/seed-1"]
    models = json.loads((bench / "out" / "report" / "report.json").read_text())["datasets"]["synth"]["models"]
    assert models["als"]["seeds"] == [2] and models["popularity"]["seeds"] == [1]


def test_an_interrupted_run_keeps_finished_cells_and_resumes(bench: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Counter(monkeypatch, interrupt_at=3)
    result = _run(bench)
    assert result.exit_code == 130
    out = bench / "out"
    finished = _cells(out)
    assert len(finished) == 2 and all((p / "metrics.json").is_file() for p in finished)
    assert not (out / "report").exists()
    resumed = Counter(monkeypatch)
    result = _run(bench)
    assert result.exit_code == 0, result.output
    assert len(resumed.calls) == 2 and not set(resumed.calls) & {str(p) for p in finished}
    assert json.loads((out / "report" / "report.json").read_text())["cells"]["done"] == 4


def test_docs_section_rewrite_is_exact_and_idempotent(bench: Path) -> None:
    docs = bench / "benchmarks.md"
    before = "# Benchmarks\n\nHand-written intro.\n\n<!-- benchmark:tiny -->\nold table\n"
    after = (
        "<!-- /benchmark:tiny -->\n\n## Other section\n\n<!-- benchmark:other -->\nkept\n<!-- /benchmark:other -->\n"
    )
    docs.write_text(before + after, encoding="utf-8")
    result = _run(bench, "--update-docs", str(docs))
    assert result.exit_code == 0, result.output
    text = docs.read_text(encoding="utf-8")
    assert text.startswith(before.replace("old table\n", "")) and text.endswith(after)
    block = text[len(before) - len("old table\n") : len(text) - len(after)]
    assert "old table" not in block and "| popularity |" in block and "| als |" in block
    report = json.loads((bench / "out" / "report" / "report.json").read_text())
    mean = report["datasets"]["synth"]["models"]["als"]["mean"]["hr@5"]
    assert f"{mean:.4f}" in block
    assert "Command: `attnrec benchmark" in block
    result = _run(bench, "--update-docs", str(docs), "--section", "tiny")
    assert result.exit_code == 0, result.output
    assert docs.read_text(encoding="utf-8") == text
    # the same block again through the library: nothing changes
    assert update_docs_section(docs, "tiny", block) is False
    result = _run(bench, "--update-docs", str(docs), "--section", "missing")
    assert result.exit_code == 2 and "section 'missing'" in result.stderr
    assert docs.read_text(encoding="utf-8") == text


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c.replace("ks = [5, 10]", "ks = [5, 10]\nseed = 3"), "bench.toml: seed: unknown key"),
        (lambda c: c.replace('path = "log.csv"', 'path = "log.csv"\nsplit = "loo"'), "datasets[0].split:"),
        (lambda c: c.replace('path = "log.csv"', 'path = "log.csv"\nsplitt = "temporal"'), "datasets[0].splitt:"),
        (lambda c: c.replace('path = "log.csv"', 'path = "nope.csv"'), "datasets[0].path: file not found"),
        (lambda c: c.replace("factors = 8", "factorz = 8"), "models[1] (als):"),
        (lambda c: c.replace('name = "popularity"', 'name = "popularity"\ntime_limit = -1'), "models[0].time_limit:"),
        (lambda c: c.replace('metric = "ndcg@10"', 'metric = "ndcg@20"'), "bench.toml: metric:"),
        (lambda c: c.replace("seeds = [1, 2]", "seeds = []"), "bench.toml: seeds:"),
        (lambda c: c.split("[[datasets]]")[0], "bench.toml: datasets: required key is missing"),
        (lambda c: c.replace("[[models]]", "[[models]]\nlabel = 'x'", 2), "models[1].label: 'x' is used twice"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(bench: Path, edit: Any, expected: str) -> None:
    (bench / "bench.toml").write_text(edit(CONFIG), encoding="utf-8")
    result = _run(bench)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr
    assert not (bench / "out").exists()


def test_data_options_with_config_are_refused(bench: Path) -> None:
    result = _run(bench, "--split", "temporal")
    assert result.exit_code == 2 and "--split cannot be given with --config" in result.stderr


def test_a_cell_past_its_time_limit_is_recorded_and_not_retried_under_the_same_limit(bench: Path) -> None:
    config = parse_benchmark_config({**_toml(CONFIG), "time_limit": 5.0})
    plan = plan_benchmark(config, bench / "out", base_dir=bench)
    cell = plan.cells[0]

    class Expire:
        def __enter__(self) -> None:
            raise CellTimeoutError("time limit of 5 s reached")

        def __exit__(self, *exc: object) -> None:
            return None

    outcome = run_cell(cell, time_guard=lambda seconds: Expire())
    assert outcome.status == "timeout" and not outcome.skipped
    assert not (cell.folder / "metrics.json").exists()
    assert run_cell(cell).status == "timeout"  # recorded: not retried under the same limit
    longer = plan_benchmark(
        parse_benchmark_config({**_toml(CONFIG), "time_limit": 50.0}), bench / "out", base_dir=bench
    )
    redone = run_cell(longer.cells[0])
    assert redone.status == "done" and not redone.skipped and (cell.folder / "metrics.json").is_file()


def test_the_one_dataset_form_keeps_its_folders_and_json(bench: Path) -> None:
    out = bench / "flat"
    args = ["benchmark", "--data", str(bench / "log.csv"), "--models", "popularity,ease", "--out", str(out)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert set(results) == {"popularity", "ease"} and "ndcg@10" in results["ease"]["test"]
    assert (out / "ease" / "metrics.json").is_file() and (out / "report" / "report.html").is_file()
    stamp = (out / "ease" / "metrics.json").stat().st_mtime_ns
    result = runner.invoke(app, [*args, "--quiet"])  # the same command again: nothing is retrained
    assert result.exit_code == 0, result.output
    assert (out / "ease" / "metrics.json").stat().st_mtime_ns == stamp
    other = runner.invoke(app, [*args[:-4], "--models", "ease", "--out", str(out), "--seed", "7"])
    assert other.exit_code == 2 and "another configuration" in other.stderr


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)


FUSION_CONFIG = (
    CONFIG
    + """
[[models]]
name = "fusion"
label = "blend"
params = { members = [{ cell = "popularity" }, { cell = "als" }], grid_points = 5 }
"""
)


def test_only_a_fusion_row_also_computes_its_member_cells(bench: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (bench / "bench.toml").write_text(FUSION_CONFIG, encoding="utf-8")
    calls = Counter(monkeypatch)
    result = _run(bench, "--only", "synth/blend")
    assert result.exit_code == 0, result.output
    assert len(calls.calls) == 6  # popularity and als first (members), then the blend, for both seeds
    assert [Path(c).parent.name for c in calls.calls][-2:] == ["blend", "blend"]


def test_a_fusion_of_cells_blends_the_finished_member_runs_and_follows_their_keys(
    bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attnrec.runs import load_run

    (bench / "bench.toml").write_text(FUSION_CONFIG, encoding="utf-8")
    first = Counter(monkeypatch)
    result = _run(bench)
    assert result.exit_code == 0, result.output
    assert len(first.calls) == 6
    out = bench / "out" / "cells" / "synth"
    for seed in (1, 2):
        folder = out / "blend" / f"seed-{seed}"
        fusion, config = load_run(folder)
        assert config is not None
        # the members are the runs of the same seed's member cells, not models the fusion trained again
        assert [m["run"] for m in config.params["members"]] == [
            str(out / "popularity" / f"seed-{seed}"),
            str(out / "als" / f"seed-{seed}"),
        ]
        assert [m["source"] for m in fusion.train_info_["members"]] == [
            str(out / name / f"seed-{seed}") for name in ("popularity", "als")
        ]
        als, _ = load_run(out / "als" / f"seed-{seed}")
        users = np.arange(1, 6)
        histories = [als.history(int(u)) for u in users]
        np.testing.assert_allclose(
            fusion.members_[1].score_indices(users, histories)[:, 1:], als.score_indices(users, histories)[:, 1:]
        )
    report = json.loads((bench / "out" / "report" / "report.json").read_text())
    models = report["datasets"]["synth"]["models"]
    assert set(models) == {"popularity", "als", "blend"}
    # the fusion against each member: paired over users on the seed-averaged per-user headline metric
    assert set(models["blend"]["vs_members"]) == {"popularity", "als"} and not models["als"]["vs_members"]

    def averaged(model: str) -> np.ndarray:
        arrays = [read_per_user(out / model / f"seed-{s}") for s in (1, 2)]
        assert arrays[0] is not None and arrays[1] is not None
        return (arrays[0]["ndcg@10"] + arrays[1]["ndcg@10"]) / 2

    for member in ("popularity", "als"):
        got = models["blend"]["vs_members"][member]
        assert got["delta"] == pytest.approx(models["blend"]["mean"]["ndcg@10"] - models[member]["mean"]["ndcg@10"])
        diff = averaged("blend") - averaged(member)
        if np.any(diff != 0):
            assert got["p_value_t"] == pytest.approx(sps.ttest_rel(averaged("blend"), averaged(member)).pvalue)
    md = (bench / "out" / "report" / "report.md").read_text()
    assert "blend against its members (ndcg@10, paired over users): vs popularity " in md
    assert "blend against its members" in (bench / "out" / "report" / "report.html").read_text()
    # a changed member reruns that member and the fusion built on it, nothing else
    (bench / "bench.toml").write_text(FUSION_CONFIG.replace("iterations = 3", "iterations = 4"), encoding="utf-8")
    second = Counter(monkeypatch)
    assert _run(bench).exit_code == 0
    assert sorted(str(Path(c).relative_to(out)) for c in second.calls) == [
        "als/seed-1",
        "als/seed-2",
        "blend/seed-1",
        "blend/seed-2",
    ]
    # moving the report folder keeps every key: nothing is recomputed in a copy
    import shutil

    shutil.copytree(bench / "out", bench / "moved")
    third = Counter(monkeypatch)
    moved = runner.invoke(
        app, ["benchmark", "--config", str(bench / "bench.toml"), "--out", str(bench / "moved"), "--quiet"]
    )
    assert moved.exit_code == 0, moved.output
    assert third.calls == []


def test_a_fusion_cell_whose_member_cell_did_not_finish_fails_naming_it(bench: Path) -> None:
    config = parse_benchmark_config({**_toml(FUSION_CONFIG)})
    plan = plan_benchmark(config, bench / "out", base_dir=bench)
    blend = next(c for c in plan.cells if c.model == "blend" and c.seed == 1)
    assert [n.name for n in blend.needs] == ["synth/popularity/seed-1", "synth/als/seed-1"]
    run_cell(blend.needs[0])
    with pytest.raises(ConfigError, match=r"synth/blend/seed-1: member cell synth/als/seed-1 has no finished run"):
        run_cell(blend)
    assert not blend.folder.exists()


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ('[{ cell = "nope" }]', "models[2].params.members[0].cell: must name a model listed before this one"),
        ('[{ cell = "blend" }]', "listed before: popularity, als); got 'blend'"),
        ('[{ cell = "als", run = "x" }]', "models[2] (blend):"),
    ],
)
def test_fusion_cell_references_are_checked_before_anything_runs(bench: Path, members: str, expected: str) -> None:
    text = FUSION_CONFIG.replace('[{ cell = "popularity" }, { cell = "als" }]', members)
    (bench / "bench.toml").write_text(text, encoding="utf-8")
    result = _run(bench)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (bench / "out").exists()


def test_report_only_writes_the_finished_cells_and_computes_none(bench: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Counter(monkeypatch)
    result = _run(bench, "--report-only")
    assert result.exit_code == 0, result.output
    assert calls.calls == []
    report = json.loads((bench / "out" / "report" / "report.json").read_text())
    assert report["cells"]["done"] == 0
    assert report["datasets"]["synth"]["models"]["als"]["status"] == {"1": "missing", "2": "missing"}
    assert _run(bench).exit_code == 0
    killed = bench / "out" / "cells" / "synth" / "als" / "seed-2"
    (killed / "metrics.json").unlink()
    again = Counter(monkeypatch)
    docs = bench / "benchmarks.md"
    docs.write_text("<!-- benchmark:tiny -->\n<!-- /benchmark:tiny -->\n", encoding="utf-8")
    result = _run(bench, "--report-only", "--update-docs", str(docs))
    assert result.exit_code == 0, result.output
    assert again.calls == [] and not (killed / "metrics.json").exists()
    models = json.loads((bench / "out" / "report" / "report.json").read_text())["datasets"]["synth"]["models"]
    assert models["als"]["seeds"] == [1] and models["popularity"]["seeds"] == [1, 2]
    text = docs.read_text(encoding="utf-8")
    assert "| als |" in text and "1/2 (seed 2: missing)" in text and "--report-only" not in text


def test_a_cell_evaluates_its_test_split_once_and_keeps_its_per_user_metrics(
    bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import attnrec.evaluation

    plan = plan_benchmark(parse_benchmark_config(_toml(CONFIG)), bench / "out", base_dir=bench)
    cell = next(c for c in plan.cells if c.model == "als")
    targets: list[int] = []
    real = attnrec.evaluation.evaluate

    def counted(model: Any, split: Any, *args: Any, **kwargs: Any) -> Any:
        targets.append(len(split.targets(kwargs.get("target", "test"))))
        return real(model, split, *args, **kwargs)

    monkeypatch.setattr(attnrec.evaluation, "evaluate", counted)
    assert run_cell(cell).status == "done"
    assert len(targets) == 2  # validation and test, each once: the per-user arrays reuse the run's test evaluation
    arrays = read_per_user(cell.folder)
    metrics = json.loads((cell.folder / "metrics.json").read_text(encoding="utf-8"))
    assert arrays is not None and len(arrays["users"]) == metrics["users_evaluated"]["test"]
    assert float(np.mean(arrays["ndcg@10"])) == pytest.approx(metrics["test"]["ndcg@10"])
    monkeypatch.setattr(attnrec.evaluation, "evaluate", real)
    from attnrec.base import Recommender
    from attnrec.evaluation.benchmark import _per_user_test
    from attnrec.runs import load_data

    model = Recommender.load(cell.folder)
    fresh = _per_user_test(model, load_data(cell.run_config), cell.run_config, None)
    assert fresh is not None
    np.testing.assert_array_equal(fresh["users"], arrays["users"])
    np.testing.assert_allclose(fresh["ndcg@10"], arrays["ndcg@10"], rtol=1e-6)


# ------------------------------------------------------------------------------------------------- records
def test_a_record_rewrites_the_report_on_a_fresh_machine_and_new_cells_extend_it(
    bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    record = bench / "results"
    docs = bench / "benchmarks.md"
    docs.write_text("<!-- benchmark:tiny -->\n<!-- /benchmark:tiny -->\n", encoding="utf-8")
    first = Counter(monkeypatch)
    assert _run(bench, "--record", str(record), "--update-docs", str(docs)).exit_code == 0
    assert len(first.calls) == 4
    section = docs.read_text(encoding="utf-8")
    assert f"--record {record}" in section
    report = json.loads((bench / "out" / "report" / "report.json").read_text())
    recorded = sorted(p.relative_to(record) for p in record.rglob("*") if p.is_file())
    names = {p.name for p in recorded}
    assert {"benchmark_cell.json", "metrics.json", "config.json", PER_USER} <= names
    assert names <= {"benchmark_cell.json", "metrics.json", "config.json", "history.csv", PER_USER}  # no model
    assert len(list(record.rglob(CELL_JSON))) == 4
    assert any(p.suffix == ".safetensors" for p in (bench / "out").rglob("*"))  # the cell folders have them
    cell = record / "cells" / "synth" / "als" / "seed-1"
    np.testing.assert_array_equal(
        np.load(cell / PER_USER)["ndcg@10"],
        np.load(bench / "out" / "cells" / "synth" / "als" / "seed-1" / PER_USER)["ndcg@10"],
    )

    shutil.rmtree(bench / "out")  # a fresh clone: the record only
    second = Counter(monkeypatch)
    assert _run(bench, "--record", str(record), "--update-docs", str(docs)).exit_code == 0
    assert second.calls == []
    assert docs.read_text(encoding="utf-8") == section  # byte for byte
    again = json.loads((bench / "out" / "report" / "report.json").read_text())
    assert again["datasets"] == report["datasets"]  # means, sds, CIs and paired tests from the recorded arrays
    marker = json.loads((bench / "out" / "cells" / "synth" / "als" / "seed-1" / CELL_JSON).read_text())
    assert marker["restored_from"] == str(cell)

    # a changed hyperparameter computes that model's cells only, and the record follows
    (bench / "bench.toml").write_text(CONFIG.replace("iterations = 3", "iterations = 4"), encoding="utf-8")
    third = Counter(monkeypatch)
    assert _run(bench, "--record", str(record)).exit_code == 0
    assert sorted(Path(c).relative_to(bench / "out" / "cells" / "synth").as_posix() for c in third.calls) == [
        "als/seed-1",
        "als/seed-2",
    ]
    assert (
        json.loads((cell / CELL_JSON).read_text())["key"]
        == json.loads((bench / "out" / "cells" / "synth" / "als" / "seed-1" / CELL_JSON).read_text())["key"]
        != marker["key"]
    )


def test_an_existing_out_is_recorded_by_report_only_and_a_new_fusion_computes_its_members_again(
    bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    (bench / "bench.toml").write_text(FUSION_CONFIG, encoding="utf-8")
    assert _run(bench).exit_code == 0  # computed without a record
    record = bench / "results"
    assert _run(bench, "--report-only", "--record", str(record)).exit_code == 0
    assert len(list(record.rglob(CELL_JSON))) == 6
    shutil.rmtree(bench / "out")
    changed = FUSION_CONFIG.replace("grid_points = 5", "grid_points = 7")
    (bench / "bench.toml").write_text(changed, encoding="utf-8")
    calls = Counter(monkeypatch)
    result = _run(bench, "--record", str(record))
    assert result.exit_code == 0, result.output
    # the blend is new, so its members are computed here (it loads their models), not restored from the record
    assert sorted(str(Path(c).relative_to(bench / "out" / "cells" / "synth")) for c in calls.calls) == [
        f"{label}/seed-{seed}" for label in ("als", "blend", "popularity") for seed in (1, 2)
    ]
    assert not any(p.name == CELL_JSON and "restored_from" in p.read_text() for p in (bench / "out").rglob("*"))

    # a member folder filled from the record earlier (when its fusion was recorded too) cannot feed a new blend
    shutil.rmtree(bench / "out")
    assert _run(bench, "--report-only", "--record", str(record)).exit_code == 0  # restores all six cells
    (bench / "bench.toml").write_text(changed.replace("grid_points = 7", "grid_points = 9"), encoding="utf-8")
    calls = Counter(monkeypatch)
    result = _run(bench, "--record", str(record))
    assert result.exit_code == 2 and calls.calls == []
    assert "member cell synth/popularity/seed-1 was restored from a benchmark record without its model" in (
        result.stderr
    )
    report = json.loads((bench / "out" / "report" / "report.json").read_text())
    models = report["datasets"]["synth"]["models"]
    assert models["als"]["seeds"] == [1, 2] and models["blend"]["seeds"] == []


def test_resume_continues_only_a_killed_run_of_the_same_configuration(bench: Path) -> None:
    from attnrec.evaluation.benchmark import model_params, resumable

    config = read_benchmark_config(bench / "bench.toml")
    cell = next(c for c in plan_benchmark(config, bench / "out", base_dir=bench).cells if c.model == "als")
    assert not resumable(cell)  # nothing there
    cell.folder.mkdir(parents=True)
    stored = {"model": "als", "seed": cell.seed, "params": model_params(cell.run_config)}
    (cell.folder / "config.json").write_text(json.dumps(stored))
    assert resumable(cell)
    for change in ({"seed": cell.seed + 1}, {"params": {**stored["params"], "factors": 99}}, {"model": "bpr"}):
        (cell.folder / "config.json").write_text(json.dumps({**stored, **change}))
        assert not resumable(cell), change  # a killed run of another configuration is started over
    (cell.folder / "config.json").write_text("{torn")
    assert not resumable(cell)


def test_an_option_added_at_its_neutral_value_keeps_the_keys_of_finished_cells() -> None:
    """Records written before a neural option existed (``ema_decay``) still match: at its neutral value the option
    is out of the hyperparameters of the key and of the comparison with a run folder's stored ones."""
    from attnrec.evaluation.benchmark import NEUTRAL_PARAMS, cell_key, model_params, without_neutral
    from attnrec.runs import DataSpec, RunConfig

    sha = {"log": "0" * 64}
    plain = RunConfig(model="sasrec", params={}, data=DataSpec(path="log.csv"), seed=0)
    spelled = RunConfig(model="sasrec", params={"ema_decay": None}, data=DataSpec(path="log.csv"), seed=0)
    averaged = RunConfig(model="sasrec", params={"ema_decay": 0.999}, data=DataSpec(path="log.csv"), seed=0)
    assert NEUTRAL_PARAMS["ema_decay"] is None and "ema_decay" not in model_params(plain)
    assert cell_key(spelled, sha) == cell_key(plain, sha)
    assert cell_key(averaged, sha) != cell_key(plain, sha) and model_params(averaged)["ema_decay"] == 0.999
    stored_today = {**model_params(plain), "ema_decay": None}  # a run folder's config.json of this release
    assert without_neutral(stored_today) == model_params(plain)
    assert without_neutral({**stored_today, "ema_decay": 0.9}) != model_params(plain)


def test_every_recorded_cell_matches_this_release_s_hyperparameters() -> None:
    """The committed records (``benchmarks/results``) stay valid: each cell's stored hyperparameters, read back
    through this release's config, give the same model parameters. A new option whose default is not declared
    in NEUTRAL_PARAMS would make every recorded cell of its model look changed (``make bench-docs`` would
    recompute hours of cells)."""
    from attnrec.evaluation.benchmark import model_params, without_neutral
    from attnrec.runs import DataSpec, RunConfig

    records = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    configs = sorted(records.glob("*/cells/*/*/seed-*/config.json"))
    assert len(configs) >= 100, "the committed benchmark records are missing"
    models = set()
    for path in configs:
        stored = json.loads(path.read_text())
        run = RunConfig(model=stored["model"], params=stored["params"], data=DataSpec(path="log.csv"), seed=0)
        assert model_params(run) == without_neutral(stored["params"]), path
        models.add(stored["model"])
    assert {"bert4rec", "sasrec", "nais", "din"} <= models
