"""Confidence intervals and paired tests: intervals cover the mean, planted differences are detected, null ones
are not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from attnrec.errors import ConfigError
from attnrec.evaluation import EvaluationResult, mean_confidence_interval, paired_test


def result(values: np.ndarray, users: np.ndarray | None = None, protocol: str = "full") -> EvaluationResult:
    values = np.asarray(values, dtype=np.float64)
    users = np.arange(1, len(values) + 1) if users is None else users
    return EvaluationResult(
        protocol=protocol,
        ks=(10,),
        users=users,
        per_user={"ndcg@10": values},
        summary={"ndcg@10": float(values.mean()), "coverage@10": 0.5},
    )


def test_t_interval_matches_textbook_formula_and_contains_mean() -> None:
    x = np.random.default_rng(0).random(200)
    lo, hi = mean_confidence_interval(x, 0.95)
    half = sps.t.ppf(0.975, 199) * x.std(ddof=1) / math.sqrt(200)
    assert lo == pytest.approx(x.mean() - half) and hi == pytest.approx(x.mean() + half)
    assert lo < x.mean() < hi
    lo99, hi99 = mean_confidence_interval(x, 0.99)
    assert lo99 < lo and hi < hi99  # wider at a higher level
    assert all(math.isnan(v) for v in mean_confidence_interval(x[:1]))


def test_result_ci_and_json() -> None:
    r = result(np.random.default_rng(1).random(50))
    lo, hi = r.confidence_interval("ndcg@10")
    assert lo < r.summary["ndcg@10"] < hi
    js = r.to_json()
    assert js["protocol"] == "full" and js["n_users"] == 50
    assert js["summary"]["coverage@10"] == 0.5 and js["ci"]["ndcg@10"] == [lo, hi]
    with pytest.raises(ConfigError, match="coverage@10"):
        r.confidence_interval("coverage@10")


def test_paired_test_detects_a_planted_difference() -> None:
    rng = np.random.default_rng(0)
    base = rng.binomial(1, 0.3, size=600).astype(float)
    better = np.where(rng.random(600) < 0.15, 1.0, base)  # same users, some extra hits
    out = paired_test(result(better), result(base), "ndcg@10")
    assert out["n_users"] == 600
    assert out["mean_diff"] == pytest.approx(better.mean() - base.mean())
    assert out["ci_low"] > 0
    assert out["p_value_t"] < 1e-6 and out["p_value_wilcoxon"] < 1e-6


def test_paired_test_does_not_flag_a_null_difference() -> None:
    rng = np.random.default_rng(3)
    a = rng.binomial(1, 0.3, size=600).astype(float)
    b = rng.binomial(1, 0.3, size=600).astype(float)
    out = paired_test(result(a), result(b), "ndcg@10")
    assert out["ci_low"] < 0 < out["ci_high"]
    assert out["p_value_t"] > 0.05 and out["p_value_wilcoxon"] > 0.05
    same = paired_test(result(a), result(a), "ndcg@10")
    assert same["p_value_t"] == 1.0 and same["p_value_wilcoxon"] == 1.0 and same["mean_diff"] == 0.0


def test_paired_test_uses_common_users_only() -> None:
    a = result(np.array([1.0, 0.0, 1.0, 0.5]), users=np.array([1, 2, 3, 4]))
    b = result(np.array([0.0, 0.0, 0.25]), users=np.array([2, 3, 9]))
    out = paired_test(a, b, "ndcg@10")
    assert out["n_users"] == 2
    assert out["mean_a"] == pytest.approx(0.5) and out["mean_b"] == pytest.approx(0.0)


def test_paired_test_refuses_mixed_protocols_and_unknown_metrics() -> None:
    a = result(np.ones(5))
    with pytest.raises(ConfigError, match="protocol"):
        paired_test(a, result(np.ones(5), protocol="sampled-100"), "ndcg@10")
    with pytest.raises(ConfigError, match="hr@5"):
        paired_test(a, a, "hr@5")
