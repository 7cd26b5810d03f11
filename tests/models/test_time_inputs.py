"""Time inputs of sequential models: gap buckets, a planted rule only the time can tell, persistence, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from attnrec.base import Recommender
from attnrec.data import Interactions
from attnrec.errors import ConfigError
from attnrec.evaluation import evaluate_interactions
from attnrec.registry import create_model
from attnrec.training.options import TrainingOptions
from attnrec.training.sequences import GAP_BUCKETS, gap_buckets

SHORT, LONG = 10, 86_400  # seconds before the trigger item: its successor is B after a short gap, C after a long one
TRIGGER, B, C = "A", "B", "C"
FILLERS = [f"f{j}" for j in range(12)]


def timed_log(users: int = 240, seed: int = 0) -> pl.DataFrame:
    """Per user: fillers a few minutes apart, then the trigger after a short or a long gap, then its successor
    (B after a short gap, C after a long one); three times over. Items alone cannot tell B from C."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, int]] = []
    for u in range(users):
        t = 1_000_000
        for _ in range(3):
            for item in rng.choice(FILLERS, size=3, replace=False):
                t += int(rng.integers(120, 600))
                rows.append((f"u{u}", str(item), t))
            short = bool(rng.random() < 0.5)
            t += SHORT if short else LONG
            rows.append((f"u{u}", TRIGGER, t))
            t += int(rng.integers(120, 600))
            rows.append((f"u{u}", B if short else C, t))
    return pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")


TINY = {
    "embed_dim": 16,
    "max_seq_len": 16,
    "dropout": 0.0,
    "batch_size": 32,
    "lr": 1e-2,
    "epochs": 30,
    "patience": 0,
    "warmup_steps": 0,
    "exclude_window_items": False,
}


def fitted(name: str, time_inputs: bool, **extra: object) -> Recommender:
    params = dict(TINY, time_inputs=time_inputs, **extra)
    if name == "sasrec":
        params["num_layers"] = 1
    else:
        params["output_dropout"] = 0.0
    model = create_model(name, params)
    return model.fit(Interactions.from_frame(timed_log()), options=TrainingOptions(seed=0, threads=1))


def probes(model: Recommender, n: int = 40, seed: int = 1) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Fresh histories ending in the trigger after a short (even rows) or long (odd rows) gap, and whether B
    should come next."""
    rng = np.random.default_rng(seed)
    assert model.items_ is not None
    hists, times, want_b = [], [], []
    for j in range(n):
        items = [*rng.choice(FILLERS, size=3, replace=False), TRIGGER]
        t = np.cumsum([5_000_000, *rng.integers(120, 600, size=2), SHORT if j % 2 == 0 else LONG])
        hists.append(model.items_.indices(items, unknown="raise"))
        times.append(t.astype(np.int64))
        want_b.append(j % 2 == 0)
    return hists, times, np.asarray(want_b)


def accuracy(model: Recommender, hists: list[np.ndarray], times: list[np.ndarray] | None, want_b: np.ndarray) -> float:
    assert model.items_ is not None
    b, c = model.items_.get(B), model.items_.get(C)
    scores, _ = model.scores_with_fallback(np.zeros(len(hists), dtype=np.int64), hists, times)
    return float(np.mean((scores[:, b] > scores[:, c]) == want_b))


def test_gap_buckets_are_half_octaves_with_first_and_unknown_at_one() -> None:
    times = np.asarray([100, 100, 101, 160, 160 + 86_400, 50], dtype=np.int64)
    # first event 1; 0 s -> 2; 1 s -> 2 + floor(2 log2 2) = 4; 59 s -> 2 + floor(2 log2 60) = 13;
    # 1 day -> 2 + floor(2 log2 86401) = 34; a clock going backwards counts as 0 s -> 2
    assert gap_buckets(times).tolist() == [1, 2, 4, 13, 34, 2]
    assert gap_buckets(None, 3).tolist() == [1, 1, 1]
    assert gap_buckets(np.asarray([0, 2**62], dtype=np.int64)).tolist() == [1, GAP_BUCKETS - 1]


@pytest.mark.parametrize("name", ["sasrec", "narm"])
def test_time_inputs_learn_a_rule_that_only_the_time_can_tell(name: str) -> None:
    timed = fitted(name, True)
    hists, times, want_b = probes(timed)
    assert timed.uses_time
    assert accuracy(timed, hists, times, want_b) >= 0.9
    # the same model without the times cannot tell the two cases apart: one answer for both
    blind = accuracy(timed, hists, None, want_b)
    assert blind == pytest.approx(0.5)
    # and a model without time inputs cannot either
    plain = fitted(name, False)
    assert not plain.uses_time
    assert accuracy(plain, hists, times, want_b) <= 0.6


def test_evaluation_and_stored_histories_pass_the_times(tmp_path: Path) -> None:
    log = timed_log()
    model = fitted("sasrec", True)
    data = Interactions.from_frame(log, model.users_, model.items_)
    # the last event of each user is B or C (also in the history: not excluded), the rest is the history
    last = np.r_[np.diff(data.user_idx) != 0, True]
    result = evaluate_interactions(model, data.subset(~last), data.subset(last), ks=(1,), exclude_seen=False)
    assert result.summary["hr@1"] >= 0.9
    # stored histories keep their times, through save and load
    model.set_histories(data.subset(~last))
    before = model.recommend(users=["u0", "u1", "u2"], k=1, exclude_seen=False)
    loaded = Recommender.load(model.save(tmp_path / "m"))
    after = loaded.recommend(users=["u0", "u1", "u2"], k=1, exclude_seen=False)
    assert before.items.tolist() == after.items.tolist()
    assert set(after.items[:, 0].tolist()) <= {B, C}
    assert loaded.history_times(1) is not None


def test_models_without_time_inputs_do_not_store_times(tmp_path: Path) -> None:
    model = fitted("sasrec", False)
    assert model.history_times(1) is None
    assert Recommender.load(model.save(tmp_path / "m")).history_times(1) is None


def test_time_inputs_need_timestamps_and_bert4rec_says_it_has_none() -> None:
    log = timed_log(users=20).drop("timestamp")
    with pytest.raises(ConfigError, match=r"'time_inputs'.*timestamps"):
        create_model("sasrec", dict(TINY, time_inputs=True)).fit(Interactions.from_frame(log))
    with pytest.raises(ConfigError, match=r"'time_inputs'.*BERT4Rec"):
        create_model("bert4rec", {"time_inputs": True})


def test_times_must_match_the_histories() -> None:
    model = fitted("sasrec", True, epochs=1)
    hists, times, _ = probes(model, n=2)
    with pytest.raises(ConfigError, match=r"times\[1\] has 3 values for a history of 4 items"):
        model.scores_with_fallback(np.zeros(2, dtype=np.int64), hists, [times[0], times[1][:3]])


def test_a_fusion_passes_the_times_to_its_members_with_time_inputs() -> None:
    sasrec = dict(TINY, time_inputs=True, num_layers=1)
    fusion = create_model(
        "fusion",
        {"members": [{"model": "sasrec", "params": sasrec}, {"model": "popularity"}], "weights": [0.9, 0.1]},
    ).fit(Interactions.from_frame(timed_log()), options=TrainingOptions(seed=0, threads=1))
    assert fusion.uses_time
    hists, times, want_b = probes(fusion)
    assert accuracy(fusion, hists, times, want_b) >= 0.9
    assert accuracy(fusion, hists, None, want_b) == pytest.approx(0.5)
