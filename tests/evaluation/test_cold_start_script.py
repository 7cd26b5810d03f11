"""benchmarks/cold_start.py --report-only: the cached results make the table, the missing ones are named."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from attnrec.testing.scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cold_start.py"


def _script() -> ModuleType:
    return load_script(SCRIPT)


def test_report_only_reports_cached_rows_and_names_missing_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = _script()
    files = []
    for name in ("u.data", "u.item", "u.user"):
        (tmp_path / name).write_text(f"not read in report-only mode: {name}\n", encoding="utf-8")
        files.append(tmp_path / name)
    monkeypatch.setattr(cold, "DATASETS", {"tiny": (files[0], "udata", files[1], files[2])})
    cache_dir = tmp_path / "cache"
    digests = [cold.file_digest(p) for p in files]
    key = cold.item_result_key(digests, 0.1, 10, 0, "content", {})
    row = {
        "dataset": "tiny",
        "protocol": "cold items",
        "answer": "content",
        "seed": 0,
        "recall@10": 0.25,
        "ndcg@10": 0.125,
        "users": 7,
        "seconds": 1.0,
    }
    cold.Cache(cache_dir).put("tiny-items-content-s0", key, [row])
    stale = cold.item_result_key(digests, 0.2, 10, 0, "popularity", {})
    cold.Cache(cache_dir).put("tiny-items-popularity-s0", stale, [{**row, "answer": "popularity"}])
    docs = tmp_path / "bench.md"
    docs.write_text(
        "# x\n\n<!-- benchmark:cold-start -->\nPLACEHOLDER\n<!-- /benchmark:cold-start -->\n", encoding="utf-8"
    )

    code = cold.main(
        [
            "--datasets",
            "tiny",
            "--seeds",
            "0",
            "--models",
            "content",
            "popularity",
            "--cache",
            str(cache_dir),
            "--update-docs",
            str(docs),
            "--report-only",
        ]
    )

    text = docs.read_text(encoding="utf-8")
    assert code == 0 and "PLACEHOLDER" not in text
    assert "| tiny | cold items | content | 0.2500 ± 0.0000 | 0.1250 ± 0.0000 | 7 | 1 |" in text
    # the popularity result was cached under another fraction: it is missing, not reported
    assert "| popularity |" not in text
    assert "Not computed yet (2 results" in text
    assert "tiny cold items popularity seed 0; tiny cold users seed 0." in text
    assert "--report-only" not in text and "--models content popularity" in text


def _tiny_movielens(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A small ML-100K-shaped log (``u.data``), genres (``u.item``) and demographics (``u.user``)."""
    import numpy as np

    rng = np.random.default_rng(0)
    lines = []
    for u in range(1, 41):
        for t, i in enumerate(rng.choice(np.arange(1, 61), 12, replace=False).tolist()):
            lines.append(f"{u}\t{i}\t{int(rng.integers(1, 6))}\t{880000000 + 100 * u + t}")
    log = tmp_path / "u.data"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = tmp_path / "u.item"
    items.write_text(
        "".join(
            f"{i}|Movie {i} ({1990 + i % 7})|01-Jan-{1990 + i % 7}||http://x|"
            + "|".join("1" if g == i % 5 else "0" for g in range(19))
            + "\n"
            for i in range(1, 61)
        ),
        encoding="latin-1",
    )
    users = tmp_path / "u.user"
    users.write_text(
        "".join(f"{u}|{20 + u}|{'MF'[u % 2]}|job{u % 4}|{10000 + u}\n" for u in range(1, 41)), encoding="utf-8"
    )
    return log, items, users


