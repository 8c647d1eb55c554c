"""Metrics: each a function of scores, documented with its formula, direction and source."""

from forgetlab.metrics import exposure, extraction, forgetting, memorization, mia, recovery, utility  # noqa: F401  (register their metrics)
from forgetlab.metrics.registry import METRICS, Metric, register_metric

__all__ = ["METRICS", "Metric", "register_metric"]
