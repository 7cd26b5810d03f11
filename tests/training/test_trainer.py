"""The one training loop: schedule, early stopping, checkpoints/resume, NaN detection, determinism, logging."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from attnrec.errors import ModelFitError, PersistenceError
from attnrec.training.options import TrainingOptions
from attnrec.training.trainer import Trainer, TrainerConfig, native_bf16


class KilledError(Exception):
    """Stands in for the process being killed."""


def regression_task(init_seed: int = 0) -> tuple[nn.Module, object, object, int]:
    """A small noisy linear regression with dropout (so global RNG use matters) and a batch generator."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(96, 5, generator=g)
    w = torch.randn(5, 1, generator=g)
    y = X @ w + 0.1 * torch.randn(96, 1, generator=g)
    torch.manual_seed(init_seed)
    module = nn.Sequential(nn.Linear(5, 16), nn.Dropout(0.1), nn.Linear(16, 1))

    def batches(epoch: int, gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        perm = torch.randperm(96, generator=gen)
        for idx in perm.split(16):
            yield X[idx], y[idx]

    def loss_fn(batch: tuple[Tensor, Tensor], gen: torch.Generator) -> tuple[Tensor, int]:
        xb, yb = batch
        noise = torch.randn(xb.shape[0], 1, generator=gen) * 0.01  # uses the batch generator too
        return ((module(xb) + noise - yb) ** 2).mean(), len(xb)

    return module, batches, loss_fn, 6


def weights(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_loss_decreases_and_history_rows() -> None:
    module, batches, loss_fn, nb = regression_task()
    rows: list[dict[str, object]] = []
    reports: list[tuple[str, float, float | None]] = []
    opts = TrainingOptions(seed=1, threads=1, log=rows.append, progress=lambda d, c, t: reports.append((d, c, t)))
    result = Trainer(TrainerConfig(lr=1e-2, epochs=8), opts).fit(module, batches, loss_fn, num_batches=nb)
    assert [r["epoch"] for r in rows] == list(range(1, 9))
    assert rows == result.history
    assert float(rows[-1]["loss"]) < 0.2 * float(rows[0]["loss"])  # type: ignore[arg-type]
    assert all(float(r["tokens_per_second"]) > 0 for r in rows)  # type: ignore[arg-type]
    assert len(reports) == 8 * nb and reports[-1][1:] == (nb, nb)


def test_same_seed_same_weights_different_seed_differs() -> None:
    runs = []
    for seed in (3, 3, 4):
        module, batches, loss_fn, nb = regression_task()
        Trainer(TrainerConfig(lr=1e-2, epochs=3), TrainingOptions(seed=seed, threads=1)).fit(
            module, batches, loss_fn, num_batches=nb
        )
        runs.append(weights(module))
    for k in runs[0]:
        torch.testing.assert_close(runs[0][k], runs[1][k], rtol=0, atol=0)
    assert any(not torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_global_rng_state_is_restored() -> None:
    module, batches, loss_fn, nb = regression_task()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Trainer(TrainerConfig(epochs=1), TrainingOptions(threads=1)).fit(module, batches, loss_fn, num_batches=nb)
    torch.testing.assert_close(torch.rand(3), expected)


def test_nan_loss_names_epoch_and_step() -> None:
    module, batches, loss_fn, nb = regression_task()
    calls = {"n": 0}

    def bad_loss(batch: tuple[Tensor, Tensor], gen: torch.Generator) -> Tensor:
        calls["n"] += 1
        loss, _ = loss_fn(batch, gen)  # type: ignore[operator]
        return loss * float("nan") if calls["n"] == nb + 3 else loss

    with pytest.raises(ModelFitError, match=r"epoch 2, step 3"):
        Trainer(TrainerConfig(epochs=3), TrainingOptions(threads=1)).fit(module, batches, bad_loss, num_batches=nb)


def test_resume_after_kill_equals_uninterrupted(tmp_path: Path) -> None:
    config = TrainerConfig(lr=5e-3, epochs=4, warmup_steps=4, cosine=True, grad_clip=1.0)

    def validate_for(module: nn.Module) -> object:
        probe = torch.linspace(-1, 1, 5)[None, :]
        return lambda: {"ndcg@10": -float(module(probe).detach().abs().sum())}

    module, batches, loss_fn, nb = regression_task()
    full = Trainer(config, TrainingOptions(seed=5, threads=1)).fit(
        module,
        batches,
        loss_fn,
        num_batches=nb,
        validate=validate_for(module),  # type: ignore[arg-type]
    )
    expected = weights(module)

    module, batches, loss_fn, nb = regression_task()
    seen: list[tuple[str, float]] = []

    def kill_in_epoch_3(desc: str, done: float, total: float | None) -> None:
        seen.append((desc, done))
        if desc.endswith("epoch 3/4") and done == 2:
            raise KilledError

    opts = TrainingOptions(seed=5, threads=1, checkpoint_dir=tmp_path, progress=kill_in_epoch_3)
    with pytest.raises(KilledError):
        Trainer(config, opts).fit(module, batches, loss_fn, num_batches=nb, validate=validate_for(module))  # type: ignore[arg-type]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert {p.name for p in tmp_path.iterdir()} >= {
        "state.json",
        "weights.safetensors",
        "optimizer.safetensors",
        "optimizer.json",
    }

    module, batches, loss_fn, nb = regression_task(init_seed=99)  # fresh process: different initial weights
    opts = TrainingOptions(seed=5, threads=1, checkpoint_dir=tmp_path, resume=True)
    resumed = Trainer(config, opts).fit(module, batches, loss_fn, num_batches=nb, validate=validate_for(module))  # type: ignore[arg-type]
    for k in expected:
        torch.testing.assert_close(module.state_dict()[k], expected[k], rtol=0, atol=0)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    assert resumed.best_epoch == full.best_epoch


def test_early_stopping_restores_best_weights() -> None:
    module, batches, loss_fn, nb = regression_task()
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.4, 0.9, 0.9])
    snapshots: list[dict[str, Tensor]] = []

    def validate() -> dict[str, float]:
        snapshots.append(weights(module))
        return {"ndcg@10": next(scores)}

    result = Trainer(TrainerConfig(epochs=7, patience=3), TrainingOptions(threads=1)).fit(
        module, batches, loss_fn, num_batches=nb, validate=validate
    )
    assert result.stopped_early and result.epochs_run == 5 and result.best_epoch == 2
    assert result.best_metric == pytest.approx(0.5)
    for k, v in module.state_dict().items():
        torch.testing.assert_close(v, snapshots[1][k], rtol=0, atol=0)


