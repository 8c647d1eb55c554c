"""Experiment recipes; each registers a runner ``(config, run, accelerator) -> summary``."""

from forgetlab.experiments.base import EXPERIMENTS, run_experiment
from forgetlab.experiments import forget_generalization  # noqa: F401  (registers itself)
from forgetlab.experiments import cross_task  # noqa: F401  (registers itself)
from forgetlab.experiments import id_vs_ood  # noqa: F401  (registers itself)
from forgetlab.experiments import unlearn  # noqa: F401  (registers itself)

__all__ = ["EXPERIMENTS", "run_experiment"]
