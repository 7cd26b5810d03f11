"""Evaluation: full-ranking and sampled protocols, top-k / rating / CTR metrics, confidence intervals and paired
significance tests. Definitions and rules: ``docs/evaluation.md``."""

from attnrec.evaluation.ctr import CTR_METRICS, CTRResult, bootstrap_ctr, evaluate_ctr, gauc
from attnrec.evaluation.metrics import (
    RANKING_METRICS,
    auc,
    logloss,
    mae,
    metric_names,
    ranking_metrics_from_positions,
    rmse,
)
from attnrec.evaluation.protocol import (
    EvaluationResult,
    evaluate,
    evaluate_interactions,
    evaluate_ratings,
    sample_negatives,
    target_positions,
    topk_lists,
)
from attnrec.evaluation.stats import mean_confidence_interval, paired_test

__all__ = [
    "CTR_METRICS",
    "RANKING_METRICS",
    "CTRResult",
    "EvaluationResult",
    "auc",
    "bootstrap_ctr",
    "evaluate",
    "evaluate_ctr",
    "evaluate_interactions",
    "evaluate_ratings",
    "gauc",
    "logloss",
    "mae",
    "mean_confidence_interval",
    "metric_names",
    "paired_test",
    "ranking_metrics_from_positions",
    "rmse",
    "sample_negatives",
    "target_positions",
    "topk_lists",
]