def test_warmup_then_cosine_schedule() -> None:
    trainer = Trainer(TrainerConfig(lr=1.0, warmup_steps=4, cosine=True, min_lr_ratio=0.1))
    lrs = [trainer.lr_at(s, 40) for s in range(40)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in itertools.pairwise(lrs[3:]))
    assert lrs[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 35 / 36)).item()))
    assert Trainer(TrainerConfig(lr=0.3)).lr_at(100, 10) == 0.3
    assert Trainer(TrainerConfig(lr=1.0, warmup_steps=100)).lr_at(0, 20) == 0.5  # capped at a tenth of 20 steps


def test_missing_metric_is_an_error() -> None:
    module, batches, loss_fn, nb = regression_task()
    with pytest.raises(ModelFitError, match="ndcg@10"):
        Trainer(TrainerConfig(epochs=1), TrainingOptions(threads=1)).fit(
            module, batches, loss_fn, num_batches=nb, validate=lambda: {"hr@10": 0.1}
        )


def test_native_bf16_reads_the_cpu_flags() -> None:
    assert native_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512vl\n")
    assert native_bf16("flags\t\t: fpu amx_tile amx_bf16\n")
    assert not native_bf16("flags\t\t: fpu sse2 avx2 avx512f avx512bw\n")  # AVX-512 without BF16
    assert not native_bf16("Processor\t: ARMv8\nFeatures\t: fp asimd\n")
    assert isinstance(native_bf16(), bool)


