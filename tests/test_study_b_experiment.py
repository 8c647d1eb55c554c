"""Study B end to end on a tiny from-scratch model and a generated corpus: stages, summary, plots, rules."""

import copy
import json

import pytest
import torch
from accelerate import Accelerator

from forgetlab.config import ConfigError, OptimSpec
from forgetlab.experiments import build_config
from forgetlab.data.corpus import Pair
from forgetlab.experiments import run_experiment
from forgetlab.data.canaries import GroupKind
from forgetlab.experiments.id_vs_ood import UnlearningCriteria, encode_pairs
from forgetlab.methods import METHODS
from forgetlab.store import read_jsonl
from forgetlab.train import DivergenceError, train_items

RAW = {
    "experiment": "id_vs_ood",
    "name": "tiny_b",
    "cpu_threads": 1,
    "model": "scratch",
    "scratch": {"vocab_size": 400, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_length": 96},
    "corpus": {"name": "synthetic_translation", "synthetic_sizes": {"train": 200, "validation": 20, "test": 20}},
    "train_size": 150,
    "test_size": 16,
    "canaries": {"n_references": 60, "n_unseen": 20},
    "groups": {"repetitions": [1, 10], "per_group": 6},
    "train": {"epochs": 1, "batch_size": 32, "lr": 3e-3, "warmup_steps": 2},
    "unlearn": {"lr": 1e-3, "max_steps": 4, "batch_size": 6, "eval_every": 2},
    "eval": {"utility_size": 12, "bleu_size": 6, "bleu_every": 2, "max_new_tokens": 10, "nearby_random": 6, "heldout_size": 8},
    "buckets": {"groups": ["id_x10"], "factors": ["difficulty"]},
}
GROUP_FIELDS = {
    "status", "steps_to_unlearn", "steps_to_unlearn_by", "utility_before", "utility_at_unlearned", "utility_after",
    "utility_lost", "genex_before", "genex_after", "relexp_rank_before", "relexp_rank_after", "relexp_change_after", "nearby",
}


def test_stop_rules_all_any_and_kinds():
    tolerant = UnlearningCriteria(GroupKind.OOD, ["exposure_baseline"], baseline=1.44, tolerance=0.25)
    tolerant.update(3, {"exposure_mean": 1.65, "genex_mean": 5.0})
    assert tolerant.first == {"exposure_baseline": 3, "genex_zero": None} and tolerant.should_stop
    rules = UnlearningCriteria(GroupKind.OOD, ["exposure_baseline", "genex_zero"], baseline=1.44)
    assert rules.update(0, {"exposure_mean": 3.0, "genex_mean": 2.0}) == [] and not rules.should_stop
    assert rules.update(2, {"exposure_mean": 1.0, "genex_mean": 0.5}) == ["exposure_baseline"] and not rules.should_stop
    assert rules.update(4, {"exposure_mean": 1.6, "genex_mean": -0.1}) == ["genex_zero"] and rules.should_stop
    assert rules.first == {"exposure_baseline": 2, "genex_zero": 4} and rules.primary == "exposure_baseline"
    anyone = UnlearningCriteria(GroupKind.OOD, ["exposure_baseline", "genex_zero"], baseline=1.44, mode="any")
    anyone.update(2, {"exposure_mean": 1.0, "genex_mean": 0.5})
    assert anyone.should_stop
    in_dist = UnlearningCriteria(GroupKind.ID, ["exposure_baseline"], baseline=1.44)  # exposure does not apply to ID items
    in_dist.update(0, {"genex_mean": -1.0})
    assert in_dist.first == {"genex_zero": 0} and not in_dist.should_stop and in_dist.primary == "genex_zero"
    never = UnlearningCriteria(GroupKind.OOD, [], baseline=1.44)
    never.update(0, {"exposure_mean": 0.0, "genex_mean": -5.0})
    assert not never.should_stop


def test_tiny_recipe_end_to_end(tmp_path):
    run = run_experiment(build_config(RAW), tmp_path)
    assert run.finished
    summary = json.loads((run.dir / "summary.json").read_text())
    assert set(summary["groups"]) == {"ood_x1", "ood_x10", "id_x1", "id_x10"}
    assert set(summary["buckets"]) == {f"id_x10/difficulty_{b}" for b in ("easy", "medium", "hard")}
    for key, group in {**summary["groups"], **summary["buckets"]}.items():
        assert group["status"] == "ok" and GROUP_FIELDS <= set(group), key
        assert {"loss", "perplexity", "bleu", "exact_match"} <= set(group["utility_before"])
        assert group["steps_run"] <= 4
    for name in ("ood_x1", "ood_x10"):
        assert {"exposure_before", "exposure_after"} <= set(summary["groups"][name])
        assert summary["before"][name]["exposure_original"] >= 0
    assert summary["training"]["original"]["forget_items"] == 6 * (1 + 10) * 2
    training = summary["training"]
    assert training["reference"]["forget_items"] == 0 and training["reference"]["stand_in_items"] == 132
    assert training["reference"]["items"] == training["original"]["items"] == 150 + 132  # 1 epoch
    assert training["reference"]["steps"] == training["original"]["steps"] == -(-282 // 32)
    assert summary["exposure_baselines"]["theory_log2e"] == pytest.approx(1.4427, abs=1e-4)
    claims = {"ood_needs_more_steps", "ood_needs_more_steps_exposure_vs_genex", "ood_better_tradeoff", "id_decays_utility_faster"}
    assert claims | {"ood_vs_id", "exposure_rises_with_repetitions", "buckets"} <= set(summary["findings"])
    assert set(summary["findings"]["ood_vs_id"]) == {"1", "10"}
    assert set(summary["genex_offsets"]) == {"test_pairs", "unseen_canaries"}
    for offset in summary["genex_offsets"].values():
        assert offset["ci_low"] <= offset["mean"] <= offset["ci_high"]
    assert summary["genex_offsets"]["test_pairs"]["n"] == 12 and summary["genex_offsets"]["unseen_canaries"]["n"] == 20

    metrics = list(read_jsonl(run.dir / "metrics.jsonl"))
    steps = {m["step"] for m in metrics if m["task"] == "id_x10" and m["stage"] == "unlearn" and m["metric"] == "genex_mean"}
    last = summary["groups"]["id_x10"]["steps_run"]
    assert steps == set(range(0, last + 1, 2)) | {last}
    utility_steps = {m["step"] for m in metrics if m["task"] == "id_x10" and m["split"] == "test" and m["metric"] == "loss"}
    assert utility_steps == steps  # utility tracked at every evaluation
    assert any(m["stage"] == "train_original" and m["metric"] == "loss" for m in metrics)
    examples = list(read_jsonl(run.dir / "examples.jsonl"))
    baseline = [e for e in examples if e["stage"] == "baseline"]
    assert len(baseline) == 24 and {"memorization", "difficulty", "difficulty_bucket"} <= set(baseline[0])
    plots = {p.name for p in (run.dir / "plots").iterdir()}
    assert {"exposure_vs_step.png", "genex_vs_step.png", "tradeoff.png", "utility_vs_step.png", "exposure_before.png",
            "memorization_difficulty.png", "buckets_tradeoff.png"} <= plots

    again = run_experiment(build_config(RAW), tmp_path)
    assert again.dir == run.dir and json.loads((again.dir / "summary.json").read_text()) == summary


def test_gradient_ascent_divergence_raises(tiny):
    model, tokenizer = tiny
    items = encode_pairs(tokenizer, [Pair(f"p{i}", "My secret is ", f"abc{i}") for i in range(4)], 1024, eos=False)
    spec = OptimSpec(method="gradient_ascent", reduction="sum", lr=1e30, max_steps=20, batch_size=4, max_grad_norm=None)
    with pytest.raises(DivergenceError):
        train_items(model, items, METHODS.get("gradient_ascent")(reduction="sum"), spec,
                    pad_id=tokenizer.pad_token_id, seed=0, accelerator=Accelerator(cpu=True))


def test_diverged_unlearning_is_reported_and_not_recorded(tmp_path):
    raw = copy.deepcopy(RAW)
    raw.update(name="tiny_b_diverge", buckets={"groups": []}, groups={"repetitions": [3], "per_group": 4})
    raw["unlearn"].update(lr=1e30, max_grad_norm=None, max_steps=10, stop={"rules": []}, batch_sizes=[4, 2])
    run = run_experiment(build_config(raw), tmp_path)
    summary = json.loads((run.dir / "summary.json").read_text())
    assert set(summary["groups"]) == {f"{g}@bs{b}" for g in ("ood_x3", "id_x3") for b in (4, 2)}
    for group in summary["groups"].values():
        assert group["status"] == "diverged"
        assert "nan" in group["error"].lower() or "inf" in group["error"].lower()
        assert "genex_after" not in group and "utility_after" not in group
    metrics = list(read_jsonl(run.dir / "metrics.jsonl"))
    assert not [m for m in metrics if m["stage"] == "unlearn"]
    assert summary["findings"]["ood_vs_id"] == {}


def test_other_registered_methods_get_retain_batches(tmp_path):
    raw = copy.deepcopy(RAW)
    raw.update(name="tiny_b_gd", buckets={"groups": []}, groups={"repetitions": [2], "per_group": 3, "kinds": ["id"]})
    raw["unlearn"].update(method="grad_diff", max_steps=2, eval_every=1)
    raw["eval"].update(bleu_size=0, neighbors=0)
    summary = json.loads((run_experiment(build_config(raw), tmp_path).dir / "summary.json").read_text())
    group = summary["groups"]["id_x2"]
    assert group["status"] == "ok" and group["steps_run"] <= 2 and "bleu" not in group["utility_before"]
    assert group["nearby"] == {}


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="buckets.groups"):
        build_config(dict(RAW, buckets={"groups": ["id_x7"]}))
    with pytest.raises(ConfigError, match="utility_size"):
        build_config(dict(RAW, eval=dict(RAW["eval"], utility_size=99)))
    with pytest.raises(ConfigError, match="max_steps"):
        build_config(dict(RAW, unlearn=dict(RAW["unlearn"], max_steps=None)))
    with pytest.raises(ConfigError, match="colour"):
        build_config(dict(RAW, colour="blue"))
    with pytest.raises(KeyError, match="unlearn.method"):
        run_experiment(build_config(dict(RAW, unlearn=dict(RAW["unlearn"], method="no_such_method"))), tmp_path)
    with pytest.raises(KeyError, match="corpus.name"):
        run_experiment(build_config(dict(RAW, corpus={"name": "no_such_corpus"})), tmp_path)
    assert torch.get_num_threads() >= 1
