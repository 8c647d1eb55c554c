"""Attack runs (``forgetlab attack RUN``): a child run that references a finished run, never rewrites it,
gives the numbers the same attacks give inside the recipe, resumes, links from the source's report, and
names its errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from forgetlab.cli import app
from forgetlab.experiments import build_config, run_experiment
from forgetlab.experiments.attack import attack_run_config, link_from_source
from forgetlab.store import RunStore
from tests.conftest import STUDY_A_RAW, unlearn_raw_config

pytestmark = pytest.mark.usefixtures("one_thread")

STUDY_A_ATTACKS = [
    {"name": "quantize", "options": {"bits": [8]}},
    {"name": "relearn", "options": {"steps": [1, 2], "lr": 1e-2, "batch_size": 4}},
    {"name": "logit_lens"},
]
UNLEARN_ATTACKS = [{"name": "relearn", "options": {"steps": [2], "lr": 3e-2, "batch_size": 4}}, {"name": "quantize", "options": {"bits": [4]}}]
RELEARN_SET = {"source": "texts", "size": 8}
cli = CliRunner()


def _files(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != "report.html"}


@pytest.fixture(scope="module")
def study_a(tmp_path_factory):
    """A finished Study A run without attacks, its attack run, and the same attacks inside a recipe."""
    root = tmp_path_factory.mktemp("runs")
    source = run_experiment(build_config(STUDY_A_RAW), root)
    before = _files(source.dir)
    config = attack_run_config(source, {"attacks": STUDY_A_ATTACKS, "attack_data": {"attack_data.relearn_size": 8}})
    child = run_experiment(config, root)
    link_from_source(child, config)
    inline = run_experiment(build_config({**STUDY_A_RAW, "attacks": STUDY_A_ATTACKS, "attack_data": {"relearn_size": 8}}), tmp_path_factory.mktemp("inline"))
    return source, before, child, inline


def test_an_attack_run_is_a_child_of_its_source_and_never_rewrites_it(study_a):
    source, before, child, _ = study_a
    assert child.id.startswith(f"{source.id}-attacks-") and child.dir.parent == source.dir.parent
    assert _files(source.dir) == before
    summary = child.summary()
    assert summary["source_run"] == source.id and summary["source_experiment"] == "forget_generalization"
    for label in ("models", "0-quantize", "1-relearn", "2-logit_lens"):
        assert child.stage(f"synth_compare/robustness/{label}") is not None
    assert "synth_compare/robustness/1-relearn" in json.loads((child.dir / "timings.json").read_text())["stages"]


def test_an_attack_run_gives_the_numbers_of_the_same_attacks_inside_the_recipe(study_a):
    source, _, child, inline = study_a
    assert child.summary()["tasks"]["synth_compare"]["robustness"] == inline.summary()["tasks"]["synth_compare"]["robustness"]
    task = source.summary()["tasks"]["synth_compare"]
    forgotten = child.summary()["tasks"]["synth_compare"]["robustness"]["models"]["forgotten"]
    assert forgotten == {"test/acc": task["acc_forget_test"], "forget/acc": task["acc_forget_train"]}  # the whole test split


def test_the_source_report_links_to_its_attack_runs_and_theirs_has_the_robustness_section(study_a):
    source, _, child, _ = study_a
    assert f'href="../{child.id}/report.html#robustness"' in (source.dir / "report.html").read_text()
    html = (child.dir / "report.html").read_text()
    assert 'id="robustness"' in html and "<h3>synth_compare</h3>" in html
    assert (child.dir / "report" / "robustness_synth_compare_1-relearn.png").is_file()


def test_an_attack_run_resumes_and_is_found_again(study_a, tmp_path):
    source, _, child, _ = study_a
    config = attack_run_config(source, {"attacks": STUDY_A_ATTACKS, "attack_data": {"attack_data.relearn_size": 8}})
    assert run_experiment(config, source.dir.parent).dir == child.dir  # found, not redone
    expected = child.summary()
    (child.dir / "stages" / "synth_compare" / "robustness" / "2-logit_lens.json").unlink()
    (child.dir / "summary.json").unlink()
    RunStore(source.dir.parent).fail(child, "killed")
    assert run_experiment(config, source.dir.parent).summary() == expected


def test_the_cli_attacks_a_run_by_id_prefix_and_names_bad_input(study_a, tmp_path):
    source, _, child, _ = study_a
    recipe = tmp_path / "attacks.yaml"
    recipe.write_text(json.dumps({"attacks": STUDY_A_ATTACKS}))
    result = cli.invoke(app, ["attack", source.id[:-4], str(recipe), "--set", "attack_data={attack_data.relearn_size: 8}",
                              "--runs-dir", str(source.dir.parent)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(child.dir.resolve())
    bad = cli.invoke(app, ["attack", source.id, str(recipe), "--set", "attack_data={forget.lr: 1.0}", "--runs-dir", str(source.dir.parent)])
    assert bad.exit_code == 2
    assert "attack_data.forget.lr: an attack run may only set what its attacks train on (attack_data for forget_generalization)" in bad.output
    extra = cli.invoke(app, ["attack", source.id, "--set", "seed=3", "--runs-dir", str(source.dir.parent)])
    assert extra.exit_code == 2 and "attack recipe: unknown field(s) ['seed']" in extra.output
    missing = cli.invoke(app, ["attack", "nope", "--runs-dir", str(source.dir.parent)])
    assert missing.exit_code == 2 and "run 'nope'" in missing.output


def test_an_unlearn_run_gets_a_relearning_set_drawn_after_its_own_sets(tmp_path):
    source = run_experiment(build_config(unlearn_raw_config(lr=3e-2, max_steps=2)), tmp_path)
    data = {"sets.relearn": RELEARN_SET}
    child = run_experiment(attack_run_config(source, {"attacks": UNLEARN_ATTACKS, "attack_data": data}), tmp_path)
    inline = run_experiment(build_config({**unlearn_raw_config(lr=3e-2, max_steps=2), "attacks": UNLEARN_ATTACKS,
                                          "sets": {**unlearn_raw_config()["sets"], "relearn": RELEARN_SET}}), tmp_path / "inline")
    assert child.summary()["robustness"] == inline.summary()["robustness"]
    assert set(child.summary()["robustness"]["models"]) == {"forgotten", "original"}
    changed = {**data, "sources.texts.prompt_words": 2}
    with pytest.raises(ValueError, match=f"the forget set would differ from source run {source.id}'s"):
        run_experiment(attack_run_config(source, {"attacks": UNLEARN_ATTACKS, "attack_data": changed}), tmp_path)


def test_runs_of_experiments_without_attacks_or_without_their_weights_are_refused(tmp_path):
    unkept = run_experiment(build_config({**unlearn_raw_config(), "save_models": False}), tmp_path)
    with pytest.raises(ValueError, match="attacks need the kept weights; set save_models: true"):
        run_experiment(attack_run_config(unkept, {"attacks": UNLEARN_ATTACKS, "attack_data": {"sets.relearn": RELEARN_SET}}), tmp_path)
    config = attack_run_config(unkept, {})
    with pytest.raises(ValueError, match="cross_task_cell runs have no recovery attacks"):
        config.model_copy(update={"source_config": {"experiment": "cross_task_cell"}}).attacked()


def test_a_study_b_run_is_attacked_per_group_with_the_numbers_of_inline_attacks(tmp_path):
    from tests.test_experiments_id_vs_ood_robustness import _raw as study_b_raw

    attacks = [{"name": "relearn", "options": {"steps": [1], "lr": 3e-2, "batch_size": 4}}]
    plain = {k: v for k, v in study_b_raw(attacks=attacks).items() if k not in ("attacks", "attack_data")}
    source = run_experiment(build_config(plain), tmp_path)
    assert not any((source.dir / "stages" / "unlearn").rglob("robustness"))  # no attacks in the source
    child = run_experiment(attack_run_config(source, {"attacks": attacks, "attack_data": {"attack_data": {"canaries": 8, "pairs": 8, "bootstrap": 200}}}), tmp_path)
    inline = run_experiment(build_config(study_b_raw(attacks=attacks)), tmp_path / "inline")
    groups = child.summary()["groups"]
    assert set(groups) == {"ood_x10", "id_x10"}
    for key, group in groups.items():
        assert group["robustness"] == inline.summary()["groups"][key]["robustness"]
    assert "<h3>Group ood_x10</h3>" in (child.dir / "report.html").read_text()