def test_optimizer_state_round_trips_through_safetensors_and_json(tmp_path: Path) -> None:
    import json

    from safetensors.torch import load_file, save_file

    from attnrec.training.trainer import optimizer_state_from_files, optimizer_state_to_files

    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, betas=(0.9, 0.98), weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
    tensors, meta = optimizer_state_to_files(opt.state_dict())
    save_file(tensors, str(tmp_path / "o.safetensors"))
    (tmp_path / "o.json").write_text(json.dumps(meta))
    restored = optimizer_state_from_files(
        load_file(str(tmp_path / "o.safetensors")), json.loads((tmp_path / "o.json").read_text())
    )
    twin = torch.nn.Linear(4, 3)
    twin.load_state_dict(net.state_dict())
    opt2 = torch.optim.AdamW(twin.parameters(), lr=5.0)  # settings come from the files
    opt2.load_state_dict(restored)
    assert opt2.param_groups[0]["lr"] == 1e-2 and opt2.param_groups[0]["betas"] == (0.9, 0.98)
    x = torch.randn(5, 4)
    for o, m in ((opt, net), (opt2, twin)):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
    torch.testing.assert_close(twin.weight, net.weight, rtol=0, atol=0)


def test_mode_min_keeps_the_epoch_with_the_lowest_metric() -> None:
    """RMSE-like metrics: the best epoch is the minimum, and patience counts epochs without a new minimum."""
    from attnrec.training.options import TrainingOptions
    from attnrec.training.trainer import Trainer, TrainerConfig

    values = iter([3.0, 1.0, 2.0, 2.5, 0.5])
    module = torch.nn.Linear(2, 1)

    def batches(epoch: int, gen: torch.Generator) -> list[torch.Tensor]:
        return [torch.ones(4, 2)]

    def loss_fn(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return module(batch).pow(2).mean()

    config = TrainerConfig(epochs=5, metric="rmse", mode="min", patience=2)
    result = Trainer(config, TrainingOptions(seed=0)).fit(
        module, batches, loss_fn, num_batches=1, validate=lambda: {"rmse": next(values)}
    )
    assert result.best_epoch == 2 and result.best_metric == 1.0
    assert result.stopped_early and result.epochs_run == 4


def test_weight_average_is_the_exponential_average_of_the_steps(tmp_path: Path) -> None:
    """With ``ema_decay`` the fitted module is the running average of the raw weights after every step (decay
    warmed up as min(d, (1 + t) / (10 + t))), computed here by hand from the weights each step started from;
    the checkpoint keeps the raw weights for the optimizer and the average beside them."""
    decay = 0.8
    module, batches, loss_fn, nb = regression_task()
    start = weights(module)
    seen: list[dict[str, Tensor]] = []

    def recording_loss(batch: tuple[Tensor, Tensor], gen: torch.Generator) -> object:
        seen.append(weights(module))  # the raw weights after the steps so far
        return loss_fn(batch, gen)  # type: ignore[operator]

    opts = TrainingOptions(seed=2, threads=1, checkpoint_dir=tmp_path)
    Trainer(TrainerConfig(lr=2e-2, epochs=3, ema_decay=decay), opts).fit(
        module, batches, recording_loss, num_batches=nb
    )
    from safetensors.torch import load_file

    raw = load_file(str(tmp_path / "weights.safetensors"))
    trajectory = [*seen[1:], raw]  # weights after step t = 0 .. 3 * nb - 1
    assert len(trajectory) == 3 * nb
    expected = {k: v.clone() for k, v in start.items()}
    for t, after in enumerate(trajectory):
        d = min(decay, (1 + t) / (10 + t))
        for k in expected:
            expected[k] = d * expected[k] + (1 - d) * after[k]
    for k, v in module.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(v, raw[k])  # the average, not the last step
    saved = load_file(str(tmp_path / "ema.safetensors"))
    for k, v in module.state_dict().items():
        torch.testing.assert_close(saved[k], v, rtol=0, atol=0)


def test_weight_average_is_validated_and_kept_and_training_continues_from_raw_weights(tmp_path: Path) -> None:
    """Validation sees the averaged weights, the best epoch keeps them, and the optimizer keeps stepping the
    raw weights (the loss path of a run with an average equals the run without one)."""
    module, batches, loss_fn, nb = regression_task()
    plain = Trainer(TrainerConfig(lr=1e-2, epochs=4), TrainingOptions(seed=1, threads=1)).fit(
        module, batches, loss_fn, num_batches=nb
    )
    module, batches, loss_fn, nb = regression_task()
    snapshots: list[dict[str, Tensor]] = []
    scores = iter([0.1, 0.7, 0.3, 0.2])

    def validate() -> dict[str, float]:
        snapshots.append(weights(module))
        return {"ndcg@10": next(scores)}

    opts = TrainingOptions(seed=1, threads=1, checkpoint_dir=tmp_path)
    averaged = Trainer(TrainerConfig(lr=1e-2, epochs=4, ema_decay=0.9), opts).fit(
        module, batches, loss_fn, num_batches=nb, validate=validate
    )
    from safetensors.torch import load_file

    average, raw = load_file(str(tmp_path / "ema.safetensors")), load_file(str(tmp_path / "weights.safetensors"))
    for k, v in snapshots[3].items():  # the last validation saw the average, not the raw weights
        torch.testing.assert_close(v, average[k], rtol=0, atol=0)
        assert not torch.equal(v, raw[k])
    assert [r["loss"] for r in averaged.history] == [r["loss"] for r in plain.history]
    assert averaged.best_epoch == 2
    for k, v in module.state_dict().items():
        torch.testing.assert_close(v, snapshots[1][k], rtol=0, atol=0)
    assert any(not torch.equal(snapshots[1][k], snapshots[3][k]) for k in snapshots[1])


def test_resume_with_weight_average_equals_uninterrupted(tmp_path: Path) -> None:
    config = TrainerConfig(lr=5e-3, epochs=4, ema_decay=0.95)
    module, batches, loss_fn, nb = regression_task()
    Trainer(config, TrainingOptions(seed=5, threads=1)).fit(module, batches, loss_fn, num_batches=nb)
    expected = weights(module)

    def kill_in_epoch_3(desc: str, done: float, total: float | None) -> None:
        if desc.endswith("epoch 3/4") and done == 2:
            raise KilledError

    module, batches, loss_fn, nb = regression_task()
    opts = TrainingOptions(seed=5, threads=1, checkpoint_dir=tmp_path, progress=kill_in_epoch_3)
    with pytest.raises(KilledError):
        Trainer(config, opts).fit(module, batches, loss_fn, num_batches=nb)
    module, batches, loss_fn, nb = regression_task(init_seed=99)
    opts = TrainingOptions(seed=5, threads=1, checkpoint_dir=tmp_path, resume=True)
    Trainer(config, opts).fit(module, batches, loss_fn, num_batches=nb)
    for k in expected:
        torch.testing.assert_close(module.state_dict()[k], expected[k], rtol=0, atol=0)
    # a checkpoint of a run without the average cannot continue one with it
    (tmp_path / "ema.safetensors").unlink()
    module, batches, loss_fn, nb = regression_task()
    with pytest.raises(PersistenceError, match="ema_decay"):
        Trainer(config, opts).fit(module, batches, loss_fn, num_batches=nb)
