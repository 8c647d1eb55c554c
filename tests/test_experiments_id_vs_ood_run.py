"""The id_vs_ood runner end to end on a tiny from-scratch model and a generated corpus: stages, summary, plots,
divergence, retain batches; and its values: a canary trained 100 times is exposed, gradient ascent brings it
back to the never-seen level, per-step wiring checked by hand against the baseline scores, the reference trains
as long as the original, and identical runs write identical summaries."""

import copy
import json
import math

import pytest
from accelerate import Accelerator

from forgetlab.config import OptimSpec
from forgetlab.data.types import Pair
from forgetlab.experiments import build_config, run_experiment
from forgetlab.train import encode_pairs
from forgetlab.methods import METHODS
from forgetlab.store import read_jsonl
from forgetlab.train import DivergenceError, train_items

GROUP_FIELDS = {
    "status", "steps_to_unlearn", "steps_to_unlearn_by", "utility_before", "utility_at_unlearned", "utility_after",
    "utility_lost", "genex_before", "genex_after", "relexp_rank_before", "relexp_rank_after", "relexp_change_after", "nearby",
}


def test_tiny_recipe_end_to_end(tmp_path, tiny_id_vs_ood):
    run = run_experiment(build_config(tiny_id_vs_ood), tmp_path)
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
    plots = {p.name for p in (run.dir / "report").iterdir()}
    assert {"exposure_vs_step.png", "genex_vs_step.png", "tradeoff.png", "utility_vs_step.png", "exposure_before.png",
            "memorization_difficulty.png", "buckets_tradeoff.png"} <= plots

    again = run_experiment(build_config(tiny_id_vs_ood), tmp_path)
    assert again.dir == run.dir and json.loads((again.dir / "summary.json").read_text()) == summary


def test_gradient_ascent_divergence_raises(tiny):
    model, tokenizer = tiny
    items = encode_pairs(tokenizer, [Pair(f"p{i}", "My secret is ", f"abc{i}") for i in range(4)], 1024, eos=False)
    spec = OptimSpec(method="gradient_ascent", reduction="sum", lr=1e30, max_steps=20, batch_size=4, max_grad_norm=None)
    with pytest.raises(DivergenceError):
        train_items(model, items, METHODS.get("gradient_ascent")(reduction="sum"), spec,
                    pad_id=tokenizer.pad_token_id, seed=0, accelerator=Accelerator(cpu=True))


def test_diverged_unlearning_is_reported_and_not_recorded(tmp_path, tiny_id_vs_ood):
    raw = tiny_id_vs_ood
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


def test_other_registered_methods_get_retain_batches(tmp_path, tiny_id_vs_ood):
    raw = tiny_id_vs_ood
    raw.update(name="tiny_b_gd", buckets={"groups": []}, groups={"repetitions": [2], "per_group": 3, "kinds": ["id"]})
    raw["unlearn"].update(method="grad_diff", max_steps=2, eval_every=1)
    raw["eval"].update(bleu_size=0, neighbors=0)
    summary = json.loads((run_experiment(build_config(raw), tmp_path).dir / "summary.json").read_text())
    group = summary["groups"]["id_x2"]
    assert group["status"] == "ok" and group["steps_run"] <= 2 and "bleu" not in group["utility_before"]
    assert group["nearby"] == {}


# --- values: exposure, relative exposure and the reference's training, against hand computations ---------

