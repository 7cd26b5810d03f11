"""benchmarks/sasrec_speed.py trains SASRec as fitting does: the data rules resolved, full steps on a tiny log."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from attnrec.testing.scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sasrec_speed.py"


def _script() -> ModuleType:
    return load_script(SCRIPT)


def _tiny_log(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = ["user_id,item_id,timestamp"]
    for u in range(1, 41):
        for t, i in enumerate(rng.choice(np.arange(1, 61), size=12, replace=False).tolist()):
            lines.append(f"u{u},i{i},{t}")
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_rules_are_resolved_and_a_run_reports_its_throughput(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    speed = _script()
    log = _tiny_log(tmp_path)
    seqs, _, num_items, train = speed.training_sequences(str(log), None)
    assert len(seqs) == 40 and num_items == 60
    cfg = speed.ruled(speed.SASRecConfig(), train)
    # 440 training events over 60 items: a sparse catalogue (< 50 per item) and a small log
    assert (cfg.weight_decay, cfg.dropout) == (1.0, 0.5)
    assert cfg.batch_size is not None and cfg.batch_size >= 16

    monkeypatch.setattr(sys, "argv", ["sasrec_speed.py", "--data", str(log), "--threads", "1", "--steps", "1"])
    assert speed.main() == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| defaults |"))
    assert float(row.split("|")[2].replace(",", "")) > 0  # tokens/s of the timed step
