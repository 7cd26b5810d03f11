"""Fusion: the conformance suite, normalisations, weights tuned on validation only, rrf, persistence, serving
and run members trained on other data refused."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest
from scipy.stats import rankdata

from attnrec import registry
from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data import Interactions
from attnrec.data.split import leave_one_out
from attnrec.data.synthetic import block_interactions, planted_sequences
from attnrec.errors import ConfigError, PersistenceError
from attnrec.evaluation import evaluate
from attnrec.models.fusion import Fusion, FusionConfig, blend, normalise, weight_grid
from attnrec.registry import create_model
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions

CHEAP = [{"model": "popularity"}, {"model": "itemknn"}]


class TestFusion(RecommenderConformance):
    def make_model(self) -> Recommender:
        return Fusion({"members": CHEAP, "weights": [0.2, 0.8]})


class TestFusionTunedRRF(RecommenderConformance):
    """Tuned weights need validation events; the suite fits without them, so this runs the equal-weight rrf path."""

    planted_block = False

    def make_model(self) -> Recommender:
        return Fusion({"members": CHEAP, "normalisation": "rrf"})


# ---------------------------------------------------------------------------------------------- normalisation
def test_normalisations_match_their_formulas() -> None:
    s = np.asarray([[-np.inf, 3.0, 1.0, 2.0, 2.0, -np.inf]], dtype=np.float32)
    finite = s[0, 1:5].astype(np.float64)
    rank = normalise(s, "rank")
    ranks = rankdata(-np.r_[finite, -np.inf], method="average")  # 1 = best, the -inf item last
    np.testing.assert_allclose(rank[0, 1:5], (5 - ranks[:4]) / 4)
    assert rank[0, 5] == 0.0 and rank[0, 0] == 0.0
    assert rank[0, 1] == 1.0  # the best item
    rrf = normalise(s, "rrf", rrf_k=10.0)
    np.testing.assert_allclose(rrf[0, 1:5], 1.0 / (10.0 + ranks[:4]))
    z = normalise(s, "zscore")
    np.testing.assert_allclose(z[0, 1:5], (finite - finite.mean()) / finite.std())
    assert z[0, 5] == pytest.approx(z[0, 1:5].min())  # a -inf item gets the row's lowest value
    mm = normalise(s, "minmax")
    np.testing.assert_allclose(mm[0, 1:5], [1.0, 0.0, 0.5, 0.5])
    assert mm[0, 5] == 0.0
    flat = normalise(np.asarray([[-np.inf, 2.0, 2.0]]), "zscore")
    assert np.all(flat == 0.0)


def test_normalisation_is_per_row() -> None:
    s = np.asarray([[-np.inf, 1.0, 2.0, 3.0], [-np.inf, 100.0, 200.0, 300.0]])
    for how in ("rank", "zscore", "minmax", "rrf"):
        out = normalise(s, how)
        np.testing.assert_allclose(out[0], out[1])


def test_blend_renormalises_over_the_members_that_score_a_row() -> None:
    a = np.asarray([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    b = np.asarray([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    ok = np.asarray([[True, True], [True, False]])  # (members, rows): b cannot score row 1
    out = blend([a, b], ok, np.asarray([0.25, 0.75]))
    np.testing.assert_allclose(out[0], [0.0, 0.25, 0.75])
    np.testing.assert_allclose(out[1], [0.0, 1.0, 0.0])  # a answers row 1 alone, with all the weight
    # rows whose scoring members all have weight 0 use equal weights over those members
    out = blend([a, b], ok, np.asarray([0.0, 1.0]))
    np.testing.assert_allclose(out[1], [0.0, 1.0, 0.0])
    out = blend([a, b], np.asarray([[True, False], [True, True]]), np.asarray([0.25, 0.75]))
    np.testing.assert_allclose(out[1], [0.0, 0.0, 1.0])


def test_weight_grid() -> None:
    two = weight_grid(2, 21, 300)
    assert two.shape == (21, 2)
    np.testing.assert_allclose(sorted(two[:, 0]), np.linspace(0, 1, 21))
    three = weight_grid(3, 21, 300)
    assert len(three) <= 300 and np.allclose(three.sum(axis=1), 1.0)
    assert {tuple(r) for r in weight_grid(3, 3, 300)} >= {(1.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.0, 0.0, 1.0)}


def test_rrf_scores_are_weighted_reciprocal_ranks() -> None:
    data = block_interactions(30, 20, num_groups=2, density=0.5, seed=1)
    model = Fusion({"members": CHEAP, "normalisation": "rrf", "rrf_k": 5.0, "weights": [1.0, 3.0]}).fit(data)
    users = np.arange(1, 6, dtype=np.int64)
    hists = [model.history(int(u)) for u in users]
    got = model.score_indices(users, hists)
    expected = np.zeros_like(got, dtype=np.float64)
    for member, w in zip(model.members_, (0.25, 0.75), strict=True):
        scores, _ = member.scores_with_fallback(users, hists)
        ranks = rankdata(-scores[:, 1:], axis=1, method="average")
        expected[:, 1:] += w / (5.0 + ranks)
    np.testing.assert_allclose(got[:, 1:], expected[:, 1:], rtol=1e-6)


# ---------------------------------------------------------------------------------------------- tuning
class NoiseConfig(ModelConfig):
    pass


class Noise(Recommender):
    """A useless member: fixed random scores. Records the histories it is asked to score."""

    name = "noise"
    config_class = NoiseConfig
    seen_histories: ClassVar[list[np.ndarray]] = []

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        self.table_ = np.random.default_rng(0).random((self.num_users + 1, self.num_items + 1)).astype(np.float32)

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        Noise.seen_histories.extend(np.asarray(h) for h in histories)
        out = self.table_[np.asarray(user_idx)].copy()
        out[:, 0] = -np.inf
        return out

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"table": self.table_}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.table_ = arrays["table"]


@pytest.fixture
def noise_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.MODELS, "noise", f"{__name__}:Noise")
    Noise.seen_histories.clear()


@pytest.mark.parametrize("normalisation", ["rank", "zscore", "minmax", "rrf"])
def test_a_useless_member_gets_weight_zero_on_validation(noise_registered: None, normalisation: str) -> None:
    split = leave_one_out(planted_sequences(400, 40, length=8, seed=2))
    model = Fusion({"members": [{"model": "noise"}, {"model": "itemknn"}], "normalisation": normalisation}).fit(
        split.train, split.valid
    )
    assert model.weights_ is not None
    assert model.weights_[0] <= 0.1, f"noise got weight {model.weights_[0]}"
    tuning = model.train_info_["tuning"]
    assert tuning["tuned"] and tuning["valid_users"] == split.valid.num_users
    assert len(tuning["grid"]) == len(tuning["valid_scores"]) == FusionConfig().grid_points == 101
    best = int(np.argmax(tuning["valid_scores"]))
    assert tuning["best_valid_score"] == max(tuning["valid_scores"])
    assert tuning["grid"][best][0] <= 0.1
    # the fusion is at least as good as its better member on validation (alpha = 0 and 1 are in the grid)
    assert tuning["best_valid_score"] >= max(tuning["member_valid_scores"]) - 1e-9


def test_tuning_sees_only_histories_before_the_validation_targets(noise_registered: None) -> None:
    split = leave_one_out(planted_sequences(60, 30, length=8, seed=4))
    Fusion({"members": [{"model": "noise"}, {"model": "itemknn"}]}).fit(split.train, split.valid)
    train_len = {u: len(split.train.item_idx[a:b]) for u, (a, b) in enumerate(_pairs(split.train), start=1)}
    assert Noise.seen_histories, "the tuning must score the validation users"
    longest = max(len(h) for h in Noise.seen_histories)
    assert longest <= max(train_len.values()), "a validation history contained events after the training part"
    valid_items = set(split.valid.item_idx.tolist())
    last_train = {int(h[-1]) for h in Noise.seen_histories if len(h)}
    assert last_train, "histories were empty"
    # every scored history is a user's training sequence, never one ending in the validation event
    train_seqs = {tuple(split.train.item_idx[a:b].tolist()) for a, b in _pairs(split.train)}
    assert all(tuple(h.tolist()) in train_seqs for h in Noise.seen_histories)
    assert valid_items  # (the split has validation events)


def _pairs(inter: Interactions) -> list[tuple[int, int]]:
    off = inter.sequence_offsets()
    return [(int(off[u]), int(off[u + 1])) for u in range(1, len(off) - 1)]


def test_test_evaluation_uses_train_and_valid_histories(noise_registered: None) -> None:
    """Scores at test time are the members' scores for the train + valid history, as for any model."""
    split = leave_one_out(planted_sequences(60, 30, length=8, seed=4))
    model = Fusion({"members": [{"model": "itemknn"}, {"model": "ease", "params": {"l2": 1.0}}]}).fit(
        split.train, split.valid
    )
    fused = evaluate(model, split, target="test").summary["ndcg@10"]
    alone = [evaluate(m, split, target="test").summary["ndcg@10"] for m in model.members_]
    assert fused >= min(alone) - 1e-9
    Noise.seen_histories.clear()
    noisy = Fusion({"members": [{"model": "noise"}, {"model": "itemknn"}], "weights": [0.5, 0.5]}).fit(split.train)
    evaluate(noisy, split, target="test")
    history = split.history_for("test")
    seqs = {tuple(history.item_idx[a:b].tolist()) for a, b in _pairs(history)}
    assert Noise.seen_histories and all(tuple(h.tolist()) in seqs for h in Noise.seen_histories)


