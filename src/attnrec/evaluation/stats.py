"""Uncertainty of evaluation results: t-based confidence intervals and paired significance tests.

* Confidence interval of a mean over users: ``mean +- t_{n-1, (1 + level) / 2} * sd / sqrt(n)`` with the sample
  standard deviation (``ddof=1``); ``(nan, nan)`` for fewer than two users.
* :func:`paired_test`: over the users both results evaluated, the per-user differences ``a - b``: their mean,
  the t interval of that mean, the two-sided paired t-test (``scipy.stats.ttest_rel``) and the two-sided Wilcoxon
  signed-rank test (``scipy.stats.wilcoxon``, zero differences dropped). When every difference is zero both
  p-values are 1.0.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as sps

from attnrec.errors import ConfigError

if TYPE_CHECKING:
    from attnrec.evaluation.protocol import EvaluationResult


def mean_confidence_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t confidence interval of the mean of ``values`` at confidence ``level``."""
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be in (0, 1); got {level}")
    x = np.asarray(values, dtype=np.float64).ravel()
    n = len(x)
    if n < 2:
        return (math.nan, math.nan)
    mean = float(x.mean())
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf((1.0 + level) / 2.0, df=n - 1)) * sd / math.sqrt(n)
    return (mean - half, mean + half)


def paired_test(a: EvaluationResult, b: EvaluationResult, metric: str, *, level: float = 0.95) -> dict[str, Any]:
    """Compare two evaluation results user by user on one per-user metric.

    Args:
        a, b: results of the same protocol (e.g. two models on one split).
        metric: a per-user metric name such as ``"ndcg@10"``.
        level: confidence level of the interval of the mean difference.

    Returns:
        ``{"metric", "n_users", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "t_statistic",
        "p_value_t", "wilcoxon_statistic", "p_value_wilcoxon"}`` where differences are ``a - b`` over the users
        common to both results.
    """
    if a.protocol != b.protocol:
        raise ConfigError(f"paired_test needs results of the same protocol; got {a.protocol!r} and {b.protocol!r}")
    for name, res in (("a", a), ("b", b)):
        if metric not in res.per_user:
            raise ConfigError(
                f"metric {metric!r} has no per-user values in result '{name}' (available: {', '.join(res.per_user)})"
            )
    common, ia, ib = np.intersect1d(a.users, b.users, assume_unique=True, return_indices=True)
    if len(common) < 2:
        raise ConfigError(f"paired_test needs at least 2 users common to both results; got {len(common)}")
    xa = a.per_user[metric][ia]
    xb = b.per_user[metric][ib]
    diff = xa - xb
    low, high = mean_confidence_interval(diff, level)
    if np.all(diff == 0):
        t_stat, p_t, w_stat, p_w = 0.0, 1.0, 0.0, 1.0
    else:
        t_res = sps.ttest_rel(xa, xb)
        t_stat, p_t = float(t_res.statistic), float(t_res.pvalue)
        if math.isnan(p_t):  # constant non-zero difference: the t statistic is infinite
            t_stat, p_t = math.copysign(math.inf, float(diff.mean())), 0.0
        w_res = sps.wilcoxon(xa, xb, zero_method="wilcox", alternative="two-sided")
        w_stat, p_w = float(w_res.statistic), float(w_res.pvalue)
    return {
        "metric": metric,
        "n_users": len(common),
        "mean_a": float(xa.mean()),
        "mean_b": float(xb.mean()),
        "mean_diff": float(diff.mean()),
        "ci_low": low,
        "ci_high": high,
        "t_statistic": t_stat,
        "p_value_t": p_t,
        "wilcoxon_statistic": w_stat,
        "p_value_wilcoxon": p_w,
    }
