"""``attnrec benchmark --config FILE --jobs N``: cells computed by worker processes side by side give the very
cells (keys, results, report) of a run without ``--jobs``; a cell built on other cells waits for them; a worker's
timeout or failure is that cell's outcome only; an interrupted scheduler leaves no worker behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import attnrec.runs
from attnrec.cli import benchmark_jobs
from attnrec.cli.main import app
from attnrec.data.synthetic import make_synthetic
from attnrec.evaluation.benchmark import CELL_JSON, read_benchmark_config

runner = CliRunner()

CONFIG = """
name = "tiny"
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
params = {{ factors = 8, iterations = 3 }}
{als_limit}

[[models]]
name = "fusion"
label = "blend"
params = {{ members = [{{ cell = "popularity" }}, {{ cell = "als" }}], grid_points = 5 }}
"""


@pytest.fixture()
def bench(tmp_path: Path) -> Path:
    make_synthetic(num_users=60, num_items=40, seed=3).interactions.write_csv(tmp_path / "log.csv")
    (tmp_path / "bench.toml").write_text(CONFIG.format(als_limit=""), encoding="utf-8")
    return tmp_path


def _run(folder: Path, out: str, *extra: str) -> Any:
    return runner.invoke(
        app, ["benchmark", "--config", str(folder / "bench.toml"), "--out", str(folder / out), "--quiet", *extra]
    )


def _markers(out: Path) -> dict[str, dict[str, Any]]:
    return {
        str(p.parent.relative_to(out / "cells")): json.loads(p.read_text()) for p in (out / "cells").rglob(CELL_JSON)
    }


def _trained_here(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = attnrec.runs.train_run

    def counted(config: Any, out: Any, **kwargs: Any) -> Any:
        calls.append(str(out))
        return real(config, out, **kwargs)

    monkeypatch.setattr(attnrec.runs, "train_run", counted)
    return calls


def test_jobs_compute_the_same_cells_as_one_process(bench: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = _trained_here(monkeypatch)
    result = _run(bench, "par", "--jobs", "2", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert here == []  # every cell was computed by a worker process, none by the scheduler
    par = _markers(bench / "par")
    assert sorted(par) == [f"synth/{m}/seed-{s}" for m in ("als", "blend", "popularity") for s in (1, 2)]
    assert {m["status"] for m in par.values()} == {"done"}
    for name in par:  # each worker left its log and outcome
        log = bench / "par" / "jobs" / f"{name}.log"
        assert log.is_file() and f"cell {name}: done" in log.read_text()
    result = _run(bench, "seq", "--threads", "1")
    assert result.exit_code == 0, result.output
    seq = _markers(bench / "seq")
    assert {k: m["key"] for k, m in par.items()} == {k: m["key"] for k, m in seq.items()}
    for name in par:
        metrics = [json.loads((bench / out / "cells" / name / "metrics.json").read_text()) for out in ("par", "seq")]
        assert metrics[0]["test"] == metrics[1]["test"], name
    # the fusion cells blended the members of their own folder: their runs finished before the blend started
    config = json.loads((bench / "par" / "cells" / "synth" / "blend" / "seed-1" / "config.json").read_text())
    assert [m["run"] for m in config["params"]["members"]] == [
        str(bench / "par" / "cells" / "synth" / m / "seed-1") for m in ("popularity", "als")
    ]
    reports = [json.loads((bench / out / "report" / "report.json").read_text()) for out in ("par", "seq")]
    for model, row in reports[0]["datasets"]["synth"]["models"].items():
        other = reports[1]["datasets"]["synth"]["models"][model]
        for field in ("status", "mean", "sd", "ci95", "p_value_t"):  # all but the seconds
            assert row[field] == other[field], (model, field)
    # the same command again starts no worker: every cell is finished
    stamps = {p: p.stat().st_mtime_ns for p in (bench / "par" / "jobs").rglob("*.log")}
    assert _run(bench, "par", "--jobs", "2", "--threads", "1").exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in (bench / "par" / "jobs").rglob("*.log")} == stamps


def test_a_timed_out_member_fails_its_fusion_cell_and_nothing_else(bench: Path) -> None:
    (bench / "bench.toml").write_text(CONFIG.format(als_limit="time_limit = 0.000001"), encoding="utf-8")
    result = _run(bench, "out", "--jobs", "3", "--threads", "1")
    assert result.exit_code == 2
    assert "2 of 6 cells failed (first: synth/blend/seed-1: synth/blend/seed-1: member cell synth/als/seed-1" in (
        " ".join(result.output.split())
    )
    markers = _markers(bench / "out")
    assert {k: m["status"] for k, m in markers.items()} == {
        "synth/popularity/seed-1": "done",
        "synth/popularity/seed-2": "done",
        "synth/als/seed-1": "timeout",
        "synth/als/seed-2": "timeout",
    }
    report = (bench / "out" / "report" / "report.md").read_text()
    assert "has no finished run (timeout)" in report


def test_a_worker_that_dies_without_an_outcome_fails_its_cell_naming_its_log(bench: Path) -> None:
    from attnrec.cli.benchmark import BenchmarkArgs
    from attnrec.evaluation.benchmark import plan_benchmark

    config = read_benchmark_config(bench / "bench.toml")
    plan = plan_benchmark(config, bench / "out", source=bench / "bench.toml", base_dir=bench)
    cell = plan.cells[0]
    log, result = benchmark_jobs.job_files(cell, bench / "out")
    log.parent.mkdir(parents=True)
    log.write_text("Traceback ...\nMemoryError: out of memory\n")
    proc = subprocess.Popen(["false"])
    proc.wait()
    outcome = benchmark_jobs._outcome(cell, proc, log, result)
    assert outcome.status == "failed" and not outcome.skipped
    assert (
        outcome.message == f"its worker exited with code 1 without an outcome (log: {log}): MemoryError: out of memory"
    )
    args = BenchmarkArgs(None, bench / "out", None, bench / "bench.toml", True, None, None, False, True, None, "x")
    cmd = benchmark_jobs.worker_command(cell, args, bench / "out", 3, result)
    assert cmd[1:3] == ["-m", "attnrec.cli.benchmark_jobs"]
    assert cmd[cmd.index("--cell") + 1] == "synth/popularity/seed-1" and cmd[cmd.index("--threads") + 1] == "3"
    assert "--resume" in cmd and "--record" not in cmd


def test_an_interrupted_scheduler_stops_its_workers(bench: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        return proc

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark_jobs.subprocess, "Popen", popen)
    monkeypatch.setattr(benchmark_jobs, "_wait", ctrl_c)
    result = _run(bench, "out", "--jobs", "2", "--threads", "1")
    assert result.exit_code != 0
    assert len(started) == 2  # two workers were running when Ctrl-C came
    assert all(proc.poll() is not None for proc in started)  # none left running


def test_job_threads_divide_the_configs_threads() -> None:
    assert benchmark_jobs.job_threads(2, None, 2) == 1
    assert benchmark_jobs.job_threads(8, None, 3) == 2
    assert benchmark_jobs.job_threads(2, None, 4) == 1  # at least one
    assert benchmark_jobs.job_threads(2, 3, 2) == 3  # --threads is each worker's


def test_jobs_below_one_is_a_one_line_error(bench: Path) -> None:
    result = _run(bench, "out", "--jobs", "0")
    assert result.exit_code == 2 and "--jobs must be at least 1 (cells computed side by side); got 0" in result.output


def test_the_one_dataset_form_refuses_jobs(bench: Path) -> None:
    args = ["benchmark", "--data", str(bench / "log.csv"), "--models", "popularity", "--out", str(bench / "flat")]
    result = runner.invoke(app, [*args, "--jobs", "2"])
    assert result.exit_code == 2 and "--jobs computes the cells of a --config benchmark" in result.output
