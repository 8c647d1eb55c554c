"""Study A, "Unforgettable Generalization in Language Models" (Zhang, Choshen & Andreas, COLM 2024):
does random-label forgetting of a multiple-choice task generalize to new items of it?

``forget_generalization`` runs the per-task pipeline (:mod:`.run`); ``cross_task`` sweeps every ordered
task pair, one ``cross_task_cell`` run each (:mod:`.cross_task`).
"""

from forgetlab.experiments.base import EXPERIMENTS
from forgetlab.experiments.robustness import ATTACKABLE
from forgetlab.experiments.forget_generalization.config import (
    AnalysisSpec,
    CrossTaskCellConfig,
    CrossTaskConfig,
    DataSpec,
    EvalSpec,
    FinetuneSpec,
    ForgetGeneralizationConfig,
    ForgetSpec,
    TaskRef,
)
from forgetlab.experiments.forget_generalization.cross_task import CrossTask, CrossTaskCell
from forgetlab.experiments.forget_generalization.run import ForgetGeneralization
from forgetlab.experiments.forget_generalization.summary import cell_forget_ratio

EXPERIMENTS.register("forget_generalization")(ForgetGeneralization())
ATTACKABLE.register("forget_generalization")(EXPERIMENTS.get("forget_generalization"))
EXPERIMENTS.register("cross_task")(CrossTask())
EXPERIMENTS.register("cross_task_cell")(CrossTaskCell())

__all__ = [
    "AnalysisSpec",
    "CrossTask",
    "CrossTaskCell",
    "CrossTaskCellConfig",
    "CrossTaskConfig",
    "DataSpec",
    "EvalSpec",
    "FinetuneSpec",
    "ForgetGeneralization",
    "ForgetGeneralizationConfig",
    "ForgetSpec",
    "TaskRef",
    "cell_forget_ratio",
]
