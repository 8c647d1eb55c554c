"""Study A analyses wired into the pipeline, on a tiny random model: predictors, order, probes, variants."""

import json

import numpy as np
import pytest
from safetensors.torch import load_file

from forgetlab.analysis.order import first_crossing
from forgetlab.experiments import build_config
from forgetlab.experiments import run_experiment
from forgetlab.models import load_model
from forgetlab.scoring import Scorer
from forgetlab.store import read_jsonl
from tests.conftest import STUDY_A_ANALYSIS_RAW


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run = run_experiment(build_config(dict(STUDY_A_ANALYSIS_RAW, experiment="forget_generalization")), root)
    return run, json.loads((run.dir / "summary.json").read_text())


def test_task_level_predictors_are_recorded_and_recomputable(study):
    run, summary = study
    task = summary["tasks"]["synth_compare"]
    predictors = task["predictors"]
    assert predictors["difficulty"] == task["acc_finetuned"]
    assert predictors["hidden_layer"] == 2  # -1 on a 2-layer model
    forget_pt = [e["confidence"] for e in read_jsonl(run.dir / "examples.jsonl")
                 if e["task"] == "synth_compare" and e["stage"] == "pretrained" and e["split"] == "forget"]
    assert predictors["confidence_pretrained"] == pytest.approx(np.mean(forget_pt))
    # Independent recomputation of the variance from the saved fine-tuned weights.
    data = json.loads((run.dir / "stages" / "synth_compare" / "data.json").read_text())
    model, tokenizer = load_model("tiny-llama")
    model.load_state_dict(load_file(str(run.dir / "stages" / "synth_compare" / "finetuned.safetensors")), strict=False)
    prompts = [doc["contexts"][0] for doc in data["forget"]]
    states = Scorer(model, tokenizer).hidden_states(prompts, [2])[2].astype(np.float64)
    expected = float(np.cov(states, rowvar=False, ddof=1).trace())
    assert predictors["hidden_variance"] == pytest.approx(expected, rel=1e-4)
    assert set(task["item_predictors"]) == {"confidence_pretrained", "confidence_finetuned", "hidden_distance"}


def test_across_task_correlations_cover_every_predictor(study):
    _, summary = study
    correlations = summary["analysis"]["correlations"]
    assert set(correlations) >= {"difficulty", "confidence_pretrained", "confidence_finetuned", "hidden_variance"}
    # 16 fine-tuning items and 12 test items: neither task is learned (acc_FT's interval is not above
    # chance and acc_PT), so neither has a ratio and neither counts in the correlations
    tasks = summary["tasks"]
    for row in tasks.values():
        assert row["acc_finetuned_ci"][0] <= max(0.5, row["acc_pretrained"])
        assert row["category"] == "not_learned" and row["forget_ratio"] is None and not row["learned"]
    assert summary["analysis"]["excluded"] == list(tasks)
    assert all(c["n"] == 0 and c["pearson_r"] is None and c["excluded"] == list(tasks) for c in correlations.values())


def test_order_steps_match_the_trajectories(study):
    run, summary = study
    order = summary["tasks"]["synth_arith"]["order"]
    assert set(order) == {"forget", "test"}
    rows = [e for e in read_jsonl(run.dir / "examples.jsonl") if e["task"] == "synth_arith" and e["split"] == "test"]
    learn = {e["doc_id"]: [] for e in rows if e["stage"] == "finetune"}
    forget = {e["doc_id"]: [] for e in rows if e["stage"] == "forget"}
    for e in rows:
        {"finetune": learn, "forget": forget}.get(e["stage"], {}).setdefault(e["doc_id"], []).append((e["step"], e["confidence"]))
    expected = [[first_crossing(learn[i], 0.6, "up"), first_crossing(forget[i], 0.6, "down")] for i in sorted(learn)]
    assert order["test"]["steps"] == expected
    assert len(expected) == 6  # the trajectory test subset is scored in both stages
    assert {e["step"] for e in rows if e["stage"] == "finetune"} == {0, 2, 4}


def test_probes_sweep_the_asked_layers_for_each_model(study):
    _, summary = study
    probes = summary["tasks"]["synth_compare"]["probes"]
    assert probes["layers"] == [1, 2]
    for model in ("pretrained", "finetuned", "forgotten"):
        assert set(probes[model]) == {"1", "2"}
        for result in probes[model].values():
            assert result["n_pairs"] == 24 and result["c"] in (0.1, 1.0)
            assert 0.0 <= result["pair_acc"] <= 1.0


def test_a_missing_analysis_layer_fails_before_the_run_opens(tmp_path):
    raw = dict(STUDY_A_ANALYSIS_RAW, experiment="forget_generalization", tasks=["synth_compare"], analysis={"layer": -5})
    with pytest.raises(ValueError, match="analysis.layer"):
        run_experiment(build_config(raw), tmp_path)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # no catalog row, no run directory
    probes = dict(raw, analysis={"layer": -1, "probes": True, "probe_layers": [1, 7]})
    with pytest.raises(ValueError, match=r"analysis.probe_layers: .* got 7"):
        run_experiment(build_config(probes), tmp_path)


def test_variants_are_configuration_only(tmp_path):
    """Flipped labels, another forget-set size and LoRA: the same pipeline and analyses, switched by config."""
    raw = dict(
        STUDY_A_ANALYSIS_RAW,
        experiment="forget_generalization",
        tasks=["synth_compare"],
        model={"name": "tiny-llama", "lora": {"r": 4}},
        data=dict(STUDY_A_ANALYSIS_RAW["data"], forget_size=12),
        forget=dict(STUDY_A_ANALYSIS_RAW["forget"], method="flipped_label"),
        analysis={"layer": 0.5, "probes": True, "probe_layers": [1], "probe_cs": [1.0]},
    )
    run = run_experiment(build_config(raw), tmp_path)
    task = json.loads((run.dir / "summary.json").read_text())["tasks"]["synth_compare"]
    assert task["sizes"]["forget"] == 12
    # the tiny LoRA model does not learn the task: no ratio (the flipped formula on a learned task is
    # checked in test_cross_task_sweep_builds_the_matrix_and_resumes_by_cell)
    assert task["acc_finetuned_ci"][0] <= max(0.5, task["acc_pretrained"])
    assert task["category"] == "not_learned" and task["forget_ratio"] is None
    # Flipped labels are always the wrong answer: accuracy on them is 1 − accuracy on the true labels.
    assert task["acc_forget_train_labels"] == pytest.approx(1 - task["acc_forget_train"])
    saved = load_file(str(run.dir / "stages" / "synth_compare" / "forgotten.safetensors"))
    assert saved and all("lora_" in name for name in saved)
    assert task["predictors"]["hidden_layer"] == 1 and set(task["probes"]["forgotten"]) == {"1"}
