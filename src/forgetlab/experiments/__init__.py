"""Experiments; each registers itself (its config class, validation, inputs and runner) in ``EXPERIMENTS``."""

from forgetlab.experiments.base import EXPERIMENTS, Experiment, Part, run_experiment, run_id, write_run_report
from forgetlab.experiments.recipes import build_config, load_config
from forgetlab.experiments import forget_generalization  # noqa: F401  (registers itself, cross_task and cross_task_cell)
from forgetlab.experiments import id_vs_ood  # noqa: F401  (registers itself)
from forgetlab.experiments import unlearn  # noqa: F401  (registers itself)
from forgetlab.experiments import tofu  # noqa: F401  (registers tofu and tofu_finetune)
from forgetlab.experiments import muse  # noqa: F401  (registers muse and muse_finetune)
from forgetlab.experiments import attack  # noqa: F401  (registers itself: attack runs of the experiments above)

__all__ = ["EXPERIMENTS", "Experiment", "Part", "build_config", "load_config", "run_experiment", "run_id", "write_run_report"]
