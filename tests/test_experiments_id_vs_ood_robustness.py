"""Recovery attacks in an ``id_vs_ood`` run (tiny from-scratch model): a stage per group and attack, lr-0
relearning recovers nothing, the control is the reference model, the relearning items are apart from every
item the run trains on or scores, a killed run resumes with the same numbers, errors before the run opens,
and the report's Robustness section."""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from forgetlab.data.types import Pair
from forgetlab.experiments import build_config, run_experiment
from forgetlab.experiments.id_vs_ood.data import IdVsOodData
from forgetlab.experiments.id_vs_ood.robustness import check_attack_data
from forgetlab.report.page import key_of
from tests.conftest import TINY_ID_VS_OOD
from tests.report_checks import assert_numbers_match

pytestmark = pytest.mark.usefixtures("one_thread")

ATTACKS = [
    {"name": "quantize", "options": {"bits": [8]}},
    {"name": "relearn", "options": {"steps": [1, 2], "lr": 0.0, "batch_size": 4}},
    {"name": "relearn", "options": {"data": "benign", "steps": [2], "lr": 3e-2, "batch_size": 4}},
    {"name": "logit_lens"},
    {"name": "probe", "options": {"layers": [1, -1], "cs": [1.0]}},
]
GROUPS = ("ood_x10", "id_x10")

SCORE_TOKENS = 512  # not the default: the probe's Scorer must take the run's budget


def _raw(**changes):
    raw = copy.deepcopy(TINY_ID_VS_OOD)
    raw.update(name="tiny_b_attacks", groups={"repetitions": [10], "per_group": 6}, buckets={"groups": []})
    raw["unlearn"].update(lr=3e-3, stop={"rules": []})
    raw["eval"].update(bleu_size=0, neighbors=0)
    return {**raw, "attacks": ATTACKS, "compute": {"score_tokens": SCORE_TOKENS}, "attack_data": {"canaries": 8, "pairs": 8, "bootstrap": 200}, **changes}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory, probe_budgets):
    runs = tmp_path_factory.mktemp("runs")
    run = run_experiment(build_config(_raw()), runs)
    return run, json.loads((run.dir / "summary.json").read_text())


def test_the_probe_scores_with_the_runs_token_budget(attacked, probe_budgets):
    assert probe_budgets and set(probe_budgets) == {SCORE_TOKENS}


def test_every_group_and_attack_has_its_stage(attacked):
    run, summary = attacked
    for group in GROUPS:
        robustness = summary["groups"][group]["robustness"]
        assert set(robustness["models"]) == {"forgotten", "original", "never_learned"}
        assert list(robustness["attacks"]) == ["0-quantize", "1-relearn", "2-relearn", "3-logit_lens", "4-probe"]
        assert run.stage(f"unlearn/{group}/robustness/models") is not None
        for label in robustness["attacks"]:
            assert run.stage(f"unlearn/{group}/robustness/{label}") is not None
        assert (run.dir / "stages" / "weights" / "unlearned" / f"{group}.safetensors").is_file()
        forgotten, original = robustness["models"]["forgotten"], robustness["models"]["original"]
        assert forgotten["forget/loss"] > original["forget/loss"]  # gradient ascent raised the forget loss
        assert forgotten["forget/loss"] == pytest.approx(summary["groups"][group]["forget_loss_after"])
    ood, idd = (summary["groups"][g]["robustness"]["models"]["forgotten"] for g in GROUPS)
    assert "forget/exposure_mean" in ood and "forget/exposure_mean" not in idd  # exposure: canaries only
    assert set(summary["groups"]["ood_x10"]["robustness"]["attacks"]["2-relearn"]["variants"]) == {"benign_step2"}
    assert run.stage("robustness/data") is not None


def test_relearning_with_lr_zero_recovers_nothing(attacked):
    _, summary = attacked
    defined = 0
    for group in GROUPS:
        for variant, metrics in summary["groups"][group]["robustness"]["attacks"]["1-relearn"]["variants"].items():
            assert variant in ("disjoint_step1", "disjoint_step2")
            for key, row in metrics.items():
                assert row["difference"] == 0.0, (group, variant, key)
                assert row["control_never_learned"]["difference"] == 0.0
                if row["recovery"] is not None:
                    assert row["recovery"] == 0.0
                    defined += 1
    assert defined >= 4  # unlearning moved several metrics beyond noise: the zeros are real recoveries


def test_recovery_and_controls_use_the_right_models(attacked):
    _, summary = attacked
    for group in GROUPS:
        robustness = summary["groups"][group]["robustness"]
        models = robustness["models"]
        # the control is the reference model: GenEx compares with it, so it scores 0 there
        assert models["never_learned"]["forget/genex_mean"] == pytest.approx(0.0, abs=1e-6)
        assert models["original"]["forget/genex_mean"] == pytest.approx(summary["groups"][group]["genex_before"]["mean"])
        row = robustness["attacks"]["2-relearn"]["variants"]["benign_step2"]["forget/genex_mean"]
        assert row["forgotten"] == pytest.approx(models["forgotten"]["forget/genex_mean"])
        assert row["original"] == pytest.approx(models["original"]["forget/genex_mean"])
        control = row["control_never_learned"]
        assert control["before"] == pytest.approx(models["never_learned"]["forget/genex_mean"])
        assert control["before"] != pytest.approx(models["forgotten"]["forget/genex_mean"])
        assert row["difference"] != 0.0  # a real relearning step moved the model
        quantized = robustness["attacks"]["0-quantize"]["variants"]["int8"]["forget/loss"]
        assert quantized["control_original"]["before"] == pytest.approx(models["original"]["forget/loss"])
        lens = robustness["attacks"]["3-logit_lens"]["variants"]
        assert set(lens) == {"layer1", "layer2"} and set(lens["layer2"]) == {"forgotten", "original", "never_learned"}
    reference = summary["groups"]["ood_x10"]["robustness"]["models"]["never_learned"]["forget/exposure_mean"]
    assert reference == pytest.approx(summary["before"]["ood_x10"]["exposure_reference"])


