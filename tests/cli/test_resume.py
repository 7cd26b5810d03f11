"""`attnrec train --resume DIR` continues a run killed with SIGKILL and ends like an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from attnrec.data.synthetic import make_synthetic

ATTNREC = [sys.executable, "-m", "attnrec.cli.main"]


def _train(log: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return [
        *ATTNREC, "train", "--data", str(log), "--model", "sasrec", "--out", str(out), "--quiet", "--threads", "1",
        "--set", f"epochs={epochs}", "--set", "embed_dim=16", "--set", "num_layers=1", "--set", "max_seq_len=20",
        "--set", "eval_every=5", *extra,
    ]  # fmt: skip


def test_resume_after_kill(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    make_synthetic(num_users=60, num_items=40, seed=1).interactions.write_csv(log)
    out = tmp_path / "run"
    proc = subprocess.Popen(_train(log, out, 400), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = out / "checkpoints" / "state.json"
    deadline = time.monotonic() + 120
    killed_at = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if state.is_file():
            try:
                killed_at = json.loads(state.read_text())["epoch"]
            except (json.JSONDecodeError, KeyError):
                killed_at = 0
            if killed_at >= 3:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not (out / "metrics.json").exists()

    resumed = subprocess.run([*ATTNREC, "train", "--resume", str(out), "--quiet"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 400
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 400  # header + every epoch, including those before the kill
    assert rows[1].startswith("1,")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_two_training_processes_and_their_cleanup_after_a_kill(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    make_synthetic(num_users=60, num_items=40, seed=1).interactions.write_csv(log)
    done = subprocess.run(
        _train(log, tmp_path / "ok", 4, "--processes", "2"), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "ok" / "config.json").read_text())["processes"] == 2
    assert json.loads((tmp_path / "ok" / "metrics.json").read_text())["epochs"] == 4

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _train(log, out, 400, "--processes", "2"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    state = out / "checkpoints" / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not state.is_file():
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert workers, "the data-parallel worker process was not found"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "a worker outlived the killed training process"
