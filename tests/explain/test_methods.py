"""The explainer protocol: rollout by mask kind and query position, occlusion, recurrent attention, the registry,
errors, and faithfulness against its two baselines, on models whose right answer is known."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from attnrec.errors import ConfigError
from attnrec.explain.base import Attribution, ExplainError, Explanation
from attnrec.explain.faithfulness import faithfulness, field_faithfulness
from attnrec.explain.fields import field_relevance
from attnrec.explain.methods import METHODS, default_method, explain, explain_history, methods_for
from attnrec.explain.occlusion import occlusion_drops
from attnrec.explain.rollout import RolloutSpec, attention_rollout, query_weights


class Additive:
    """Oracle recommender: ``score(r | h) = sum_i W[h_i, r]`` (no window); optional recurrent attention."""

    name = "additive"
    uses_history = True
    supports_explain = True
    explain_method: ClassVar[str | None] = None

    def __init__(self, weights: np.ndarray, attention: np.ndarray | None = None) -> None:
        self.w = weights
        self.num_items = weights.shape[0] - 1
        self.attention = attention
        self.calls = 0

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += 1
        out = np.stack([self.w[np.asarray(h, dtype=np.int64)].sum(axis=0) for h in histories]).astype(np.float32)
        out[:, 0] = -np.inf
        return out


class WithAttention(Additive):
    def attention_weights(self, histories: Sequence[np.ndarray]) -> list[np.ndarray]:
        assert self.attention is not None
        return [self.attention[np.asarray(h, dtype=np.int64)] for h in histories]


class Silent(Additive):
    name = "silent"
    supports_explain = False


def planted_weights(num_items: int = 12, *, causes: dict[int, float], target: int = 12) -> np.ndarray:
    """Every item pushes ``target`` by 0.01, the ``causes`` by their value; other items get small noise."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.01, size=(num_items + 1, num_items + 1))
    w[:, target] = 0.01
    for item, strength in causes.items():
        w[item, target] = strength
    w[0] = 0.0
    return w


