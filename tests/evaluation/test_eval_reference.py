"""Ranking evaluation against a plain, obviously-correct pure-Python reference, plus hand-computed examples."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnrec.base import Recommender, top_k
from attnrec.data import IdVocabulary, Interactions, leave_one_out
from attnrec.data.synthetic import block_interactions
from attnrec.errors import ConfigError
from attnrec.evaluation import (
    evaluate,
    evaluate_interactions,
    sample_negatives,
    topk_lists,
)
from attnrec.registry import create_model

torch.set_num_threads(1)
INF = float("inf")


# ---------------------------------------------------------------------------------------------- fakes
class FixedScores(Recommender):
    """Returns row ``user_idx`` of a fixed ``(num_users + 1, num_items + 1)`` table."""

    name = "fixed-scores-test"
    uses_history = False

    def __init__(self, table: np.ndarray, *, uses_history: bool = False) -> None:
        super().__init__()
        self.table = np.asarray(table, dtype=np.float32)
        self._uses = uses_history

    def can_personalise(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        if self._uses:
            return np.asarray([len(h) > 0 for h in histories], dtype=bool)
        return np.asarray(user_idx) > 0

    def _fit(self, train, valid, options) -> None:  # type: ignore[no-untyped-def]
        pass

    def score_indices(self, user_idx: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = self.table[np.asarray(user_idx)].copy()
        out[:, 0] = -np.inf
        return out


def vocabs(n_users: int, n_items: int) -> tuple[IdVocabulary, IdVocabulary]:
    return (
        IdVocabulary([f"u{i}" for i in range(1, n_users + 1)], kind="user"),
        IdVocabulary([f"i{i}" for i in range(1, n_items + 1)], kind="item"),
    )


def events(users: IdVocabulary, items: IdVocabulary, pairs: Sequence[tuple[int, int]]) -> Interactions:
    u = np.asarray([p[0] for p in pairs], dtype=np.int64)
    i = np.asarray([p[1] for p in pairs], dtype=np.int64)
    return Interactions(users, items, u, i).sorted()


def fitted(table: np.ndarray, users: IdVocabulary, items: IdVocabulary, *, uses_history: bool = False) -> FixedScores:
    model = FixedScores(table, uses_history=uses_history)
    model.fit(events(users, items, [(1, 1)]))
    return model


# ---------------------------------------------------------------------------------------------- the reference
def reference_user(
    scores: Sequence[float],
    hist: set[int],
    targets: set[int],
    ks: Sequence[int],
    exclude_seen: bool = True,
    candidates: set[int] | None = None,
) -> tuple[dict[str, float], dict[int, list[int]]]:
    """Metrics of one user by brute force: build the ranked list, walk it."""
    n = len(scores) - 1
    cands = []
    for i in range(1, n + 1):
        if candidates is not None and i not in candidates:
            continue
        if exclude_seen and i in hist:
            continue  # every seen item is excluded, targets included (those are then unreachable misses)
        s = scores[i]
        if math.isnan(s) or s == -INF:
            continue  # unranked
        cands.append(i)
    # pessimistic ties: among equal scores, non-targets first
    ranked = sorted(cands, key=lambda i: (-scores[i], i in targets))
    lists = {k: sorted(cands, key=lambda i: (-scores[i], i))[:k] for k in ks}
    out: dict[str, float] = {}
    for k in ks:
        rel = [1 if i in targets else 0 for i in ranked[:k]]
        hits = sum(rel)
        out[f"hr@{k}"] = 1.0 if hits > 0 else 0.0
        out[f"recall@{k}"] = hits / len(targets)
        out[f"precision@{k}"] = hits / k
        dcg = sum(r / math.log2(p + 2) for p, r in enumerate(rel))
        idcg = sum(1 / math.log2(p + 2) for p in range(min(len(targets), k)))
        out[f"ndcg@{k}"] = dcg / idcg
        mrr = 0.0
        for p, r in enumerate(rel):
            if r:
                mrr = 1 / (p + 1)
                break
        out[f"mrr@{k}"] = mrr
        total, seen_hits = 0.0, 0
        for p, r in enumerate(rel):
            if r:
                seen_hits += 1
                total += seen_hits / (p + 1)
        out[f"map@{k}"] = total / min(len(targets), k)
    return out, lists


def reference(
    table: np.ndarray,
    hist: dict[int, set[int]],
    targets: dict[int, set[int]],
    ks: Sequence[int],
    exclude_seen: bool = True,
    candidates: dict[int, set[int]] | None = None,
) -> tuple[list[int], dict[str, list[float]], dict[str, float]]:
    users = sorted(u for u, t in targets.items() if t)
    per_user: dict[str, list[float]] = {}
    covered: dict[int, set[int]] = {k: set() for k in ks}
    for u in users:
        row = [float(x) for x in table[u]]
        m, lists = reference_user(
            row, hist.get(u, set()), targets[u], ks, exclude_seen, None if candidates is None else candidates[u]
        )
        for name, v in m.items():
            per_user.setdefault(name, []).append(v)
        for k in ks:
            covered[k].update(lists[k])
    n_items = table.shape[1] - 1
    summary = {name: sum(v) / len(v) for name, v in per_user.items()}
    for k in ks:
        summary[f"coverage@{k}"] = len(covered[k]) / n_items
    return users, per_user, summary


def check_against_reference(
    table: np.ndarray,
    hist_pairs: list[tuple[int, int]],
    target_pairs: list[tuple[int, int]],
    ks: Sequence[int],
    *,
    exclude_seen: bool = True,
    batch_size: int = 1024,
) -> None:
    n_users, n_items = table.shape[0] - 1, table.shape[1] - 1
    uv, iv = vocabs(n_users, n_items)
    model = fitted(table, uv, iv)
    res = evaluate_interactions(
        model,
        events(uv, iv, hist_pairs),
        events(uv, iv, target_pairs),
        ks=ks,
        exclude_seen=exclude_seen,
        batch_size=batch_size,
    )
    hist: dict[int, set[int]] = {}
    for u, i in hist_pairs:
        hist.setdefault(u, set()).add(i)
    tg: dict[int, set[int]] = {}
    for u, i in target_pairs:
        tg.setdefault(u, set()).add(i)
    users, per_user, summary = reference(table, hist, tg, ks, exclude_seen)
    assert res.users.tolist() == users
    assert res.protocol == "full"
    assert set(res.per_user) == set(per_user)
    for name, values in per_user.items():
        np.testing.assert_allclose(res.per_user[name], values, rtol=1e-12, atol=1e-12, err_msg=name)
    assert set(res.summary) == set(summary)
    for name, value in summary.items():
        assert res.summary[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    assert res.num_fallback == 0
    expected_unreachable = [len(tg[u] & hist.get(u, set())) if exclude_seen else 0 for u in users]
    assert res.unreachable.tolist() == expected_unreachable
    assert res.unreachable_targets == sum(expected_unreachable)
    assert res.users_with_unreachable == sum(1 for x in expected_unreachable if x)


# ---------------------------------------------------------------------------------------------- property tests
@st.composite
def problems(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 12))
    cell = st.one_of(
        st.integers(-3, 3).map(float),  # small range: many ties
        st.sampled_from([-INF, INF, float("nan")]),
        st.floats(-5, 5, allow_nan=False, width=32),
    )
    table = np.array([[draw(cell) for _ in range(n_items + 1)] for _ in range(n_users + 1)], dtype=np.float32)
    pair = st.tuples(st.integers(1, n_users), st.integers(1, n_items))
    hist = draw(st.lists(pair, max_size=20))
    targets = draw(st.lists(pair, min_size=1, max_size=15))
    ks = draw(st.lists(st.integers(1, 14), min_size=1, max_size=3, unique=True))
    return table, hist, targets, ks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.booleans(), st.integers(1, 4))
def test_matches_reference_on_random_small_problems(problem, exclude_seen: bool, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    table, hist, targets, ks = problem
    check_against_reference(table, hist, targets, ks, exclude_seen=exclude_seen, batch_size=batch_size)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_on_random_larger_problems(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 150
    table = rng.normal(size=(n_users + 1, n_items + 1)).astype(np.float32)
    table[:, 1::7] = np.round(table[:, 1::7])  # some ties
    hist = [(u, int(i)) for u in range(1, n_users + 1) for i in rng.choice(n_items, rng.integers(0, 30)) + 1]
    targets = []
    for u in range(1, n_users + 1):
        n_t = int(rng.choice([0, 1, 1, 1, 2, 5, 25]))
        targets += [(u, int(i)) for i in rng.choice(n_items, n_t) + 1]
    check_against_reference(table, hist, targets, (1, 5, 10, 20), batch_size=7)


# ---------------------------------------------------------------------------------------------- hand examples
def one_user(scores: list[float], hist: list[int], targets: list[int], **kw):  # type: ignore[no-untyped-def]
    table = np.array([[0.0] * len(scores), scores], dtype=np.float32)
    uv, iv = vocabs(1, len(scores) - 1)
    model = fitted(table, uv, iv)
    return evaluate_interactions(
        model, events(uv, iv, [(1, i) for i in hist]), events(uv, iv, [(1, i) for i in targets]), **kw
    )


DESC = [-INF] + [100.0 - i for i in range(1, 11)]  # item i ranked i-th


def test_target_at_rank_3() -> None:
    r = one_user(DESC, [], [3], ks=(2, 10)).summary
    assert r["ndcg@10"] == pytest.approx(1 / math.log2(4))
    assert r["hr@10"] == 1.0 and r["hr@2"] == 0.0 and r["ndcg@2"] == 0.0
    assert r["mrr@10"] == pytest.approx(1 / 3)
    assert r["recall@10"] == 1.0
    assert r["precision@10"] == pytest.approx(0.1)
    assert r["map@10"] == pytest.approx(1 / 3)
    assert r["coverage@2"] == pytest.approx(0.2) and r["coverage@10"] == pytest.approx(1.0)


def test_seen_items_are_excluded_unless_keep_seen() -> None:
    assert one_user(DESC, [1], [3], ks=(10,)).summary["ndcg@10"] == pytest.approx(1 / math.log2(3))
    kept = one_user(DESC, [1], [3], ks=(10,), exclude_seen=False).summary
    assert kept["ndcg@10"] == pytest.approx(1 / math.log2(4))


def test_a_target_in_the_history_is_unreachable_and_reported() -> None:
    # Previously a target in the history stayed rankable while the rest of the history was removed, so on
    # repeat-consumption data the answer was the one history item left among the candidates. Now every seen item
    # is excluded (as recommend() does when serving): the target is a miss and is counted as unreachable.
    res = one_user(DESC, [1, 2], [2], ks=(1, 10))
    assert res.summary["hr@1"] == 0.0 and res.summary["hr@10"] == 0.0 and res.summary["ndcg@10"] == 0.0
    assert res.unreachable.tolist() == [1] and res.unreachable_targets == 1 and res.users_with_unreachable == 1
    js = res.to_json()
    assert js["unreachable_targets"] == 1 and js["users_with_unreachable"] == 1 and js["n_targets"] == 1
    # a second, unseen target is still reachable; the unreachable one stays in recall's denominator
    res2 = one_user(DESC, [1, 2], [2, 3], ks=(1,))
    assert res2.summary["hr@1"] == 1.0 and res2.summary["recall@1"] == pytest.approx(0.5)
    assert res2.unreachable_targets == 1
    # exclude_seen=False keeps every item: nothing is unreachable
    kept = one_user(DESC, [1, 2], [2], ks=(2,), exclude_seen=False)
    assert kept.summary["hr@2"] == 1.0 and kept.unreachable_targets == 0


def test_duplicated_events_do_not_inflate_the_metrics() -> None:
    # The reported bug: the same log with every row twice scored far higher, because leave-one-out then puts
    # the twin of each test event in the history, and it was the one history item left among the candidates.
    once = block_interactions(40, 40, seed=3)
    twice = once.concat(once)
    results = []
    for inter in (once, twice):
        split = leave_one_out(inter)
        model = create_model("popularity", {}).fit(split.train, split.valid)
        results.append(evaluate(model, split, target="test", ks=(10,)))
    r_once, r_twice = results
    assert r_once.unreachable_targets == 0
    assert r_twice.unreachable_targets == r_twice.n_users == r_twice.users_with_unreachable == 40
    assert r_twice.summary["hr@10"] == 0.0 and r_twice.summary["ndcg@10"] <= r_once.summary["ndcg@10"]


def test_sampled_protocol_applies_the_same_seen_rule() -> None:
    # the target (item 2) is in the history: unreachable in the sampled protocol too, unless exclude_seen=False
    res = one_user(DESC, [1, 2], [2], ks=(1,), negatives=3)
    assert res.summary["hr@1"] == 0.0 and res.unreachable_targets == 1
    kept = one_user(DESC, [1, 2], [2], ks=(1,), negatives=3, exclude_seen=False)
    assert kept.summary["hr@1"] == 1.0 and kept.unreachable_targets == 0  # negatives are items 3..10: below item 2


def test_ties_are_pessimistic() -> None:
    r = one_user([-INF] + [1.0] * 10, [], [1], ks=(5, 10)).summary
    assert r["hr@5"] == 0.0 and r["hr@10"] == 1.0
    assert r["mrr@10"] == pytest.approx(0.1)


def test_minus_inf_target_is_a_miss() -> None:
    scores = [-INF] + [-INF] * 3
    r = one_user(scores, [], [2], ks=(10,)).summary
    assert r["hr@10"] == 0.0 and r["coverage@10"] == 0.0


def test_multiple_targets_hand_computed() -> None:
    r = one_user(DESC, [], [2, 5, 5], ks=(3, 10)).summary  # duplicate target events count once
    ndcg = (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    assert r["ndcg@10"] == pytest.approx(ndcg)
    assert r["map@10"] == pytest.approx((1 / 2 + 2 / 5) / 2)
    assert r["recall@3"] == pytest.approx(0.5) and r["precision@3"] == pytest.approx(1 / 3)
    assert r["mrr@10"] == pytest.approx(0.5) and r["hr@3"] == 1.0


def test_fallback_users_are_counted_and_get_popularity() -> None:
    uv, iv = vocabs(2, 5)
    table = np.zeros((3, 6), dtype=np.float32)  # personalised scores: all ties (bad)
    model = FixedScores(table, uses_history=True)
    model.fit(events(uv, iv, [(1, 4), (1, 4), (2, 4), (2, 3)]))  # popularity: item 4 > item 3
    history = events(uv, iv, [(1, 1)])  # user 2 has no history -> popularity fallback
    res = evaluate_interactions(model, history, events(uv, iv, [(1, 4), (2, 4)]), ks=(1,))
    assert res.num_fallback == 1 and res.fallback.tolist() == [False, True]
    assert res.per_user["hr@1"].tolist() == [0.0, 1.0]


def test_evaluate_uses_split_history() -> None:
    uv, iv = vocabs(1, 6)
    inter = events(uv, iv, [(1, 1), (1, 2), (1, 3), (1, 4)])
    split = leave_one_out(inter)  # train 1,2 / valid 3 / test 4
    table = np.array([[0] * 7, [-INF, 6, 5, 4, 3, 2, 1]], dtype=np.float32)
    model = fitted(table, split.train.users, split.train.items)
    # test: history {1,2,3} removed -> item 4 first; valid: history {1,2} removed -> item 3 first
    assert evaluate(model, split, target="test", ks=(1,)).summary["hr@1"] == 1.0
    assert evaluate(model, split, target="valid", ks=(1,)).summary["hr@1"] == 1.0
    with pytest.raises(ConfigError, match="target"):
        evaluate(model, split, target="train")


def test_parameter_errors_name_the_parameter() -> None:
    with pytest.raises(ConfigError, match="'ks'"):
        one_user(DESC, [], [3], ks=(0,))
    with pytest.raises(ConfigError, match="negative_sampling"):
        one_user(DESC, [], [3], negatives=2, negative_sampling="zipf")
    with pytest.raises(ConfigError, match="negatives"):
        one_user(DESC, [], [3], protocol="sampled")
    with pytest.raises(ConfigError, match="protocol"):
        one_user(DESC, [], [3], protocol="sampled-5", negatives=3)


def test_topk_lists_agree_with_base_top_k() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 30)).astype(np.float32)  # heavy ties
    scores[:, 0] = -np.inf
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    for k in (1, 3, 10, 29, 40):
        expected = np.zeros((50, min(k, 30)), dtype=np.int64)
        for r in range(50):
            ranked = [i for i in sorted(range(30), key=lambda i: (-scores[r, i], i)) if scores[r, i] > -INF][:k]
            expected[r, : len(ranked)] = ranked
        np.testing.assert_array_equal(topk_lists(torch.from_numpy(scores), k), expected)
        idx, vals = top_k(scores, k)  # the base helper (used by recommend) agrees
        np.testing.assert_array_equal(np.where(vals > -np.inf, idx, 0), expected)


# ---------------------------------------------------------------------------------------------- sampled protocol
def sampled_problem(seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    n_users, n_items = 30, 60
    uv, iv = vocabs(n_users, n_items)
    table = rng.normal(size=(n_users + 1, n_items + 1)).astype(np.float32)
    hist = [(u, int(i)) for u in range(1, n_users + 1) for i in rng.choice(n_items, rng.integers(1, 40)) + 1]
    targets = [(u, int(i)) for u in range(1, n_users + 1) for i in rng.choice(n_items, rng.integers(1, 4)) + 1]
    return table, uv, iv, hist, targets


def test_negatives_never_include_the_users_items_and_are_distinct() -> None:
    _, _, _, hist, targets = sampled_problem()
    h_rows = np.array([u - 1 for u, _ in hist])
    h_cols = np.array([i for _, i in hist])
    t_rows = np.array([u - 1 for u, _ in targets])
    t_cols = np.array([i for _, i in targets])
    users = np.arange(1, 31)
    for weights in (None, np.arange(61, dtype=np.float64)):
        negs = sample_negatives(users, (h_rows, h_cols), (t_rows, t_cols), 61, 25, weights=weights, seed=3)
        for r, u in enumerate(users):
            own = {i for uu, i in hist + targets if uu == u}
            chosen = [int(x) for x in negs[r] if x > 0]
            assert not own & set(chosen)
            assert len(chosen) == len(set(chosen)) == min(25, 60 - len(own))
    # row draws depend on (seed, user) only, not on the batch
    a = sample_negatives(
        users[5:6],
        (h_rows[h_rows == 5] - 5, h_cols[h_rows == 5]),
        (t_rows[t_rows == 5] - 5, t_cols[t_rows == 5]),
        61,
        10,
        seed=3,
    )
    b = sample_negatives(users, (h_rows, h_cols), (t_rows, t_cols), 61, 10, seed=3)
    np.testing.assert_array_equal(a[0], b[5])


def test_popularity_sampling_follows_weights() -> None:
    users = np.arange(1, 2001)
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    weights = np.array([0.0, 1.0, 9.0, 0.0])  # item 3 weight 0: only when the others run out
    negs = sample_negatives(users, empty, empty, 4, 1, weights=weights, seed=0).ravel()
    share2 = np.mean(negs == 2)
    assert 0.85 < share2 < 0.95 and not (negs == 3).any()
    negs3 = sample_negatives(users[:5], empty, empty, 4, 3, weights=weights, seed=0)
    assert (np.sort(negs3, axis=1) == [1, 2, 3]).all()


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_sampled_protocol_matches_reference_on_sampled_candidates(sampling: str) -> None:
    table, uv, iv, hist, targets = sampled_problem(1)
    model = fitted(table, uv, iv)
    history, target_inter = events(uv, iv, hist), events(uv, iv, targets)
    res = evaluate_interactions(
        model, history, target_inter, ks=(1, 5, 10), negatives=20, negative_sampling=sampling, seed=7, batch_size=4
    )
    assert res.protocol == ("sampled-20" if sampling == "uniform" else "sampled-20-popularity")
    assert res.to_json()["protocol"] == res.protocol
    users = np.arange(1, 31)
    h_rows, h_cols = np.array([u - 1 for u, _ in hist]), np.array([i for _, i in hist])
    t_rows, t_cols = np.array([u - 1 for u, _ in targets]), np.array([i for _, i in targets])
    weights = history.item_counts().astype(np.float64) if sampling == "popularity" else None
    negs = sample_negatives(users, (h_rows, h_cols), (t_rows, t_cols), 61, 20, weights=weights, seed=7)
    hist_s: dict[int, set[int]] = {}
    for u, i in hist:
        hist_s.setdefault(u, set()).add(i)
    tg: dict[int, set[int]] = {}
    for u, i in targets:
        tg.setdefault(u, set()).add(i)
    cands = {int(u): tg[int(u)] | {int(x) for x in negs[r] if x > 0} for r, u in enumerate(users)}
    _, per_user, summary = reference(table, hist_s, tg, (1, 5, 10), True, cands)
    for name, values in per_user.items():
        np.testing.assert_allclose(res.per_user[name], values, err_msg=name)
    for name, value in summary.items():
        assert res.summary[name] == pytest.approx(value), name


def test_sampled_protocol_is_seed_deterministic() -> None:
    table, uv, iv, hist, targets = sampled_problem(2)
    model = fitted(table, uv, iv)
    h, t = events(uv, iv, hist), events(uv, iv, targets)
    r1 = evaluate_interactions(model, h, t, negatives=10, seed=5, batch_size=3)
    r2 = evaluate_interactions(model, h, t, negatives=10, seed=5, batch_size=1024)
    r3 = evaluate_interactions(model, h, t, negatives=10, seed=6)
    for name in r1.per_user:
        np.testing.assert_array_equal(r1.per_user[name], r2.per_user[name])
    assert any(not np.array_equal(r1.per_user[n], r3.per_user[n]) for n in r1.per_user)
    # the label string is accepted back as the protocol parameter
    r4 = evaluate_interactions(model, h, t, protocol="sampled-10", seed=5)
    np.testing.assert_array_equal(r4.per_user["ndcg@10"], r1.per_user["ndcg@10"])


def test_progress_reports_every_batch() -> None:
    table, uv, iv, hist, targets = sampled_problem(3)
    calls: list[tuple[str, float, float | None]] = []
    evaluate_interactions(
        fitted(table, uv, iv),
        events(uv, iv, hist),
        events(uv, iv, targets),
        batch_size=8,
        progress=lambda d, c, t: calls.append((d, c, t)),
    )
    assert [c for _, c, _ in calls] == [8, 16, 24, 30] and all(t == 30 for _, _, t in calls)
