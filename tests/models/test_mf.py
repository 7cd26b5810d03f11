from pathlib import Path

import numpy as np
import pytest

from attnrec.data.synthetic import planted_ratings, planted_sequences
from attnrec.errors import ConfigError
from attnrec.models.mf import BiasedMF
from attnrec.testing.conformance import RecommenderConformance
from attnrec.training.options import TrainingOptions


class TestBiasedMF(RecommenderConformance):
    # ratings are only observed inside the blocks, so predicted ratings cannot tell other blocks apart
    planted_block = False

    def make_model(self) -> BiasedMF:
        return BiasedMF(factors=4, epochs=60, batch_size=256, lr=0.03, l2=0.01)


def test_low_rank_ratings_are_recovered() -> None:
    data, truth = planted_ratings(80, 60, rank=2, density=0.6, noise=0.05, seed=2)
    rng = np.random.default_rng(1)
    held = rng.random(len(data)) < 0.15
    model = BiasedMF(factors=2, epochs=150, batch_size=256, lr=0.03, l2=0.002, clip=False)
    model.fit(data.subset(~held), options=TrainingOptions(seed=0, threads=1))
    test = data.subset(held)
    pred = model.predict_ratings(test.user_idx, test.item_idx)
    rmse = float(np.sqrt(np.mean((pred - truth[test.user_idx, test.item_idx]) ** 2)))
    spread = float(np.std(truth[1:, 1:]))
    assert rmse < 0.25 * spread, f"held-out RMSE {rmse:.3f} vs rating spread {spread:.3f}"


def test_unknown_user_predicts_mean_plus_item_bias() -> None:
    data, _ = planted_ratings(30, 20, seed=3)
    model = BiasedMF(factors=2, epochs=5, clip=False).fit(data)
    pred = model.predict_ratings(np.asarray([0, 0]), np.asarray([1, 2]))
    np.testing.assert_allclose(pred, model.mu_ + model.item_bias_[[1, 2]], rtol=1e-6)


def test_needs_ratings() -> None:
    with pytest.raises(ConfigError, match="no 'rating' column"):
        BiasedMF(epochs=1).fit(planted_sequences(10, 12, length=4))


def test_old_name_learning_rate_is_still_accepted() -> None:
    with pytest.warns(DeprecationWarning, match="now called 'lr'"):
        assert BiasedMF(learning_rate=0.02).config.lr == 0.02
    assert BiasedMF(lr=0.03).get_config()["lr"] == 0.03


def test_runs_in_the_shared_loop_with_checkpoints_and_resume(tmp_path: Path) -> None:
    """An interrupted fit resumed from its checkpoints ends exactly like an uninterrupted one."""
    data, _ = planted_ratings(40, 30, rank=2, density=0.5, seed=4)
    rng = np.random.default_rng(0)
    valid_mask = rng.random(len(data)) < 0.1
    train, valid = data.subset(~valid_mask), data.subset(valid_mask)

    def make() -> BiasedMF:
        return BiasedMF(factors=3, epochs=6, batch_size=128, lr=0.03, patience=10)

    full = make().fit(train, valid, options=TrainingOptions(seed=5, threads=1))
    assert [row["epoch"] for row in full.history_] == [1, 2, 3, 4, 5, 6]
    assert all("valid_rmse" in row for row in full.history_)

    class StopError(Exception):
        pass

    def stop_after_3(row: dict[str, object]) -> None:
        if row["epoch"] == 3:
            raise StopError

    folder = tmp_path / "ckpt"
    with pytest.raises(StopError):
        make().fit(train, valid, options=TrainingOptions(seed=5, threads=1, checkpoint_dir=folder, log=stop_after_3))
    resumed = make().fit(train, valid, options=TrainingOptions(seed=5, threads=1, checkpoint_dir=folder, resume=True))
    np.testing.assert_array_equal(resumed.user_factors_, full.user_factors_)
    np.testing.assert_array_equal(resumed.item_bias_, full.item_bias_)
    assert resumed.train_info_["best_epoch"] == full.train_info_["best_epoch"]
