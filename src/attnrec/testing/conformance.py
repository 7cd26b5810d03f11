"""Conformance tests every recommender must pass, shipped with the package (needs ``pytest``).

Subclass :class:`RecommenderConformance` in a test module and give it a ``make_model`` hook::

    from attnrec.testing.conformance import RecommenderConformance

    class TestEASE(RecommenderConformance):
        def make_model(self):
            return EASE(l2=1.0)

pytest then runs every ``test_*`` method below against the model. The checks are about meaning, not "it runs":

* ``fit`` returns ``self``; use before ``fit`` raises :class:`~attnrec.errors.NotFittedError`; an unknown config
  key raises :class:`~attnrec.errors.ConfigError` listing the valid keys.
* ``recommend`` returns ``(batch, k)`` arrays with scores sorted best first; ``exclude_seen=True`` never returns a
  history item and ``exclude_seen=False`` can.
* unknown users get the popularity fallback, flagged; a history-using model personalises an anonymous history.
* save/load and a refit with the same seed give identical scores; on a machine with a CUDA GPU, a neural model
  trained there scores the same (float32 tolerance) after loading on the CPU (skipped without a GPU).
* a user's scores do not depend on the batch: alone, in another order or next to longer (padded) histories they
  are the same (float32 tolerance); one more event changes the scores of a model that uses histories
  (``uses_history``) and leaves the others' unchanged.
* explanations (:func:`check_explanation_contract`): every method of a model that explains credits items of the
  history with finite, non-negative weights, largest first, at most ``top``; a model that does not explain
  says so in one line.
* planted structure: on checkerboard data (:func:`~attnrec.data.synthetic.block_interactions`, users of group
  ``g`` only interact with items of group ``g``) a user's recommendations come from its own group
  (``planted_block = True``); sequential models (``sequential = True``) rank item ``i + 1`` first after a history
  ending in ``i`` on :func:`~attnrec.data.synthetic.planted_sequences`; rating models (``predicts_ratings``) beat
  the global mean on :func:`~attnrec.data.synthetic.planted_ratings`.

Hooks and flags a subclass may override: ``make_model`` (required), ``fit_options`` (a
:class:`~attnrec.training.TrainingOptions`, default seed 7, one thread, on the CPU), ``block_data`` / ``sequence_data``
(data factories), ``planted_block``, ``sequential``, ``block_top`` (how many of the top items must come from the
user's group).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from attnrec.base import Recommender
from attnrec.data.interactions import Interactions
from attnrec.data.synthetic import block_groups, block_interactions, planted_ratings, planted_sequences
from attnrec.errors import ConfigError, NotFittedError
from attnrec.training.neural import NeuralRecommender
from attnrec.training.options import TrainingOptions


class RecommenderConformance:
    """Base class of per-model conformance tests (not collected itself: its name does not start with Test)."""

    sequential: ClassVar[bool] = False
    planted_block: ClassVar[bool] = True
    block_top: ClassVar[int] = 3
    num_groups: ClassVar[int] = 4

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Checks that do not apply to a model are not collected at all (rather than reported as skipped)."""
        super().__init_subclass__(**kwargs)
        if not cls.planted_block:
            cls.test_planted_blocks = None  # type: ignore[assignment,method-assign]
        if not cls.sequential:
            cls.test_planted_next_item = None  # type: ignore[assignment,method-assign]

    # ---------------------------------------------------------------- hooks
    def make_model(self) -> Recommender:
        raise NotImplementedError("subclasses of RecommenderConformance implement make_model()")

    def fit_options(self) -> TrainingOptions:
        return TrainingOptions(seed=7, threads=1, device="cpu")

    def block_data(self) -> Interactions:
        return block_interactions(40, 40, num_groups=self.num_groups, density=0.5, seed=3)

    def sequence_data(self) -> Interactions:
        return planted_sequences(80, 30, length=8, seed=3)

    def fit(self, model: Recommender, data: Interactions) -> Recommender:
        return model.fit(data, options=self.fit_options())

    # ---------------------------------------------------------------- shared fixture
    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls) -> tuple[Recommender, Interactions]:
        """One model fitted on :meth:`block_data`, shared by the tests of a class (they must not mutate it)."""
        inst = cls()
        data = inst.block_data()
        return inst.fit(inst.make_model(), data), data

    # ---------------------------------------------------------------- contract
    def test_fit_returns_self(self) -> None:
        model = self.make_model()
        assert self.fit(model, self.block_data()) is model
        assert model.is_fitted

    def test_not_fitted_error(self) -> None:
        model = self.make_model()
        with pytest.raises(NotFittedError, match="not fitted"):
            model.recommend(["u1"], k=3)

    def test_config_rejects_unknown_key(self) -> None:
        cls = type(self.make_model())
        with pytest.raises(ConfigError) as info:
            cls({"definitely_not_a_parameter": 1})
        message = str(info.value)
        assert "definitely_not_a_parameter" in message
        for name in cls.config_class.model_fields:
            assert name in message

    def test_config_json_round_trip(self) -> None:
        model = self.make_model()
        again = type(model)(model.get_config())
        assert again.config == model.config

    def test_recommend_shapes_and_order(self, fitted: tuple[Recommender, Interactions]) -> None:
        model, data = fitted
        users = [data.users.id(u) for u in (1, 2, 11, 40)]
        recs = model.recommend(users, k=5)
        assert recs.item_idx.shape == (4, 5)
        assert recs.items.shape == (4, 5)
        assert recs.scores.shape == (4, 5)
        assert recs.fallback.shape == (4,)
        assert not recs.fallback.any(), "known users with a history must be personalised"
        assert np.all(np.diff(recs.scores, axis=1) <= 0), "scores must be sorted best first"
        assert np.all(recs.item_idx >= 1) and np.all(recs.item_idx <= data.num_items)
        for row in range(4):
            assert len(set(recs.item_idx[row].tolist())) == 5, "an item is recommended twice"

    def test_exclude_seen(self, fitted: tuple[Recommender, Interactions]) -> None:
        model, data = fitted
        users = [data.users.id(u) for u in range(1, data.num_users + 1)]
        everything = data.num_items
        recs = model.recommend(users, k=everything, exclude_seen=True)
        for row, u in enumerate(range(1, data.num_users + 1)):
            seen = set(model.history(u).tolist())
            assert seen, "test data gives every user a history"
            got = set(recs.item_idx[row].tolist()) - {0}
            assert not (got & seen), f"user {users[row]} got items of its history"
            assert len(got) == everything - len(seen)
        recs = model.recommend(users[:3], k=everything, exclude_seen=False)
        for row in range(3):
            seen = set(model.history(row + 1).tolist())
            assert seen <= set(recs.item_idx[row].tolist())

    def test_cold_items_and_score_pairs(self) -> None:
        """Items in the catalogue without any event (cold items, ``--cold-items``) never crash a model: they are
        scored (a finite value or -inf), can be recommended when nothing else is left, and score_pairs agrees
        with the score rows."""
        data = self.block_data().extend_items(["cold-1", "cold-2"])
        model = self.fit(self.make_model(), data)
        n = data.num_items
        assert model.num_items == n
        users = [data.users.id(u) for u in (1, 2)]
        recs = model.recommend(users, k=n, exclude_seen=False)
        assert recs.item_idx.shape == (2, n)
        pairs = model.score_pairs(np.array([1, 2, 1, 0]), np.array([n, n - 1, 1, n]))
        assert pairs.shape == (4,) and not np.isnan(pairs).any()
        rows, _ = model.scores_with_fallback(np.array([1]), [model.history(1)])
        assert pairs[0] == pytest.approx(float(rows[0, n]), rel=1e-5, abs=1e-6) or (
            np.isneginf(pairs[0]) and np.isneginf(rows[0, n])
        )

    def test_unknown_user_gets_flagged_popularity(self, fitted: tuple[Recommender, Interactions]) -> None:
        model, _ = fitted
        recs = model.recommend(["no-such-user"], k=5, exclude_seen=False)
        assert recs.fallback.tolist() == [True]
        assert model.popularity_ is not None
        pop = model.popularity_.copy()
        pop[0] = -np.inf
        np.testing.assert_allclose(recs.scores[0], np.sort(pop)[::-1][:5])

    def test_anonymous_history(self, fitted: tuple[Recommender, Interactions]) -> None:
        model, data = fitted
        groups = block_groups(data.num_items, self.num_groups)
        history = [data.items.id(int(i)) for i in np.flatnonzero(groups == 2)[:3]]
        recs = model.recommend(histories=[history], k=self.block_top)
        if not model.uses_history:
            assert recs.fallback.tolist() == [True]
            return
        assert recs.fallback.tolist() == [False]
        if self.planted_block:
            got = groups[recs.item_idx[0]]
            assert np.all(got == 2), f"anonymous history of group 2 got items of groups {got.tolist()}"

    def test_empty_history_falls_back(self, fitted: tuple[Recommender, Interactions]) -> None:
        model, _ = fitted
        recs = model.recommend(histories=[[]], k=3)
        assert recs.fallback.tolist() == [True]

    def test_save_load_identical_scores(self, fitted: tuple[Recommender, Interactions], tmp_path: Path) -> None:
        model, data = fitted
        users = np.arange(0, data.num_users + 1, dtype=np.int64)
        hists = [model.history(int(u)) for u in users]
        hists[0] = np.asarray([1, 2, 3], dtype=np.int64)
        before, fb_before = model.scores_with_fallback(users, hists)
        loaded = Recommender.load(model.save(tmp_path / "model"))
        assert loaded.to("cpu") is loaded  # weights saved from any device load on the CPU (and move on request)
        assert type(loaded) is type(model)
        assert loaded.config == model.config
        after, fb_after = loaded.scores_with_fallback(users, hists)
        np.testing.assert_array_equal(before, after)
        np.testing.assert_array_equal(fb_before, fb_after)

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (runs on a machine that has one)")
    def test_trained_on_a_gpu_scores_the_same_on_the_cpu(self, tmp_path: Path) -> None:
        """A neural model fitted on ``cuda`` scores on the GPU, is saved, and loaded on the CPU it gives the same
        scores within float32 tolerance (inference runs in float32 on both; the GPU's kernels sum in another
        order)."""
        model = self.make_model()
        if not isinstance(model, NeuralRecommender):
            pytest.skip(f"{type(model).__name__} is not a neural model: it has no device")
        self.check_device_round_trip(model, "cuda", tmp_path)

    def check_device_round_trip(self, model: NeuralRecommender, device: str, tmp_path: Path) -> None:
        """Fit ``model`` on ``device``, then compare its scores with those of its saved copy loaded on the CPU."""
        data = self.block_data()
        options = dataclasses.replace(self.fit_options(), device=device)
        model.fit(data, options=options)
        assert model.device_.type == device and model.train_info_["device"].startswith(device)
        users = np.arange(1, data.num_users + 1, dtype=np.int64)
        hists = [model.history(int(u)) for u in users]
        on_device, fb_device = model.scores_with_fallback(users, hists)
        loaded = Recommender.load(model.save(tmp_path / "model"))
        assert isinstance(loaded, NeuralRecommender) and loaded.device_.type == "cpu"
        on_cpu, fb_cpu = loaded.scores_with_fallback(users, hists)
        np.testing.assert_array_equal(fb_device, fb_cpu)
        finite = np.isfinite(on_device)
        np.testing.assert_array_equal(finite, np.isfinite(on_cpu))
        np.testing.assert_allclose(on_cpu[finite], on_device[finite], rtol=1e-3, atol=1e-4)
        assert np.array_equal(loaded.to(device).scores_with_fallback(users, hists)[1], fb_device)

    def test_same_seed_same_scores(self, fitted: tuple[Recommender, Interactions]) -> None:
        model, data = fitted
        again = self.fit(self.make_model(), data)
        users = np.arange(1, data.num_users + 1, dtype=np.int64)
        hists = [model.history(int(u)) for u in users]
        np.testing.assert_array_equal(
            model.scores_with_fallback(users, hists)[0], again.scores_with_fallback(users, hists)[0]
        )

    def test_scores_do_not_depend_on_batch_composition(self, fitted: tuple[Recommender, Interactions]) -> None:
        """A user's scores are the same alone, in a batch, in another order and next to longer (padded)
        histories (within float32 tolerance)."""
        model, data = fitted
        users = np.arange(1, min(data.num_users, 12) + 1, dtype=np.int64)
        hists = [model.history(int(u)) for u in users]
        hists[1] = hists[1][:1]  # lengths differ, so batched histories are padded
        together, _ = model.scores_with_fallback(users, hists)
        order = np.arange(len(users))[::-1]
        reversed_, _ = model.scores_with_fallback(users[order], [hists[i] for i in order])
        finite = np.isfinite(together)
        np.testing.assert_allclose(reversed_[order][finite], together[finite], rtol=1e-4, atol=1e-5)
        for row in range(len(users)):
            alone, _ = model.scores_with_fallback(users[row : row + 1], [hists[row]])
            np.testing.assert_allclose(alone[0][finite[row]], together[row][finite[row]], rtol=1e-4, atol=1e-5)

    def test_score_candidates_are_the_catalogue_columns(self, fitted: tuple[Recommender, Interactions]) -> None:
        """``score_candidates`` (what occlusion explanations score) gives the candidates' columns of
        ``score_indices`` for every history, shortened ones included, in any order of candidates."""
        model, data = fitted
        users = np.arange(1, min(data.num_users, 6) + 1, dtype=np.int64)
        hists = [model.history(int(u)) for u in users]
        hists += [h[: max(1, len(h) // 2)] for h in hists]  # shortened histories, as occlusion removes items
        users = np.concatenate([users, users])
        items = np.asarray([data.num_items, 1, 3, 2], dtype=np.int64)
        got = model.score_candidates(users, hists, items)
        assert got.shape == (len(hists), len(items))
        want = model.score_indices(users, hists)[:, items].astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    def test_a_new_event_changes_the_scores_of_a_history_model(self, fitted: tuple[Recommender, Interactions]) -> None:
        """Models that use histories answer a changed history differently; the others ignore it."""
        model, data = fitted
        history = model.history(1)
        unseen = next(i for i in range(1, data.num_items + 1) if i not in set(history.tolist()))
        longer = np.concatenate([history, [unseen]]).astype(np.int64)
        users = np.asarray([1, 1], dtype=np.int64)
        scores, _ = model.scores_with_fallback(users, [history, longer])
        both = np.isfinite(scores).all(axis=0)
        changed = not np.allclose(scores[0][both], scores[1][both], rtol=1e-5, atol=1e-6)
        if model.uses_history:
            assert changed, f"{type(model).__name__} uses histories, but one more event left its scores unchanged"
        else:
            assert not changed, f"{type(model).__name__} does not use histories, but its scores followed one"

    def test_explanation_contract(self, fitted: tuple[Recommender, Interactions]) -> None:
        """Explanations credit items of the history with finite, sorted weights, at most ``top`` of them; a
        model that does not explain says so in one line (see :func:`check_explanation_contract`)."""
        model, _ = fitted
        history = model.history(1)
        recs = model.recommend_indices(np.asarray([1], dtype=np.int64), [history], k=2)
        check_explanation_contract(model, history, recs.item_idx[0][recs.item_idx[0] > 0], top=3)

    # ---------------------------------------------------------------- planted structure
    def test_planted_blocks(self, fitted: tuple[Recommender, Interactions]) -> None:
        model, data = fitted
        ug = block_groups(data.num_users, self.num_groups)
        ig = block_groups(data.num_items, self.num_groups)
        users = [data.users.id(u) for u in range(1, data.num_users + 1)]
        recs = model.recommend(users, k=self.block_top)
        wrong = ig[recs.item_idx] != ug[1:, None]
        assert not wrong.any(), f"{int(wrong.any(axis=1).sum())} users got items outside their group"

    def test_planted_next_item(self) -> None:
        data = self.sequence_data()
        model = self.fit(self.make_model(), data)
        n = data.num_items
        hists = [np.arange(i - 2, i + 1, dtype=np.int64) for i in range(3, n)]
        recs = model.recommend_indices(np.zeros(len(hists), dtype=np.int64), hists, k=1)
        expected = np.arange(4, n + 1)
        hits = float(np.mean(recs.item_idx[:, 0] == expected))
        assert hits >= 0.9, f"item i + 1 ranked first after i in only {hits:.0%} of histories"

    def test_rating_prediction_beats_global_mean(self) -> None:
        model = self.make_model()
        if not model.predicts_ratings:
            # ranking-only models have no ratings to predict; the rating API must say so clearly
            with pytest.raises(NotImplementedError):
                model.predict_ratings(np.array([1]), np.array([1]))
            return
        data, _ = planted_ratings(seed=5)
        rng = np.random.default_rng(0)
        held = rng.random(len(data)) < 0.2
        self.fit(model, data.subset(~held))
        test = data.subset(held)
        assert test.rating is not None and data.rating is not None
        pred = model.predict_ratings(test.user_idx, test.item_idx)
        rmse = float(np.sqrt(np.mean((pred - test.rating) ** 2)))
        baseline = float(np.sqrt(np.mean((data.rating[~held].mean() - test.rating) ** 2)))
        assert rmse < 0.8 * baseline, f"held-out RMSE {rmse:.3f} vs global mean {baseline:.3f}"


def check_explanation_contract(model: Recommender, history: np.ndarray, items: np.ndarray, *, top: int = 3) -> None:
    """Assert the explanation contract of ``model`` for ``items`` recommended after ``history``.

    For every method of :func:`~attnrec.explain.methods.methods_for` (and for ``model.explain_indices`` with its
    default): one explanation per item in order, at most ``top`` attributions, weights finite, ``>= 0``, largest
    first and summing to at most 1, every history-item attribution an item of ``history`` at a position that
    holds it, no item twice. A model without ``supports_explain`` has no methods and :func:`explain` raises a
    one-line :class:`~attnrec.explain.base.ExplainError` naming it.
    """
    from attnrec.explain.base import ExplainError
    from attnrec.explain.methods import explain, methods_for

    history = np.asarray(history, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if not model.supports_explain:
        assert methods_for(model) == [], f"{model.name} does not explain but lists methods {methods_for(model)}"
        with pytest.raises(ExplainError) as info:
            explain(model, history, items, top=top)
        message = str(info.value)
        assert "\n" not in message and repr(model.name) in message, f"not a one-line error naming the model: {message}"
        return
    methods = methods_for(model)
    assert methods, f"{model.name} sets supports_explain but no explanation method applies to it"
    assert len(history) > 0 and len(items) > 0, "the check needs a history and recommended items"
    in_history = set(history.tolist())

    def check_pairs(where: str, pairs: list[tuple[int, float]]) -> None:
        assert len(pairs) <= top, f"{where}: {len(pairs)} attributions, more than top={top}"
        weights = [w for _, w in pairs]
        assert all(np.isfinite(w) and w >= 0 for w in weights), f"{where}: weights not finite and >= 0: {weights}"
        assert weights == sorted(weights, reverse=True), f"{where}: weights not largest first: {weights}"
        assert sum(weights) <= 1 + 1e-6, f"{where}: weights sum to {sum(weights)} > 1"
        idx = [i for i, _ in pairs]
        assert set(idx) <= in_history, f"{where}: credits items {sorted(set(idx) - in_history)} not in the history"
        assert len(set(idx)) == len(idx), f"{where}: an item is credited twice: {idx}"

    for method in methods:
        explanations = explain(model, history, items, top=top, method=method)
        assert [e.item for e in explanations] == items.tolist(), f"{method}: explanations not one per item"
        for e in explanations:
            where = f"{model.name} {method} item {e.item}"
            assert e.method == method, f"{where}: says method {e.method!r}"
            check_pairs(where, e.history_pairs())
            for a in e.attributions:
                if a.kind == "history_item":
                    assert a.position is not None and 0 <= a.position < len(history), f"{where}: position {a.position}"
                    assert history[a.position] == a.index, f"{where}: position {a.position} holds another item"
    default = model.explain_indices(history, items, top=top)
    assert len(default) == len(items), f"{model.name}.explain_indices: {len(default)} lists for {len(items)} items"
    for item, pairs in zip(items.tolist(), default, strict=True):
        check_pairs(f"{model.name}.explain_indices item {item}", [(int(i), float(w)) for i, w in pairs])
