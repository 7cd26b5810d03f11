"""`attnrec train --resume DIR` continues a run killed with SIGKILL and ends like an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from attnrec.data.synthetic import make_synthetic

ATTNREC = [sys.executable, "-m", "attnrec.cli.main"]


def _train(log: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return [
        *ATTNREC, "train", "--data", str(log), "--model", "sasrec", "--out", str(out), "--quiet", "--threads", "1",
        "--set", f"epochs={epochs}", "--set", "embed_dim=16", "--set", "num_layers=1", "--set", "max_seq_len=20",
        "--set", "eval_every=5", "--set", "patience=0", *extra,
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


def _wait_for_checkpoint(proc: subprocess.Popen[bytes], state: Path) -> list[int]:
    """The torchrun workers (children of the launcher) once the first checkpoint exists."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and not state.is_file():
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed"
    workers = _children(proc.pid)
    assert len(workers) == 2, f"expected the 2 torchrun workers, found {workers}"
    return workers


def _rank_of(pid: int) -> int:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return int(next(e for e in entries if e.startswith(b"RANK=")).split(b"=", 1)[1])


def _all_gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return not any(_alive(p) for p in pids)


def test_two_training_processes_under_torchrun_and_their_cleanup_after_a_kill(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    make_synthetic(num_users=60, num_items=40, seed=1).interactions.write_csv(log)
    done = subprocess.run(
        _train(log, tmp_path / "ok", 4, "--processes", "2"), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "running: torchrun --standalone --nproc-per-node 2 -m attnrec.cli.main train" not in done.stderr  # quiet
    config = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert (config["processes"], config["world_size"]) == (2, 2)
    assert (config["device"], config["device_used"]) == ("auto", "cuda:0" if torch.cuda.is_available() else "cpu")
    assert json.loads((tmp_path / "ok" / "metrics.json").read_text())["epochs"] == 4
    assert done.stdout.count("run folder:") == 1, "only rank 0 prints the summary"

    # a killed worker ends the job: one line naming it, the other worker stopped, nothing left running
    out = tmp_path / "worker-killed"
    proc = subprocess.Popen(
        _train(log, out, 400, "--processes", "2"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    workers = _wait_for_checkpoint(proc, out / "checkpoints" / "state.json")
    os.kill(next(w for w in workers if _rank_of(w) == 1), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    lines = [line for line in stderr.decode().strip().splitlines() if not line.startswith(("data:", "note:"))]
    assert proc.returncode == 2
    assert lines == ["error: training process 1 of 2 was killed by SIGKILL; the job was stopped"], lines
    assert _all_gone(workers)

    # a killed launcher takes its workers with it
    out = tmp_path / "launcher-killed"
    proc = subprocess.Popen(
        _train(log, out, 400, "--processes", "2"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    workers = _wait_for_checkpoint(proc, out / "checkpoints" / "state.json")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert _all_gone(workers), "a worker outlived the killed launcher"
