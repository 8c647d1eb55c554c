"""Study A's data: each task's items loaded, cleaned, binarized and split (fine-tune, forget, validation,
test), and the labels forgetting trains on."""

from __future__ import annotations

from pathlib import Path

from forgetlab.data.prepare import PreparedTask, prepare_task
from forgetlab.data.tasks import load_task_docs, task_input_files
from forgetlab.data.types import MCDoc
from forgetlab.experiments.forget_generalization.config import DataSpec, ForgetSpec, TaskRef
from forgetlab.methods import METHODS


def data_root(spec: DataSpec) -> Path | None:
    """The folder of local benchmark files the recipe names (None: the default)."""
    return Path(spec.root) if spec.root else None


def input_files(tasks: list[TaskRef], spec: DataSpec) -> list[Path]:
    """The data files the tasks are read from (part of a run's identity)."""
    root = data_root(spec)
    return [path for ref in tasks for path in task_input_files(ref.name, source=ref.source, data_root=root, files=ref.files)]


def prepare(ref: TaskRef, spec: DataSpec, seed: int) -> PreparedTask:
    """One task's items, cleaned and split by ``spec`` (sizes per task), seeded."""
    docs = load_task_docs(ref.name, source=ref.source, data_root=data_root(spec), hub_path=ref.hub_path, files=ref.files)
    return prepare_task(
        docs,
        finetune_size=spec.finetune_size,
        forget_size=spec.forget_size,
        validation_size=spec.validation_size,
        test_size=spec.test_size,
        seed=seed,
        max_chars=spec.max_chars,
    )


def forget_labels(spec: ForgetSpec, forget_set: list[MCDoc], seed: int) -> list[MCDoc]:
    """The forget set with the labels forgetting trains on (random or flipped: the method's relabelling)."""
    return METHODS.get(spec.method)(loss=spec.loss).relabel(forget_set, seed)