def test_unknown_tune_metric_and_bad_weights_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="tune_metric"):
        Fusion({"members": CHEAP, "tune_metric": "auc"})
    with pytest.raises(ConfigError, match="weights"):
        Fusion({"members": CHEAP, "weights": [1.0]})
    with pytest.raises(ConfigError, match="exactly one of 'model' or 'run'"):
        Fusion({"members": [{"model": "ease", "run": "x"}, {"model": "itemknn"}]})


# ---------------------------------------------------------------------------------------------- persistence
def test_save_load_round_trip_holds_the_members(tmp_path: Path) -> None:
    split = leave_one_out(planted_sequences(60, 30, length=8, seed=4))
    model = Fusion({"members": CHEAP, "normalisation": "zscore"}).fit(split.train, split.valid)
    folder = model.save(tmp_path / "fusion")
    info = json.loads((folder / "fusion.json").read_text())
    assert info["weights"] == pytest.approx(model.weights_.tolist())
    assert info["normalisation"] == "zscore" and len(info["tuning"]["valid_scores"]) == model.config.grid_points
    assert [m["folder"] for m in info["members"]] == ["members/0-popularity", "members/1-itemknn"]
    for m in info["members"]:
        assert (folder / m["folder"] / "model.json").is_file()
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))
    loaded = Recommender.load(folder)
    assert isinstance(loaded, Fusion)
    users = np.arange(0, 10, dtype=np.int64)
    hists = [model.history(int(u)) for u in users]
    np.testing.assert_array_equal(
        model.scores_with_fallback(users, hists)[0], loaded.scores_with_fallback(users, hists)[0]
    )
    assert loaded.train_info_["tuning"]["valid_scores"] == model.train_info_["tuning"]["valid_scores"]
    # a member replaced after saving is refused (its weights no longer match the digest the fusion saved)
    other = create_model("itemknn", {"neighbors": 3}).fit(split.train)
    other.save(folder / "members" / "1-itemknn")
    with pytest.raises(PersistenceError, match="not the member saved with this fusion"):
        Recommender.load(folder)