def test_neural_fit_reports_each_epoch_and_a_killed_run_resumes_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cold = _script()
    log, items, users = _tiny_movielens(tmp_path)
    monkeypatch.setattr(cold, "DATASETS", {"tiny": (log, "udata", items, users)})
    cache_dir = tmp_path / "cache"
    common = ["--datasets", "tiny", "--seeds", "0", "--models", "din", "--skip-users", "--threads", "1"]
    common += ["--cache", str(cache_dir), "--progress-every", "0"]

    # "killed" in epoch 3 of 4: its history row is reported before its checkpoint is written, so the
    # checkpoint on disk is epoch 2's
    original = cold.TrainingOptions

    def dying_options(**kwargs: object) -> object:
        log_row = kwargs["log"]

        def log_then_die(row: dict[str, object]) -> None:
            log_row(row)  # type: ignore[operator]
            if row["epoch"] == 3:
                raise KeyboardInterrupt

        return original(**{**kwargs, "log": log_then_die})  # type: ignore[arg-type]

    monkeypatch.setattr(cold, "TrainingOptions", dying_options)
    with pytest.raises(KeyboardInterrupt):
        cold.main([*common, "--set", "din.epochs=4", "--set", "din.patience=10"])
    first = capsys.readouterr().err
    assert "tiny cold items din seed 0: fitting" in first
    epoch_lines = [line for line in first.splitlines() if '"epoch":' in line]
    assert [line.split('"epoch": ')[1].split(",")[0] for line in epoch_lines] == ["1", "2", "3"]
    assert "din epoch 1/4 1/" in first  # in-epoch progress lines (every 0 s here)
    (folder,) = (cache_dir / "checkpoints").iterdir()
    assert folder.name.startswith("tiny-din-s0-") and (folder / "state.json").is_file()
    assert not (cache_dir / "tiny-items-din-s0.json").exists()

    monkeypatch.setattr(cold, "TrainingOptions", original)
    assert cold.main([*common, "--set", "din.epochs=4", "--set", "din.patience=10"]) == 0
    second = capsys.readouterr().err
    resumed = [line.split('"epoch": ')[1].split(",")[0] for line in second.splitlines() if '"epoch":' in line]
    assert resumed == ["3", "4"]  # epochs 1 and 2 came from the checkpoint, not recomputed
    assert (cache_dir / "tiny-items-din-s0.json").is_file()
    # the result's seconds hold the restored epochs' time too, not only the second process's
    earlier = sum(json.loads(line.split(": ", 1)[1])["seconds"] for line in epoch_lines[:2])
    stored = json.loads((cache_dir / "tiny-items-din-s0.json").read_text(encoding="utf-8"))["rows"][0]
    here = sum(json.loads(line.split(": ", 1)[1])["seconds"] for line in second.splitlines() if '"epoch":' in line)
    assert stored["seconds"] >= round(earlier + here, 1) - 0.1


def test_earlier_seconds_counts_only_the_restored_epochs() -> None:
    cold = _script()

    class Fitted:
        def __init__(self) -> None:
            self.history_ = [
                {"epoch": 1, "seconds": 10.0, "valid_seconds": 2.0},
                {"epoch": 2, "seconds": 11.0},
                {"epoch": 3, "seconds": 12.0, "valid_seconds": 3.0},
            ]

    assert cold.earlier_seconds(Fitted(), {3}) == 23.0
    assert cold.earlier_seconds(Fitted(), {1, 2, 3}) == 0.0
    assert cold.earlier_seconds(object(), set()) == 0.0


def test_result_key_covers_every_hyperparameter_defaults_included() -> None:
    """A cached result stands for the model's whole configuration: spelling out a default gives the same key,
    and any other value (as a release that changes the default would give) another one."""
    cold = _script()
    digests = ["a" * 64]
    default = cold.item_result_key(digests, 0.1, 10, 0, "autoint", {})
    dnn = list(cold.create_model("autoint", {}).config.dnn_hidden)
    assert cold.item_result_key(digests, 0.1, 10, 0, "autoint", {"dnn_hidden": dnn}) == default
    assert cold.item_result_key(digests, 0.1, 10, 0, "autoint", {"dnn_hidden": []}) != default
    assert cold.item_result_key(digests, 0.1, 10, 1, "autoint", {}) != default


def test_absent_data_is_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cold = _script()
    missing = tmp_path / "nowhere" / "u.data"
    monkeypatch.setattr(cold, "DATASETS", {"tiny": (missing, "udata", missing, missing)})
    assert cold.main(["--datasets", "tiny", "--seeds", "0", "--models", "content"]) == 2
    err = capsys.readouterr().err
    assert f"dataset 'tiny' needs {missing}" in err and "not found" in err and "Traceback" not in err
