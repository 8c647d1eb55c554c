"""Study B values end to end on a tiny from-scratch run: a canary trained 100 times is exposed, gradient
ascent brings it back to the never-seen level, per-step wiring checked by hand against the baseline
scores, the reference trains as long as the original, and identical runs write identical summaries."""

import copy
import json
import math

import pytest

from forgetlab.experiments import build_config
from forgetlab.experiments import run_experiment

LOG2_E = math.log2(math.e)
N_REFERENCES = 200
RAW = {
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
    run = run_experiment(build_config(RAW), tmp_path_factory.mktemp("values"))
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
    again = run_experiment(build_config(copy.deepcopy(RAW)), tmp_path)
    assert again.dir != run.dir and again.id == run.id
    assert (again.dir / "summary.json").read_bytes() == (run.dir / "summary.json").read_bytes()