# ---------------------------------------------------------------------------------------------- explanations
def test_explanations_say_which_member_contributed() -> None:
    split = leave_one_out(planted_sequences(60, 30, length=8, seed=4))
    model = Fusion({"members": CHEAP, "weights": [0.3, 0.7]}).fit(split.train)
    history = model.history(1)
    recs = model.recommend_indices(np.asarray([1]), [history], k=3)
    items = recs.item_idx[0]
    shares = model.member_shares(history, items)
    np.testing.assert_allclose(shares.sum(axis=0), 1.0)
    members = model.explain_members(history, items)
    assert [s.model for s in members[0]] == ["popularity", "itemknn"]
    assert members[0][1].top is not None and members[0][1].top[0] in set(history.tolist())
    assert members[0][0].top is None  # popularity does not use the history
    pairs = model.explain_indices(history, items, top=3)
    # only itemknn credits history items, so the credited weight is at most its share
    for j, per_item in enumerate(pairs):
        assert sum(w for _, w in per_item) <= shares[1, j] + 1e-9


# ---------------------------------------------------------------------------------------------- runs and serving
def _write_log(path: Path, inter: Interactions, *, drop_last: int = 0) -> Path:
    users = inter.users.ids(inter.user_idx)
    items = inter.items.ids(inter.item_idx)
    frame = pl.DataFrame({"user_id": users, "item_id": items, "timestamp": np.arange(len(users))})
    if drop_last:
        frame = frame.head(len(frame) - drop_last)
    frame.write_csv(path)
    return path


