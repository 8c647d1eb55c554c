"""Recovery attacks in Study A (tiny model, a generated task): stages, roles, recovery, disjointness, resume,
errors, the report."""

from __future__ import annotations

import json

import pytest

from forgetlab.experiments import build_config, run_experiment
from forgetlab.experiments.forget_generalization.robustness import relearn_docs
from forgetlab.data.prepare import PreparedTask
from tests.conftest import STUDY_A_RAW

pytestmark = pytest.mark.usefixtures("one_thread")

ATTACKS = [
    {"name": "quantize", "options": {"bits": [8]}},
    {"name": "relearn", "options": {"steps": [1, 2], "lr": 0.0, "batch_size": 4}},
    {"name": "relearn", "options": {"steps": [2], "lr": 1e-2, "batch_size": 4}},
    {"name": "relearn", "options": {"data": "benign", "steps": [1], "lr": 1e-2, "batch_size": 4}},
    {"name": "logit_lens"},
    {"name": "probe", "options": {"layers": [1, -1], "cs": [1.0]}},
]
BENIGN = {"benign": {"name": "synthetic_translation", "synthetic_sizes": {"train": 40, "validation": 5, "test": 5}}, "benign_size": 8}


def _raw(**changes):
    return {**STUDY_A_RAW, "attacks": ATTACKS, "attack_data": {"relearn_size": 8, "test_size": 10, **BENIGN}, **changes}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    run = run_experiment(build_config(_raw()), tmp_path_factory.mktemp("runs"))
    return run, json.loads((run.dir / "summary.json").read_text())


def test_each_attack_is_a_stage_of_the_task_and_the_three_models_are_measured(attacked):
    run, summary = attacked
    robustness = summary["tasks"]["synth_compare"]["robustness"]
    assert robustness["metrics"] == ["test/acc", "forget/acc"]
    assert list(robustness["attacks"]) == ["0-quantize", "1-relearn", "2-relearn", "3-relearn", "4-logit_lens", "5-probe"]
    for label in ("models", *robustness["attacks"]):
        assert run.stage(f"synth_compare/robustness/{label}") is not None
    task = summary["tasks"]["synth_compare"]
    models = robustness["models"]
    # the same items the run scored: forgotten = after forgetting, original = fine-tuned, never learned = pre-trained
    assert models["forgotten"]["forget/acc"] == task["acc_forget_train"]
    assert models["original"]["forget/acc"] == task["acc_forget_train_before"]
    models_stage = run.stage("synth_compare/robustness/models")["measured"]
    assert len(models_stage["never_learned"]["items"]["test/acc"]) == 10  # attack_data.test_size of the 12


def test_relearning_with_lr_zero_recovers_nothing_and_the_control_is_the_pretrained_model(attacked):
    run, summary = attacked
    robustness = summary["tasks"]["synth_compare"]["robustness"]
    models = robustness["models"]
    assert models["never_learned"] != models["forgotten"]  # so a control run on the wrong model would show
    for variant, metrics in robustness["attacks"]["1-relearn"]["variants"].items():
        for key, row in metrics.items():
            assert row["attacked"] == row["forgotten"], (variant, key)
            assert row["recovery"] in (0.0, None)
            assert row["control_never_learned"]["before"] == models["never_learned"][key]
            assert row["control_never_learned"]["difference"] == 0.0
    stage = run.stage("synth_compare/robustness/2-relearn")["results"]
    assert set(stage) == {"forgotten", "never_learned"}
    assert set(run.stage("synth_compare/robustness/0-quantize")["results"]) == {"forgotten", "original"}
    assert set(run.stage("synth_compare/robustness/3-relearn")["results"]["forgotten"]) == {"benign_step1"}


def test_the_logit_lens_reads_forget_accuracy_per_layer_and_its_last_layer_is_the_models_own(attacked):
    run, summary = attacked
    lens = summary["tasks"]["synth_compare"]["robustness"]["attacks"]["4-logit_lens"]["variants"]
    assert list(lens) == ["layer1", "layer2"]
    models = summary["tasks"]["synth_compare"]["robustness"]["models"]
    for role in ("forgotten", "original", "never_learned"):
        assert lens["layer2"][role]["lens_acc"] == pytest.approx(models[role]["forget/acc"], abs=1e-12)


def test_relearning_items_are_fine_tuning_items_disjoint_from_forget_and_test(attacked):
    run, _ = attacked
    data = PreparedTask.from_dict(run.stage("synth_compare/data"))
    config = build_config(_raw())
    docs = relearn_docs(config, data)
    assert [d.doc_id for d in docs] == [d.doc_id for d in data.finetune[:8]]
    clash = PreparedTask(**{**data.__dict__, "test": data.test + [data.finetune[0]]})
    with pytest.raises(ValueError, match="relearning items .* are also forget or test items"):
        relearn_docs(config, clash)


def test_a_run_killed_inside_an_attack_resumes_with_the_same_numbers(attacked, tmp_path):
    _, summary = attacked
    again = run_experiment(build_config(_raw()), tmp_path)
    for name in ("2-relearn.json", "3-relearn.json", "4-logit_lens.json", "5-probe.json"):
        (again.dir / "stages" / "synth_compare" / "robustness" / name).unlink()
    (again.dir / "summary.json").unlink()
    resumed = run_experiment(build_config(_raw()), tmp_path)
    assert json.loads((resumed.dir / "summary.json").read_text()) == summary


def test_attack_errors_are_named_before_the_run_opens(tmp_path):
    with pytest.raises(ValueError, match=r"attacks\[0\]: unknown attack 'nope'"):
        run_experiment(build_config(_raw(attacks=[{"name": "nope"}])), tmp_path)
    no_benign = _raw(attacks=[{"name": "relearn", "options": {"data": "benign"}}], attack_data={})
    with pytest.raises(ValueError, match=r"attacks\[0\]: relearn on 'benign' items needs attack_data.benign"):
        run_experiment(build_config(no_benign), tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_report_has_a_robustness_part_per_task(attacked):
    run, _ = attacked
    html = (run.dir / "report.html").read_text()
    assert 'id="robustness"' in html and "<h3>synth_compare</h3>" in html
    figures = {p.name for p in (run.dir / "report").glob("robustness_*.png")}
    assert figures == {f"robustness_synth_compare_{label}.png" for label in ("0-quantize", "1-relearn", "2-relearn", "3-relearn", "4-logit_lens", "5-probe")}


def test_the_probe_reads_the_forget_answers_per_layer_on_every_model(attacked):
    run, summary = attacked
    probe = summary["tasks"]["synth_compare"]["robustness"]["attacks"]["5-probe"]["variants"]
    assert list(probe) == ["layer1", "layer2"]
    for layer in probe.values():
        assert set(layer) == {"forgotten", "original", "never_learned"}
        for found in layer.values():
            assert 0 <= found["probe_acc"] <= 1 and found["question_acc"] is not None and found["c"] == 1.0