# ---------------------------------------------------------------- data classes
def test_explanation_json_and_pairs() -> None:
    e = Explanation(7, "occlusion", (Attribution("history_item", 0.6, index=3, position=4),))
    assert e.history_pairs() == [(3, 0.6)]
    assert json.loads(json.dumps(e.to_json())) == {
        "item": 7,
        "method": "occlusion",
        "attributions": [{"kind": "history_item", "weight": 0.6, "index": 3, "name": None, "position": 4}],
    }
    with pytest.raises(ConfigError, match="kind"):
        Attribution("colour", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="position"):
        Attribution("history_item", 0.1, index=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.item = 3  # type: ignore[misc]


# ---------------------------------------------------------------- rollout by mask kind and query position
def full_maps() -> list[torch.Tensor]:
    """Two layers of non-causal (full) attention over 4 positions, one head."""
    gen = torch.Generator().manual_seed(0)
    return [torch.softmax(torch.randn(1, 1, 4, 4, generator=gen) * 2, dim=-1) for _ in range(2)]


def test_bidirectional_rollout_differs_from_causal_and_causal_ignores_the_future() -> None:
    maps = full_maps()
    causal = query_weights(maps, [4], RolloutSpec(mask="causal"))[0]
    bidir = query_weights(maps, [4], RolloutSpec(mask="bidirectional"))[0]
    assert not np.allclose(causal, bidir, atol=1e-3)
    # causal rollout equals the rollout of maps that are causal to begin with
    tril = [(m.tril() / m.tril().sum(-1, keepdim=True)) for m in maps]
    np.testing.assert_allclose(causal, query_weights(tril, [4], RolloutSpec(mask="bidirectional"))[0], atol=1e-6)
    # in a causal rollout the first position flows only into itself
    roll = attention_rollout(maps, mask="causal")[0]
    assert torch.allclose(roll[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_mask_query_excludes_the_mask_column() -> None:
    maps = full_maps()  # 3 history items + the mask query at column 3
    roll = attention_rollout(maps, mask=None)[0, -1]
    w = query_weights(maps, [3], RolloutSpec(mask="bidirectional", query="mask"))[0]
    np.testing.assert_allclose(w, (roll[:3] / roll[:3].sum()).numpy(), rtol=1e-6)
    last = query_weights(maps, [3], RolloutSpec(mask="bidirectional", query="last"))[0]
    np.testing.assert_allclose(last, (roll[1:] / roll[1:].sum()).numpy(), rtol=1e-6)
    with pytest.raises(ExplainError, match="width 4 cannot hold 4 history items"):
        query_weights(maps, [4], RolloutSpec(query="mask"))
    with pytest.raises(ExplainError, match="mask kind"):
        RolloutSpec(mask="sideways")  # type: ignore[arg-type]


# ---------------------------------------------------------------- occlusion
def test_occlusion_ranks_the_planted_cause_first_in_one_batched_call() -> None:
    model = Additive(planted_weights(causes={2: 3.0, 5: 1.0}))
    history = np.array([2, 7, 5, 8, 9, 10, 11])  # the causes are old; the recent items barely matter
    drops = occlusion_drops(model, history, np.array([12]))
    assert model.calls == 1  # the full history and all 7 perturbed ones in one forward
    np.testing.assert_allclose(drops[0], model.w[history, 12], rtol=1e-5, atol=1e-6)  # additive: drop = W
    (e,) = explain(model, history, np.array([12]), top=2, method="occlusion")
    assert [(a.index, a.position) for a in e.attributions] == [(2, 0), (5, 2)]
    assert e.attributions[0].weight > e.attributions[1].weight > 0


class LastItem(Additive):
    """A sequence model in miniature: only the newest item counts, ``score(r | h) = W[h[-1], r]``."""

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.stack([self.w[int(h[-1])] if len(h) else np.zeros(self.w.shape[1]) for h in histories])
        out[:, 0] = -np.inf
        return out.astype(np.float32)


class ByUser(Additive):
    """Scores that depend on who asks (as DIN's with user features): ``score(r | h, u) = sum_i W_u[h_i, r]``."""

    def __init__(self, per_user: dict[int, np.ndarray]) -> None:
        super().__init__(per_user[0])
        self.per_user = per_user

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        rows = [
            self.per_user[int(u)][np.asarray(h, dtype=np.int64)].sum(axis=0)
            for u, h in zip(user_idx, histories, strict=True)
        ]
        out = np.stack(rows).astype(np.float32)
        out[:, 0] = -np.inf
        return out


@pytest.mark.parametrize("method", ["occlusion", "occlusion-search"])
def test_occlusion_explains_the_score_of_the_user_who_asks(method: str) -> None:
    """The same history explains differently for two users when the model scores them differently: the
    occlusions perturb the history of *that* user (``user=``), not of an anonymous one."""
    model = ByUser(
        {
            0: planted_weights(causes={7: 3.0}),
            1: planted_weights(causes={2: 3.0}),
            2: planted_weights(causes={5: 3.0}),
        }
    )
    history = np.array([2, 7, 5, 8, 9])
    got = {u: explain(model, history, np.array([12]), top=1, method=method, user=u)[0] for u in (0, 1, 2)}
    assert {u: e.attributions[0].index for u, e in got.items()} == {0: 7, 1: 2, 2: 5}
    report = faithfulness(model, [history, history], user_idx=np.array([1, 2]), removed=1, method=method)
    assert report.beats_both == 1.0  # the removed item is the user's own cause


def test_occlusion_search_finds_items_that_matter_only_together() -> None:
    w = np.zeros((13, 13))
    w[[4, 5], 12] = 3.0  # either of the two newest items predicts 12
    model = LastItem(w)
    history = np.array([1, 2, 3, 4, 5])
    assert not occlusion_drops(model, history, np.array([12])).any()  # no single removal changes anything
    assert explain(model, history, np.array([12]), method="occlusion")[0].attributions == ()
    rel = METHODS["occlusion-search"].relevance(model, history, np.array([12]), top=2)
    assert set(np.flatnonzero(np.isfinite(rel[0])).tolist()) == {3, 4}  # removing both drops the score by 3
    report = faithfulness(model, [history] * 3, removed=2, method="occlusion-search")
    assert report.mean_drop_explained == pytest.approx(3.0)


class GreedyTrap(Additive):
    """Item 12's score: 10, minus 1 without item 1, minus 0.5 without item 2 or 3 alone but 3 without both.
    The best single removal (item 1) is in no best pair: greedy removal of two items finds a drop of 1.5, the
    pair {2, 3} drops 3."""

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(histories), 13))
        for row, h in enumerate(histories):
            present = set(np.asarray(h).tolist())
            lost = (1 not in present) * 1.0 + (3.0 if not present & {2, 3} else 0.5 * len({2, 3} - present))
            out[row, 12] = 10.0 - lost
        out[:, 0] = -np.inf
        return out.astype(np.float32)


def test_occlusion_search_swaps_out_of_a_greedy_trap() -> None:
    from attnrec.explain.occlusion import OcclusionSearchExplainer, occlusion_search

    model = GreedyTrap(np.zeros((13, 13)))
    history = np.array([1, 2, 3, 4, 5])
    greedy, greedy_marginal = occlusion_search(model, history, 12, steps=2)
    assert sorted(greedy.tolist())[0] == 0 and greedy_marginal.sum() == pytest.approx(1.5)
    found, marginal = occlusion_search(model, history, 12, steps=2, swap_rounds=2)
    assert sorted(found.tolist()) == [1, 2]  # items 2 and 3
    assert marginal.sum() == pytest.approx(3.0)  # the marginal drops add up to the set's drop
    assert marginal.tolist() == pytest.approx([0.5, 2.5])  # path: remove one of them, then the other
    plain = faithfulness(model, [history] * 2, removed=2, method=OcclusionSearchExplainer(swap_rounds=0))
    swapped = faithfulness(model, [history] * 2, removed=2, method=OcclusionSearchExplainer(swap_rounds=2))
    assert plain.mean_drop_explained == pytest.approx(1.5)
    assert swapped.mean_drop_explained == pytest.approx(3.0)


def test_occlusion_search_is_never_worse_than_recency() -> None:
    """When the most recent items are the most damaging set and greedy misses it, the swap search starts there."""
    from attnrec.explain.occlusion import occlusion_search

    model = GreedyTrap(np.zeros((13, 13)))
    history = np.array([1, 4, 5, 2, 3])  # items 2 and 3 are now the newest
    found, marginal = occlusion_search(model, history, 12, steps=2, pool=1, swap_rounds=1)
    assert sorted(found.tolist()) == [3, 4] and marginal.sum() == pytest.approx(3.0)


def test_occlusion_on_planted_sasrec_points_at_the_last_item(planted_model: Any) -> None:
    # "item i is followed by i + 1": the next item after 3,4,5,6 is 7, and only the 6 makes it so
    (pairs,) = explain_history(planted_model, np.array([3, 4, 5, 6]), np.array([7]), top=4, method="occlusion")
    assert pairs[0][0] == 6, pairs


def test_bert4rec_like_maps_are_read_at_the_mask() -> None:
    """A model whose maps have the extra mask column explains its history items only."""

    class Bidirectional(Additive):
        attention_mask_kind = "bidirectional"
        query_position = "mask"

        def attention_maps(self, histories: Sequence[np.ndarray]) -> list[torch.Tensor]:
            n = len(histories[0])
            m = torch.zeros(1, 1, n + 1, n + 1)
            m[..., :, 0] = 1.0  # every position (the mask too) attends to the oldest item only
            return [m]

    model = Bidirectional(planted_weights(causes={}))
    assert set(methods_for(model)) == {"occlusion-search", "occlusion", "rollout"}  # no gradient hook
    (e,) = explain(model, np.array([4, 5, 6]), np.array([12]), method="rollout")
    assert e.attributions[0].index == 4 and e.attributions[0].weight == pytest.approx(1.0)
    assert {a.index for a in e.attributions} == {4}  # the mask column is no history item


# ---------------------------------------------------------------- recurrent attention
def test_recurrent_attention_weights_are_the_explanation() -> None:
    attention = np.zeros(13)
    attention[[3, 4, 9]] = [0.5, -0.2, 0.3]
    model = WithAttention(planted_weights(causes={}), attention)
    assert set(methods_for(model)) == {"occlusion-search", "occlusion", "attention"}
    (a, b) = explain(model, np.array([4, 3, 9, 3]), np.array([12, 11]), method="attention")
    assert a.attributions == b.attributions  # the same for every item
    # repeated 3 summed (0.5 + 0.5), negative 4 dropped, normalised over the positive part
    assert [(x.index, x.position, round(x.weight, 6)) for x in a.attributions] == [(3, 3, 0.769231), (9, 2, 0.230769)]


# ---------------------------------------------------------------- registry and errors
def test_model_without_explanations_says_so_in_one_line() -> None:
    model = Silent(planted_weights(causes={}))
    assert methods_for(model) == []
    with pytest.raises(ExplainError) as info:
        explain(model, np.array([1, 2]), np.array([3]))
    message = str(info.value)
    assert "\n" not in message
    assert "'silent' does not explain" in message and "sasrec" in message and "ease" not in message


def test_unknown_or_unsupported_method_names_the_choices() -> None:
    model = Additive(planted_weights(causes={}))
    assert default_method(model) == "occlusion-search"
    with pytest.raises(ExplainError, match="supports: occlusion-search, occlusion; got 'rollout'"):
        explain(model, np.array([1, 2]), np.array([3]), method="rollout")
    with pytest.raises(ExplainError, match="got 'shap' \\(methods: occlusion-search, occlusion, rollout-grad"):
        explain(model, np.array([1, 2]), np.array([3]), method="shap")
    with pytest.raises(ValueError, match="'top' parameter"):
        explain(model, np.array([1, 2]), np.array([3]), top=0)


def test_a_model_can_choose_its_default() -> None:
    model = WithAttention(planted_weights(causes={}), np.ones(13))
    model.explain_method = "attention"
    assert methods_for(model)[0] == default_method(model) == "attention"


def test_sasrec_methods_and_empty_history(planted_model: Any) -> None:
    assert set(methods_for(planted_model)) == {"occlusion-search", "occlusion", "rollout-grad", "rollout"}
    assert [e.attributions for e in explain(planted_model, np.array([], dtype=np.int64), np.array([3, 4]))] == [
        (),
        (),
    ]


# ---------------------------------------------------------------- faithfulness and its baselines
def oracle_histories(n: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [np.r_[2, 5, 6, rng.permutation(np.arange(7, 12))] for _ in range(n)]


def test_faithful_explanation_beats_both_baselines() -> None:
    model = Additive(planted_weights(causes={2: 3.0, 5: 2.0, 6: 1.0}))  # causes at the start of every history
    report = faithfulness(model, oracle_histories(), removed=3, method="occlusion", seed=0)
    assert report.users == 40 and report.method == "occlusion"
    assert report.beats_random == report.beats_recent == report.beats_both == 1.0
    assert report.ties_recent == report.same_as_recent == 0.0
    assert report.mean_drop_explained == pytest.approx(6.0, abs=0.05)
    assert report.mean_drop_recent == pytest.approx(0.03, abs=0.05)


def test_an_anti_explanation_loses_to_both_baselines() -> None:
    attention = np.zeros(13)
    attention[7:12] = 1.0  # points at the items that do not matter
    model = WithAttention(planted_weights(causes={2: 3.0, 5: 2.0, 6: 1.0}), attention)
    report = faithfulness(model, oracle_histories(), removed=3, method="attention", seed=0)
    assert report.beats_recent == 0.0 and report.beats_both == 0.0
    assert report.beats_random < 0.7  # random picks hit a cause most of the time


def test_explanation_equal_to_recency_is_a_tie() -> None:
    model = Additive(planted_weights(causes={9: 3.0, 10: 2.0, 11: 1.0}))
    hists = [np.r_[np.arange(2, 9), 9, 10, 11] for _ in range(5)]  # the causes are the 3 most recent
    report = faithfulness(model, hists, removed=3, method="occlusion", seed=0)
    assert report.same_as_recent == report.ties_recent == 1.0
    assert report.beats_recent == report.beats_both == 0.0 and report.beats_random == 1.0


def test_faithfulness_rejects_bad_input() -> None:
    model = Additive(planted_weights(causes={}))
    with pytest.raises(ValueError, match="'removed' parameter"):
        faithfulness(model, oracle_histories(), removed=0)
    with pytest.raises(ValueError, match="longer than removed=3"):
        faithfulness(model, [np.array([1, 2, 3])], removed=3)


# ---------------------------------------------------------------- faithfulness of field explanations
FIELD_NAMES = ["user.a", "user.c", "item.b", "item.d", "item.e"]


class FieldModel:
    """5 fields; user u's score of item 1 loses ``importance[u, f]`` for each dropped field ``f``; its
    ``field_attention`` gives pair (m, k) the attention ``report[u, m] + report[u, k]``, so the explanation names
    the fields in the order of ``report``."""

    name = "fields"
    supports_explain = True
    field_names = FIELD_NAMES

    def __init__(self, importance: np.ndarray, report: np.ndarray) -> None:
        self.importance, self.report = importance, report

    def score_indices(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(users), 3))
        out[:, 1] = 10.0  # item 1 is everyone's recommendation
        out[:, 0] = -np.inf
        return out

    def field_attention(self, user: int, items: np.ndarray) -> tuple[np.ndarray, list[str]]:
        pair = self.report[user][:, None] + self.report[user][None, :]
        return np.repeat(pair[None], len(items), axis=0), FIELD_NAMES

    def score_without_fields(self, user: int, items: np.ndarray, dropped: np.ndarray) -> np.ndarray:
        assert (items == 1).all() and dropped.shape == (len(items), 5)
        return 10.0 - (dropped * self.importance[user]).sum(axis=1)


def test_field_relevance_is_each_fields_share_of_the_pairs() -> None:
    att = np.zeros((1, 3, 3))
    att[0, 0, 1] = att[0, 1, 0] = 3.0  # pair (0, 1): share 0.75
    att[0, 1, 2] = att[0, 2, 1] = 1.0  # pair (1, 2): share 0.25
    att[0, 0, 0] = 100.0  # self-attention is no interaction
    np.testing.assert_allclose(field_relevance(att), [[0.375, 0.5, 0.125]])


def test_field_faithfulness_rewards_the_fields_that_carry_the_score() -> None:
    rng = np.random.default_rng(0)
    importance = rng.random((60, 5))  # each user has its own fields that matter
    model = FieldModel(importance, importance)
    report = field_faithfulness(model, np.arange(60), removed=2, method="field-attention", seed=0)
    assert (report.users, report.fields, report.removed) == (60, 5, 2)
    best2 = np.sort(importance, axis=1)[:, -2:].sum(axis=1)
    assert report.mean_drop_explained == pytest.approx(best2.mean())
    # the explained fields are each user's most damaging pair of fields: never beaten, tied only by the same set
    assert report.beats_random + report.ties_random == 1.0 and report.beats_random > 0.8
    assert report.beats_global + report.ties_global == 1.0
    assert report.ties_global == pytest.approx(report.same_as_global) and report.beats_global > 0.5
    # global: the fields named most often among the users' explained pairs of fields
    firsts = np.argsort(-importance, axis=1, kind="stable")[:, :2]
    counts = np.bincount(firsts.ravel(), minlength=5)
    assert report.global_fields == [FIELD_NAMES[f] for f in np.argsort(-counts, kind="stable")[:2]]

    anti_model = FieldModel(importance, 1.0 - importance)
    anti = field_faithfulness(anti_model, np.arange(60), removed=2, method="field-attention", seed=0)
    assert anti.beats_random < 0.3 and anti.beats_both == 0.0
    assert anti.mean_drop_explained < anti.mean_drop_random
    # the occlusions weigh the fields by what removing them does, whatever the attention says
    for method in ("field-occlusion", "field-search"):
        occlusion = field_faithfulness(anti_model, np.arange(60), removed=2, method=method, seed=0)
        assert occlusion.method == method
        assert occlusion.mean_drop_explained == pytest.approx(best2.mean()) and occlusion.beats_random > 0.8


class RedundantFields(FieldModel):
    """user.a and user.c carry the same information (either one alone gives the score almost all of it back);
    item.b adds on its own: single removals name a and c, the joint removal that matters is {a or c, b}."""

    def __init__(self) -> None:
        super().__init__(np.zeros((1, 5)), np.zeros((1, 5)))

    def score_without_fields(self, user: int, items: np.ndarray, dropped: np.ndarray) -> np.ndarray:
        a, c, b = dropped[:, 0], dropped[:, 1], dropped[:, 2]
        return 10.0 - 2.0 * a - 1.9 * c + 1.8 * (a & c) - 1.5 * b


def test_field_explanations_name_the_pairs_values_when_the_model_gives_them() -> None:
    importance = np.array([[0.0, 2.0, -1.0, 0.5, 3.0]])
    model = FieldModel(importance, importance)
    model.field_values = lambda user, item: ["x", "", "p", "2", "7.5"]  # type: ignore[attr-defined]
    for method in ("field-occlusion", "field-search"):
        (got,) = explain(model, np.zeros(0, dtype=np.int64), np.array([1]), top=5, user=0, method=method)
        assert [a.name for a in got.attributions] == ["item.e=7.5", "user.c", "item.d=2"]  # "": no value known
        assert [round(a.weight, 6) for a in got.attributions] == [round(w / 5.5, 6) for w in (3.0, 2.0, 0.5)]


def test_field_search_finds_the_fields_that_matter_together() -> None:
    model = RedundantFields()
    empty = np.zeros(0, dtype=np.int64)
    (single,) = explain(model, empty, np.array([1]), top=2, method="field-occlusion")
    assert [a.name for a in single.attributions] == ["user.a", "user.c"]  # together: a drop of 2.1
    (search,) = explain(model, empty, np.array([1]), top=5, method="field-search")
    # a first (2.0), then item.b adds 1.5 (c would add 0.1 only), then c its 0.1; d and e lower nothing
    assert [(a.name, round(a.weight * 3.6, 6)) for a in search.attributions] == [  # shares of the 3.6 in all
        ("user.a", 2.0),
        ("item.b", 1.5),
        ("user.c", 0.1),
    ]
    report = field_faithfulness(model, np.zeros(1, dtype=np.int64), removed=2, method="field-search")
    assert report.mean_drop_explained == pytest.approx(3.5)
    worse = field_faithfulness(model, np.zeros(1, dtype=np.int64), removed=2, method="field-occlusion")
    assert worse.mean_drop_explained == pytest.approx(2.1)


def test_field_occlusion_names_the_fields_whose_absence_lowers_the_score() -> None:
    importance = np.array([[0.0, 2.0, -1.0, 0.5, 3.0]])  # item.b raises the score when missing: no weight
    model = FieldModel(importance, importance)
    (got,) = explain(model, np.zeros(0, dtype=np.int64), np.array([1]), top=5, user=0, method="field-occlusion")
    assert got.method == "field-occlusion"
    assert [(a.kind, a.name, a.weight) for a in got.attributions] == [  # shares of the positive drops
        ("feature_field", "item.e", pytest.approx(3.0 / 5.5)),
        ("feature_field", "user.c", pytest.approx(2.0 / 5.5)),
        ("feature_field", "item.d", pytest.approx(0.5 / 5.5)),
    ]


class ContentLike(FieldModel):
    """Reads fields as missing but explains by shared attributes (not a field method)."""

    explain_method = "attributes"

    def __init__(self) -> None:
        super().__init__(np.ones((3, 5)), np.ones((3, 5)))

    def attribute_contributions(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("not called")


def test_field_faithfulness_rejects_models_and_sizes_it_cannot_measure() -> None:
    with pytest.raises(ConfigError, match="does not explain by feature fields"):
        field_faithfulness(Additive(planted_weights(causes={})), np.arange(3))
    model = FieldModel(np.ones((3, 5)), np.ones((3, 5)))
    with pytest.raises(ConfigError, match="method 'attributes' does not weigh feature fields"):
        field_faithfulness(ContentLike(), np.arange(3))
    with pytest.raises(ConfigError, match="more than removed=5 fields; the model has 5"):
        field_faithfulness(model, np.arange(3), removed=5)
    with pytest.raises(ConfigError, match="'removed' parameter"):
        field_faithfulness(model, np.arange(3), removed=0)