def test_relearning_items_are_apart_from_every_item_of_the_run(attacked):
    run, _ = attacked
    data, drawn = IdVsOodData.from_dict(run.stage("data")), run.stage("robustness/data")
    canaries, pairs = ([Pair.from_dict(p) for p in drawn[kind]] for kind in ("canaries", "pairs"))
    assert len(canaries) == 8 and len(pairs) == 8
    assert all(p.prompt == "My secret is " for p in canaries) and not any(p.prompt == "My secret is " for p in pairs)
    texts = lambda ps: {p.text for p in ps}  # noqa: E731
    ood = [p for g in data.groups if g.kind == "ood" for p in g.items]
    for taken in (ood, data.references, data.unseen, data.spares["ood"]):
        assert not texts(canaries) & texts(taken)
    idd = [p for g in data.groups if g.kind == "id" for p in g.items]
    for taken in (idd, data.base, data.test, data.heldout, data.spares["id"]):
        assert not texts(pairs) & texts(taken) and not {p.pair_id for p in pairs} & {p.pair_id for p in taken}
    check_attack_data(canaries, pairs, data)
    with pytest.raises(ValueError, match="overlap"):
        check_attack_data([*canaries, data.references[0]], pairs, data)
    with pytest.raises(ValueError, match="overlap"):
        check_attack_data(canaries, [*pairs, Pair("new", data.unseen[0].prompt, data.unseen[0].target)], data)


def test_a_run_killed_inside_the_attacks_resumes_with_the_same_numbers(attacked, tmp_path):
    run, summary = attacked
    runs = tmp_path / "runs"
    shutil.copytree(run.dir.parent, runs)
    copied = runs / run.dir.name
    for name in ("ood_x10/robustness/2-relearn", "ood_x10/robustness/3-logit_lens", "id_x10/robustness/models",
                 "id_x10/robustness/0-quantize", "id_x10/robustness/1-relearn", "id_x10/robustness/2-relearn",
                 "id_x10/robustness/3-logit_lens"):
        (copied / "stages" / "unlearn" / f"{name}.json").unlink()  # as if killed inside ood_x10's third attack
    (copied / "summary.json").unlink()
    resumed = run_experiment(build_config(_raw()), runs)
    assert resumed.dir == copied
    assert json.loads((copied / "summary.json").read_text()) == summary


def test_attack_errors_are_named_before_the_run_opens(tmp_path):
    with pytest.raises(ValueError, match=r"attacks\[0\]: unknown attack 'nope'"):
        run_experiment(build_config(_raw(attacks=[{"name": "nope"}])), tmp_path)
    with pytest.raises(ValueError, match=r"attacks\[1\]: attack relearn: data must be one of"):
        run_experiment(build_config(_raw(attacks=[{"name": "quantize"}, {"name": "relearn", "options": {"data": "x"}}])), tmp_path)
    assert not list(tmp_path.glob("*/"))


def test_without_attacks_nothing_is_added_and_the_weights_attacks_need_are_kept(tmp_path):
    from forgetlab.experiments.id_vs_ood.config import IdVsOodConfig

    assert IdVsOodConfig.model_validate(copy.deepcopy(TINY_ID_VS_OOD)).attacks == []
    raw = _raw(attacks=[])
    raw["unlearn"].update(max_steps=1)
    run = run_experiment(build_config(raw), tmp_path)
    summary = json.loads((run.dir / "summary.json").read_text())
    assert all("robustness" not in group for group in summary["groups"].values())
    assert run.stage("robustness/data") is None
    kept = {p.stem for p in (run.dir / "stages" / "weights" / "unlearned").glob("*.safetensors")}
    assert kept == set(GROUPS)  # for a later forgetlab attack


def test_without_save_models_the_unlearned_weights_go_at_the_end(tmp_path):
    raw = _raw(attacks=[{"name": "logit_lens"}], save_models=False)
    raw["unlearn"].update(max_steps=1)
    run = run_experiment(build_config(raw), tmp_path)
    summary = json.loads((run.dir / "summary.json").read_text())
    assert all(list(group["robustness"]["attacks"]) == ["0-logit_lens"] for group in summary["groups"].values())
    assert not list((run.dir / "stages" / "weights").glob("**/*.safetensors"))


def test_the_report_has_a_robustness_section_per_group(attacked):
    from forgetlab.experiments import write_run_report

    run, summary = attacked
    path = write_run_report(run.dir)
    parsed = assert_numbers_match(path, summary)  # every number shown is summary.json's, under its key
    assert "robustness" in parsed.ids and "Robustness: does the forgotten knowledge come back?" in path.read_text()
    figures = {p.name for p in (run.dir / "report").glob("robustness_*.png")}
    assert figures == {f"robustness_{g}_{label}.png" for g in GROUPS for label in ("0-quantize", "1-relearn", "2-relearn", "3-logit_lens", "4-probe")}
    keys = {key for key, _ in parsed.values}
    for group in GROUPS:
        row = ["groups", group, "robustness", "attacks", "2-relearn", "variants", "benign_step2", "forget/genex_mean"]
        assert {key_of([*row, "difference"]), key_of([*row, "recovery"])} <= keys
