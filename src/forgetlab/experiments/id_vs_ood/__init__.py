"""``id_vs_ood``: Study B (Baluta et al. 2024), unlearning in- vs out-of-distribution data by gradient ascent.

config (the recipe) → data (corpus, forget groups, training streams) → run (the runner's stages) with
evaluate (scoring), stopping (when a group counts as unlearned), jobs (the unlearning runs), robustness (the
recovery attacks on each group's unlearned model) → summary.
"""

from forgetlab.experiments.base import EXPERIMENTS
from forgetlab.experiments.robustness import ATTACKABLE
from forgetlab.experiments.id_vs_ood.config import (
    AttackDataSpec,
    BucketSpec,
    IdVsOodConfig,
    IdVsOodEvalSpec,
    PretrainSpec,
    StopSpec,
    UnlearnSpec,
)
from forgetlab.experiments.id_vs_ood.data import IdVsOodData, build_data, stream_tokens
from forgetlab.experiments.id_vs_ood.evaluate import GroupEvaluator, forget_values, score_pairs
from forgetlab.experiments.id_vs_ood.jobs import Job
from forgetlab.experiments.id_vs_ood.run import IdVsOod, IdVsOodRunner
from forgetlab.experiments.id_vs_ood.stopping import Criterion, StopUnlearning, UnlearningCriteria
from forgetlab.experiments.id_vs_ood.summary import summarize

EXPERIMENTS.register("id_vs_ood")(IdVsOod())
ATTACKABLE.register("id_vs_ood")(EXPERIMENTS.get("id_vs_ood"))

__all__ = [
    "AttackDataSpec", "BucketSpec", "Criterion", "GroupEvaluator", "IdVsOod", "IdVsOodConfig", "IdVsOodData", "IdVsOodEvalSpec",
    "IdVsOodRunner", "Job", "PretrainSpec", "StopSpec", "StopUnlearning", "UnlearnSpec", "UnlearningCriteria",
    "build_data", "forget_values", "score_pairs", "stream_tokens", "summarize",
]
