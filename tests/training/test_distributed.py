"""Multi-process training on torch.distributed (torchrun), row shards, devices, and the launcher's pieces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from attnrec.errors import ConfigError
from attnrec.training import distributed
from attnrec.training.options import TrainingOptions
from attnrec.training.trainer import Trainer, TrainerConfig

SCRIPT = Path(__file__).with_name("ddp_script.py")


def test_two_torchrun_processes_train_like_one(tmp_path: Path) -> None:
    """The same script, one process vs `torchrun --nproc-per-node 2`: same loss curve and validation metric,
    validation in rank 0 only, early stopping decided by rank 0 and obeyed by both, and both ranks return the
    same (best) weights although their replicas were initialised differently."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, launcher in (
        ("one", [sys.executable]),
        ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]),
    ):
        done = subprocess.run(
            [*launcher, str(SCRIPT), str(tmp_path / name)], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "rank0.json").read_text())
    r0, r1 = (json.loads((tmp_path / "two" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (one["world"], r0["world"], r1["world"]) == (1, 2, 2)
    assert r0["losses"] == pytest.approx(one["losses"], rel=1e-5)
    assert r1["losses"] == r0["losses"], "every rank reports the job's loss"
    assert r0["losses"][-1] < 0.1 * r0["losses"][0]
    assert r0["valid"] == pytest.approx(one["valid"], rel=1e-5)
    assert r0["best_metric"] == pytest.approx(one["best_metric"], rel=1e-5)
    assert (one["validations"], r0["validations"], r1["validations"]) == (5, 5, 0)
    assert r1["valid"] == [None] * 5
    assert r0["weights"] == pytest.approx(one["weights"], rel=1e-4, abs=1e-6)
    assert r1["weights"] == r0["weights"]
    for result in (one, r0, r1):
        assert result["stop"] == {"stopped": True, "epochs": 3, "best_epoch": 1}
    assert r0["stop_weights"] == r0["stop_best_snapshot"], "the best epoch's weights are restored"
    assert r1["stop_weights"] == r0["stop_weights"], "rank 0's best weights are broadcast"


def test_processes_outside_a_torchrun_job_names_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    module = nn.Linear(2, 1)
    trainer = Trainer(TrainerConfig(epochs=1), TrainingOptions(processes=2, threads=1))
    with pytest.raises(ConfigError, match=r"torchrun --nproc-per-node 2 script\.py.*attnrec train --processes 2"):
        trainer.fit(module, lambda e, g: [torch.ones(3, 2)], lambda b, g: module(b).sum(), num_batches=1)


def test_processes_must_match_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    module = nn.Linear(2, 1)
    trainer = Trainer(TrainerConfig(epochs=1), TrainingOptions(processes=3, threads=1))
    with pytest.raises(ConfigError, match="'processes' training option is 3 but this torchrun job has 2"):
        trainer.fit(module, lambda e, g: [torch.ones(3, 2)], lambda b, g: module(b).sum(), num_batches=1)


def test_rank_helpers_read_torchrun_variables() -> None:
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert (distributed.world_size(env), distributed.rank(env), distributed.local_rank(env)) == (4, 3, 1)
    assert distributed.local_world_size(env) == 2
    assert not distributed.is_main_process(env) and distributed.launched(env)
    assert distributed.is_main_process({}) and not distributed.launched({}) and distributed.world_size({}) == 1
    with pytest.raises(ConfigError, match="WORLD_SIZE must be an integer; got 'two'"):
        distributed.world_size({"WORLD_SIZE": "two"})
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    assert distributed.backend_for(torch.device("cuda", 1)) == "nccl"


def test_shard_takes_rows_rank_of_every_tensor_of_nested_batches() -> None:
    x = torch.arange(10).reshape(5, 2)
    batch = {"x": x, "pair": (torch.arange(5), [torch.arange(5) * 10]), "scalar": torch.tensor(7.0), "k": 3}
    part = distributed.shard(batch, 1, 2)
    assert torch.equal(part["x"], x[1::2]) and torch.equal(part["pair"][0], torch.tensor([1, 3]))
    assert torch.equal(part["pair"][1][0], torch.tensor([10, 30])) and isinstance(part["pair"][1], list)
    assert part["scalar"] is batch["scalar"] and part["k"] == 3
    assert distributed.batch_rows(batch) == 5 and distributed.batch_rows(part) == 2
    with pytest.raises(ConfigError, match=r"share their first dimension; got \(5,\), \(4,\)"):
        distributed.batch_rows((torch.zeros(5), torch.zeros(4)))


def test_device_option_is_checked() -> None:
    assert TrainingOptions().device == "auto"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert TrainingOptions(device="auto").torch_device().type == expected
    assert TrainingOptions(device=" CPU ").torch_device() == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "tpu", "", "mps"):
        rule = "'device' option must be 'auto', 'cpu', 'cuda' or 'cuda:N'"
        with pytest.raises(ConfigError, match=f"{rule}; got {bad!r}"):
            TrainingOptions(device=bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'device' option asks for 'cuda:1' but this machine has no CUDA GPU"):
            TrainingOptions(device="cuda:1")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_each_process_of_a_job_uses_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", str(min(1, torch.cuda.device_count() - 1)))
    assert TrainingOptions(device="cuda").torch_device() == torch.device("cuda", min(1, torch.cuda.device_count() - 1))


class Moved(Tensor):
    """A CPU tensor that records the devices ``.to()`` is asked for (and stays on the CPU)."""

    def to(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        device = kwargs.get("device", args[0] if args else None)
        self.__dict__.setdefault("moves", []).append(torch.device(device))
        return self


class RecordingLinear(nn.Linear):
    def to(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.__dict__.setdefault("moves", []).append(torch.device(args[0] if args else kwargs["device"]))
        return self


def test_the_module_and_every_tensor_of_every_batch_go_to_the_training_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A GPU stands in: the trainer must ask for the resolved device for the module and for each tensor of each
    (nested) batch before loss_fn sees it (the old trainer moved no batch at all)."""
    target = torch.device("cuda", 1)
    monkeypatch.setattr(TrainingOptions, "torch_device", lambda self: target)
    module = RecordingLinear(2, 1)

    def make() -> dict[str, Any]:
        return {
            "x": torch.ones(3, 2).as_subclass(Moved),
            "nested": (torch.zeros(3).as_subclass(Moved), [torch.zeros(3, 1).as_subclass(Moved)]),
            "n": 3,
        }

    seen: list[list[Any]] = []

    def loss_fn(batch: dict[str, Any], gen: torch.Generator) -> Tensor:
        leaves = [batch["x"], batch["nested"][0], batch["nested"][1][0]]
        seen.append([leaf.__dict__.get("moves") for leaf in leaves])
        return module(batch["x"].as_subclass(Tensor)).pow(2).mean()

    Trainer(TrainerConfig(epochs=2), TrainingOptions(threads=1)).fit(
        module, lambda e, g: [make(), make()], loss_fn, num_batches=2
    )
    assert module.__dict__.get("moves") == [target]
    assert len(seen) == 4 and all(moves == [[target]] * 3 for moves in seen)


def test_batches_reach_loss_fn_on_the_module_device() -> None:
    module = nn.Linear(2, 1)
    devices: list[torch.device] = []

    def loss_fn(batch: tuple[Tensor, Tensor], gen: torch.Generator) -> Tensor:
        devices.extend(t.device for t in batch)
        return (module(batch[0]) - batch[1]).pow(2).mean()

    Trainer(TrainerConfig(epochs=1), TrainingOptions(device="cpu", threads=1)).fit(
        module, lambda e, g: [(torch.ones(4, 2), torch.zeros(4, 1))], loss_fn, num_batches=1
    )
    assert devices == [torch.device("cpu")] * 2
    assert next(module.parameters()).device == torch.device("cpu")


def test_the_launcher_reports_the_root_cause_in_one_line() -> None:
    from attnrec.cli.launch import failure_line

    def failure(code: int, message: str = "", timestamp: int = 0) -> Any:
        return SimpleNamespace(exitcode=code, message=message, timestamp=timestamp)

    lost = "RuntimeError: Connection closed by peer (unexpected; ...)"
    killed = {0: failure(3, lost, 1), 1: failure(-9, "Signal 9 (SIGKILL) received by PID 12", 2)}
    assert failure_line(killed, 2) == "training process 1 of 2 was killed by SIGKILL; the job was stopped"
    own = {0: failure(3, lost, 1), 1: failure(2, "training loss became nan at epoch 2, step 3", 2)}
    assert failure_line(own, 2) == "training process 1 of 2: training loss became nan at epoch 2, step 3"
    terminated = {0: failure(2, "data.csv: line 3 ...", 5), 1: failure(-15, "Signal 15 (SIGTERM)", 1)}
    assert failure_line(terminated, 2) == "data.csv: line 3 ..."


def test_torchrun_arguments_for_one_and_several_machines() -> None:
    from attnrec.cli.launch import torchrun_args

    assert torchrun_args(["train", "--data", "x.csv"], 2) == [
        "--standalone", "--nproc-per-node", "2", "-m", "attnrec.cli.main", "train", "--data", "x.csv",
    ]  # fmt: skip
    assert torchrun_args(["train"], 4, nnodes=2, node_rank=1, master_addr="10.0.0.1", master_port=29400) == [
        "--nproc-per-node", "4", "--nnodes", "2", "--node-rank", "1", "--master-addr", "10.0.0.1",
        "--master-port", "29400", "-m", "attnrec.cli.main", "train",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="--nnodes 2 needs --master-addr HOST"):
        torchrun_args(["train"], 2, nnodes=2)
    with pytest.raises(ConfigError, match=r"--node-rank must be within 0\.\.1 \(--nnodes 2\); got 2"):
        torchrun_args(["train"], 2, nnodes=2, node_rank=2, master_addr="h")


def test_cli_device_options_are_checked_before_any_work(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from attnrec.cli.main import app

    runner = CliRunner()
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\na,x\n")
    result = runner.invoke(
        app, ["train", "--data", str(log), "--model", "ease", "--out", str(tmp_path / "r"), "--device", "gpu"]
    )
    assert result.exit_code == 2
    assert "the '--device' option must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'gpu'" in result.output
    assert not (tmp_path / "r").exists()
    result = runner.invoke(app, ["serve", str(tmp_path), "--device", "tpu"])
    assert result.exit_code == 2 and "'--device' option must be" in result.output


def test_the_served_model_is_moved_to_the_serve_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from attnrec.base import Recommender
    from attnrec.data import Interactions
    from attnrec.data.synthetic import make_synthetic
    from attnrec.models.popularity import Popularity
    from attnrec.serving.service import RecommendationService
    from attnrec.serving.settings import ServeSettings

    frame = make_synthetic(num_users=20, num_items=10, seed=0).interactions
    Popularity().fit(Interactions.from_frame(frame)).save(tmp_path)
    moves: list[str] = []
    original = Recommender.to

    def record(self: Recommender, device: str) -> Recommender:
        moves.append(device)
        return original(self, device)

    monkeypatch.setattr(Recommender, "to", record)
    service = RecommendationService(ServeSettings(run_dir=tmp_path, device="cpu", load_in_background=False))
    service.holder.reload()
    assert moves == ["cpu"]
    assert ServeSettings(run_dir=tmp_path).device == "auto"