def _run_config(data: Path, model: str, params: dict[str, Any]) -> Any:
    from attnrec.runs import DataSpec, RunConfig

    return RunConfig(model=model, params=params, data=DataSpec(path=str(data)), seed=3)


def test_fusion_of_run_folders_is_trained_loaded_and_served(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from attnrec.runs import load_run, train_run
    from attnrec.serving.app import create_app
    from attnrec.serving.settings import ServeSettings

    data = _write_log(tmp_path / "log.csv", planted_sequences(50, 20, length=6, seed=5))
    knn = train_run(_run_config(data, "itemknn", {}), tmp_path / "knn").out
    pop = train_run(_run_config(data, "popularity", {}), tmp_path / "pop").out
    members = [{"run": str(pop)}, {"run": str(knn)}]
    result = train_run(_run_config(data, "fusion", {"members": members}), tmp_path / "fusion")
    weights = result.model.train_info_["weights"]
    assert result.metrics["test"]["ndcg@10"] >= 0.0 and len(weights) == 2
    model, config = load_run(tmp_path / "fusion")
    assert isinstance(model, Fusion) and config is not None and config.model == "fusion"
    assert model.weights_ is not None and model.weights_.tolist() == pytest.approx(weights)

    settings = ServeSettings(
        run_dir=tmp_path / "fusion", db=f"sqlite:///{tmp_path / 'events.db'}", load_in_background=False
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/ready").status_code == 200
        user = str(model.users_.id(1))  # type: ignore[union-attr]
        before = client.get(f"/users/{user}/recommendations", params={"k": 3, "explain": True}).json()
        assert len(before["items"]) == 3
        assert any(item["because"] for item in before["items"]), "a fusion with itemknn explains"
        item = before["items"][0]["item_id"]
        # an event reaches every member: the item is now in the history and is no longer recommended
        client.post("/events", json={"events": [{"user_id": user, "item_id": item}]})
        after = client.get(f"/users/{user}/recommendations", params={"k": 3}).json()
        assert item not in [i["item_id"] for i in after["items"]]
        history = [i for i in model.items_.ids(model.history(1))] + [item]  # type: ignore[union-attr]
        expected = model.recommend(histories=[history], k=3)
        assert [i["item_id"] for i in after["items"]] == [str(x) for x in expected.items[0]]


def test_run_members_trained_on_other_data_are_refused(tmp_path: Path) -> None:
    from attnrec.runs import train_run

    inter = planted_sequences(50, 20, length=6, seed=5)
    data = _write_log(tmp_path / "log.csv", inter)
    other = _write_log(tmp_path / "other.csv", inter, drop_last=1)
    knn = train_run(_run_config(data, "itemknn", {}), tmp_path / "knn").out
    pop = train_run(_run_config(other, "popularity", {}), tmp_path / "pop").out
    config = _run_config(data, "fusion", {"members": [{"run": str(knn)}, {"run": str(pop)}]})
    with pytest.raises(ConfigError) as info:
        train_run(config, tmp_path / "fusion")
    message = str(info.value)
    assert "\n" not in message and "members[1]" in message and "other data" in message
    assert not (tmp_path / "fusion").exists()
