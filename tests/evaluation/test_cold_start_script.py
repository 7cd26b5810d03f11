"""benchmarks/cold_start.py --report-only: the cached results make the table, the missing ones are named."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cold_start.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cold_start_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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
    key = cold.Cache.key(data=digests, frac=0.1, k=10, seed=0, model="content", params={})
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
    stale = cold.Cache.key(data=digests, frac=0.2, k=10, seed=0, model="popularity", params={})
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
