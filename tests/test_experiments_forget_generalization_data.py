"""Study A's data: a task's items split by the recipe's sizes, and the labels forgetting trains on."""

from forgetlab.experiments.forget_generalization.config import DataSpec, ForgetSpec, TaskRef
from forgetlab.experiments.forget_generalization.data import forget_labels, input_files, prepare
from forgetlab.methods import METHODS
from tests.conftest import make_docs


def test_prepare_splits_a_task_by_the_recipes_sizes_seeded():
    spec = DataSpec(finetune_size=6, forget_size=4, validation_size=2, test_size=5)
    data = prepare(TaskRef(name="synth_compare"), spec, seed=0)
    assert {name: len(docs) for name, docs in data.sets().items()} == {"finetune": 6, "forget": 4, "validation": 2, "test": 5}
    assert prepare(TaskRef(name="synth_compare"), spec, seed=0).to_dict() == data.to_dict()
    assert input_files([TaskRef(name="synth_compare")], spec) == []  # generated: no file to hash


def test_forget_labels_are_the_forgetting_methods_relabelling():
    docs = make_docs(20)
    assert forget_labels(ForgetSpec(), docs, seed=1) == METHODS.get("random_label")().relabel(docs, 1)
    flipped = forget_labels(ForgetSpec(method="flipped_label"), docs, seed=1)
    assert all(new.gold != old.gold for new, old in zip(flipped, docs))
