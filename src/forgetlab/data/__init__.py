"""forgetlab's data layer: multiple-choice tasks in lm-eval terms, loaded from any source, prepared for forgetting.

* :func:`load_task_docs` / :func:`load_task_records`: a task's items per split (local files, HF hub,
  user files or synthetic), rendered exactly like lm-evaluation-harness 0.4.13's default prompts;
* :func:`prepare_task`: binarize (gold + one seeded distractor), clean (duplicates, train/eval
  overlap) and split into fine-tune / forget / validation / test sets;
* :data:`TASKS`: the registry of :class:`TaskSpec` (built-in benchmark tasks and synthetic tasks).
"""

from forgetlab.data.prepare import PreparedTask, prepare_task
from forgetlab.data.records import Record
from forgetlab.data.tasks import (
    TASKS,
    LocalSplit,
    SyntheticSource,
    TaskSpec,
    get_task,
    load_task_docs,
    load_task_records,
    register_task,
    resolve_data_root,
    task_names,
)
from forgetlab.data.types import MCDoc
from forgetlab.data import suite, synthetic  # noqa: E402,F401  (importing them registers the built-in tasks)

__all__ = [
    "MCDoc",
    "PreparedTask",
    "Record",
    "TASKS",
    "LocalSplit",
    "SyntheticSource",
    "TaskSpec",
    "get_task",
    "load_task_docs",
    "load_task_records",
    "prepare_task",
    "register_task",
    "resolve_data_root",
    "task_names",
]
