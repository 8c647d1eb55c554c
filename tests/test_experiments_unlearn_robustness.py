"""Recovery attacks in an ``unlearn`` run (tiny model): stages, controls, recovery, disjointness, resume."""

from __future__ import annotations

import json

import pytest

from forgetlab.config import ConfigError
from forgetlab.experiments import build_config, run_experiment
from tests.conftest import unlearn_raw_config

pytestmark = pytest.mark.usefixtures("one_thread")

ATTACKS = [
    {"name": "quantize", "options": {"bits": [8, 4]}},
    {"name": "relearn", "options": {"steps": [1, 2], "lr": 0.0, "batch_size": 4}},
    {"name": "relearn", "options": {"steps": [2], "lr": 3e-2, "batch_size": 4}},
    {"name": "logit_lens"},
    {"name": "probe", "options": {"layers": [1, -1], "cs": [1.0]}},
]

SCORE_TOKENS = 512  # not the default: the probe's Scorer must take the run's budget


def _raw(**changes):
    raw = unlearn_raw_config(lr=3e-2, max_steps=4)
    raw["sets"] = dict(raw["sets"], relearn={"source": "texts", "size": 8})
    raw["learn"] = {"lr": 1e-2, "epochs": 2, "batch_size": 4, "share": False}
    return {**raw, "attacks": ATTACKS, "compute": {"score_tokens": SCORE_TOKENS}, **changes}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory, probe_budgets):
    run = run_experiment(build_config(_raw()), tmp_path_factory.mktemp("runs"))
    return run, json.loads((run.dir / "summary.json").read_text())


def test_the_probe_scores_with_the_runs_token_budget(attacked, probe_budgets):
    assert probe_budgets and set(probe_budgets) == {SCORE_TOKENS}


def test_every_attack_has_its_stage_and_the_models_their_measurements(attacked):
    run, summary = attacked
    robustness = summary["robustness"]
    assert set(robustness["models"]) == {"forgotten", "original", "never_learned"}
    assert list(robustness["attacks"]) == ["0-quantize", "1-relearn", "2-relearn", "3-logit_lens", "4-probe"]
    for label in robustness["attacks"]:
        assert run.stage(f"robustness/{label}") is not None
    assert set(robustness["attacks"]["0-quantize"]["variants"]) == {"int8", "int4"}
    forgotten, original = robustness["models"]["forgotten"], robustness["models"]["original"]
    assert forgotten["forget/loss"] > original["forget/loss"]  # unlearning raised the forget loss


def test_relearning_with_lr_zero_recovers_nothing(attacked):
    _, summary = attacked
    for variant in ("disjoint_step1", "disjoint_step2"):
        row = summary["robustness"]["attacks"]["1-relearn"]["variants"][variant]["forget/loss"]
        assert row["difference"] == pytest.approx(0.0, abs=1e-6)
        assert row["recovery"] == pytest.approx(0.0, abs=1e-6)
        assert row["control_never_learned"]["difference"] == pytest.approx(0.0, abs=1e-6)


def test_recovery_and_controls_use_the_right_models(attacked):
    _, summary = attacked
    models = summary["robustness"]["models"]
    row = summary["robustness"]["attacks"]["2-relearn"]["variants"]["disjoint_step2"]["forget/loss"]
    assert row["forgotten"] == pytest.approx(models["forgotten"]["forget/loss"])
    assert row["original"] == pytest.approx(models["original"]["forget/loss"])
    assert row["recovery"] == pytest.approx((row["attacked"] - row["forgotten"]) / (row["original"] - row["forgotten"]))
    control = row["control_never_learned"]
    assert control["before"] == pytest.approx(models["never_learned"]["forget/loss"])  # the control model, not the forgotten one
    assert control["before"] != pytest.approx(models["forgotten"]["forget/loss"])
    quantized = summary["robustness"]["attacks"]["0-quantize"]["variants"]["int4"]["forget/loss"]
    assert quantized["control_original"]["before"] == pytest.approx(models["original"]["forget/loss"])
    lens = summary["robustness"]["attacks"]["3-logit_lens"]["variants"]
    assert set(lens) == {"layer1", "layer2"} and set(lens["layer2"]) == {"forgotten", "original", "never_learned"}


def test_relearning_items_are_disjoint_from_the_forget_set(attacked):
    run, _ = attacked
    data = run.stage("data")
    texts = lambda rows: {r["prompt"] + r["target"] for r in rows}  # noqa: E731
    assert data["relearn"] and not texts(data["relearn"]) & texts(data["forget"])
    assert not texts(data["relearn"]) & texts(data["holdout"])


def test_a_run_killed_inside_an_attack_resumes_with_the_same_numbers(attacked, tmp_path):
    run, summary = attacked
    again = run_experiment(build_config(_raw()), tmp_path)
    for name in ("robustness/2-relearn.json", "robustness/3-logit_lens.json"):
        (again.dir / "stages" / name).unlink()  # as if killed inside the third attack
    (again.dir / "summary.json").unlink()
    resumed = run_experiment(build_config(_raw()), tmp_path)
    assert json.loads((resumed.dir / "summary.json").read_text())["robustness"] == summary["robustness"]


def test_attack_errors_are_named_before_the_run_opens(tmp_path):
    with pytest.raises(ValueError, match=r"attacks\[0\]: unknown attack 'nope'"):
        run_experiment(build_config(_raw(attacks=[{"name": "nope"}])), tmp_path)
    no_set = _raw(attacks=[{"name": "relearn", "options": {"data": "benign"}}])
    with pytest.raises(ValueError, match=r"attacks\[0\]: relearn on 'benign' items needs sets.benign"):
        run_experiment(build_config(no_set), tmp_path)
    with pytest.raises(ValueError, match=r"attacks: attacks need the kept weights"):
        run_experiment(build_config(_raw(attacks=[{"name": "quantize"}], save_models=False)), tmp_path)
    with pytest.raises(ConfigError, match="sets.relearn.source: unknown source"):
        raw = _raw()
        raw["sets"]["relearn"] = {"source": "elsewhere", "size": 2}
        build_config(raw)
    assert not list(tmp_path.glob("*/"))


def test_the_report_has_a_robustness_section_with_its_figures(attacked):
    from forgetlab.experiments import write_run_report

    run, summary = attacked
    html = write_run_report(run.dir).read_text()
    assert 'id="robustness"' in html and "Robustness: does the forgotten knowledge come back?" in html
    figures = {p.name for p in (run.dir / "report").glob("robustness_*.png")}
    assert figures == {"robustness_0-quantize.png", "robustness_1-relearn.png", "robustness_2-relearn.png", "robustness_3-logit_lens.png", "robustness_4-probe.png"}
    recovery = summary["robustness"]["attacks"]["2-relearn"]["variants"]["disjoint_step2"]["forget/loss"]["recovery"]
    assert f'data-value="{json.dumps(recovery)}"' in html  # the number, with its key, as everywhere in the report