LOG2_E = math.log2(math.e)
N_REFERENCES = 200
VALUES_RECIPE = {
    "experiment": "id_vs_ood",
    "name": "tiny_b_values",
    "cpu_threads": 1,
    "model": "scratch",
    "scratch": {"vocab_size": 400, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_length": 96},
    "corpus": {"name": "synthetic_translation", "synthetic_sizes": {"train": 200, "validation": 20, "test": 20}},
    "train_size": 100,
    "test_size": 16,
    "canaries": {"n_references": N_REFERENCES, "n_unseen": 50},
    "groups": {"repetitions": [1, 100], "per_group": 4, "kinds": ["ood", "id"]},
    "train": {"epochs": 1, "batch_size": 32, "lr": 3e-3, "warmup_steps": 2},
    "unlearn": {"lr": 1.5e-3, "max_steps": 10, "batch_size": 4, "eval_every": 1, "stop": {"rules": []}},
    "eval": {"utility_size": 12, "bleu_size": 0, "neighbors": 0, "heldout_size": 8},
    "save_models": False,
}


@pytest.fixture(scope="module")
def values_run(tmp_path_factory, one_thread):
    run = run_experiment(build_config(VALUES_RECIPE), tmp_path_factory.mktemp("values"))
    stage = lambda key: json.loads((run.dir / "stages" / f"{key}.json").read_text())  # noqa: E731
    return run, json.loads((run.dir / "summary.json").read_text()), stage


def _hand_exposure(ll: float, reference_lls: list[float]) -> float:
    """Secret sharer exposure by counting: rank = 1 + references at least as likely, space = references + 1."""
    rank = 1 + sum(1 for r in reference_lls if r >= ll)
    return math.log2(len(reference_lls) + 1) - math.log2(rank)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_a_canary_trained_100_times_is_exposed_and_gradient_ascent_brings_it_to_log2e(values_run):
    _, summary, stage = values_run
    unseen = summary["exposure_baselines"]["unseen_original"]
    assert abs(unseen - LOG2_E) < 0.5  # 50 never-seen canaries: mean ≈ log2 e (standard error ≈ 0.2)
    history = [h["forget"]["exposure_mean"] for h in stage("unlearn/ood_x100")["history"]]
    assert len(history) == 11
    assert history[0] == pytest.approx(summary["before"]["ood_x100"]["exposure_original"])
    assert history[0] > unseen + 4.5  # max possible: log2(201) = 7.65 bits
    # gradient ascent brings it down, step after step, to the never-seen level (and past it, if left to run)
    reached = next(step for step, e in enumerate(history) if e <= LOG2_E + 0.5)
    assert reached >= 2 and all(b < a for a, b in zip(history[: reached + 1], history[1 : reached + 1]))
    assert history[reached] > LOG2_E - 1


def test_step_zero_exposure_and_relative_exposure_match_a_hand_computation(values_run):
    _, _, stage = values_run
    scores = stage("baseline")["scores"]["original"]  # step 0 evaluates the original weights
    refs_ll = scores["references"][0]
    relatives = []
    for name in ("ood_x1", "ood_x100", "id_x1", "id_x100"):
        pool = list(zip(*(scores["references"] if name.startswith("ood") else scores["test"])))
        ll, n = scores["groups"][name]
        first = stage(f"unlearn/{name}")["history"][0]["forget"]
        # relative exposure (a): the item's per-token log-perplexity ranked among the pool's, same model
        relative = [
            math.log2(len(pool) + 1) - math.log2(1 + sum(1 for pl, pn in pool if -pl / pn <= -x / k)) for x, k in zip(ll, n)
        ]
        assert first["relexp_rank_mean"] == pytest.approx(_mean(relative), abs=1e-9), name
        assert first["relexp_change_mean"] == pytest.approx(0.0, abs=1e-4), name
        relatives.append(_mean(relative))
        if name.startswith("ood"):
            assert first["exposure_mean"] == pytest.approx(_mean([_hand_exposure(x, refs_ll) for x in ll]), abs=1e-9)
    assert max(relatives) - min(relatives) > 1  # not all at one extreme rank: the pooling is really tested
    assert len(refs_ll) == N_REFERENCES


def test_reference_model_trains_as_many_steps_on_stand_ins(values_run):
    _, summary, stage = values_run
    original, reference = summary["training"]["original"], summary["training"]["reference"]
    assert original["forget_items"] == reference["stand_in_items"] == 2 * 4 * (1 + 100)
    assert reference["forget_items"] == 0 and original["stand_in_items"] == 0
    assert reference["items"] == original["items"] == 100 + 808
    assert reference["steps"] == original["steps"] == math.ceil(908 / 32)
    data, chosen = stage("data"), stage("train/reference")["stand_ins"]
    forget = {p["pair_id"] for g in data["groups"] for p in g["items"]}
    spares = {p["pair_id"] for kind in ("ood", "id") for p in data["spares"][kind]}
    others = {p["pair_id"] for key in ("base", "references", "unseen", "test", "heldout") for p in data[key]}
    assert set(chosen) == forget and len(set(chosen.values())) == 16 and set(chosen.values()) <= spares
    assert not spares & (forget | others)
    assert len(data["spares"]["ood"]) == 32 * 8 and len(data["spares"]["id"]) == 200 - 8 - 100  # 32 per item, or all left
    assert summary["reference_stream"] == "replace" and summary["exposure_convention"] == "forgetlab"


def _has_key(obj, key: str) -> bool:
    if isinstance(obj, dict):
        return key in obj or any(_has_key(v, key) for v in obj.values())
    return isinstance(obj, list) and any(_has_key(v, key) for v in obj)


def test_identical_runs_write_byte_identical_summaries(values_run, tmp_path):
    run, summary, _ = values_run
    assert not _has_key(summary, "seconds")
    timings = json.loads((run.dir / "timings.json").read_text())
    assert timings["total_seconds"] > 0 and {"data", "train/original", "baseline", "unlearn/ood_x100"} <= set(timings["stages"])
    again = run_experiment(build_config(copy.deepcopy(VALUES_RECIPE)), tmp_path)
    assert again.dir != run.dir and again.id == run.id
    assert (again.dir / "summary.json").read_bytes() == (run.dir / "summary.json").read_bytes()
