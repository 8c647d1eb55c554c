"""The ``unlearn`` runner and experiment (experiments/unlearn/run.py) on a tiny random model: validation, runs,
selection, every method, trainable parameters, resume."""

import copy
import json

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

import forgetlab.train as train
from forgetlab.experiments import build_config
from forgetlab.experiments import EXPERIMENTS, run_experiment
from forgetlab.experiments.unlearn import (
    Evaluator, ForgetMethodSpec, Selection, UnlearnRunner, build_method, metric_names, restrict_trainable, sets_from_stage,
    trainable_pattern,
)
from forgetlab.store import RunStore, read_jsonl
from tests.conftest import unlearn_raw_config


pytestmark = pytest.mark.usefixtures("one_thread")


def test_validation_errors_name_the_field():
    with pytest.raises(ValueError, match="forget.options.*unknown options"):
        EXPERIMENTS.get("unlearn").validate(build_config(unlearn_raw_config("npo", options={"betta": 1})))
    raw = unlearn_raw_config("grad_diff")
    del raw["sets"]["retain"]
    with pytest.raises(ValueError, match="sets.retain: method grad_diff needs a retain set"):
        EXPERIMENTS.get("unlearn").validate(build_config(raw))
    with pytest.raises(ValueError, match="relabels multiple-choice"):
        EXPERIMENTS.get("unlearn").validate(build_config(unlearn_raw_config("random_label")))
    raw = unlearn_raw_config()
    raw["select"] = {"objective": "mia/loss_auc_gapp"}
    with pytest.raises(ValueError, match="unknown metric 'mia/loss_auc_gapp'.*mia/loss_auc_gap"):
        EXPERIMENTS.get("unlearn").validate(build_config(raw))
    with pytest.raises(KeyError, match="forget.method"):
        EXPERIMENTS.get("unlearn").validate(build_config(unlearn_raw_config("nope")))


# --------------------------------------------------------------------------- runs


def test_run_records_trajectory_selects_and_keeps_the_selected_weights(tmp_path):
    raw = unlearn_raw_config(max_steps=4, eval_every=1, lr=5e-4)
    raw["learn"] = {"lr": 1e-2, "max_steps": 3, "batch_size": 8}
    raw["select"] = {"objective": "forget/loss", "constraints": [{"metric": "utility/loss", "max_rel": 1.04}]}
    config = build_config(raw)
    run = run_experiment(config, tmp_path)
    summary = json.loads((run.dir / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["learn_steps"] == 3 and summary["method"] == "gradient_ascent"
    assert summary["sizes"] == {"forget": 8, "holdout": 8, "retain": 8, "utility": 6}
    history = summary["selection"]["history"]
    assert [h["step"] for h in history] == [0, 1, 2, 3, 4] and not history[0]["feasible"]
    start = summary["metrics"]["start"]
    feasible = [h for h in history if h["feasible"]]
    assert summary["metrics"]["final"]["forget/loss"] > start["forget/loss"]  # ascent raised it
    assert 0 < len(feasible) < 4  # the constraint rules out the later steps
    best = max(feasible, key=lambda h: h["objective"])
    assert best["step"] < 4
    assert summary["selected_step"] == best["step"]
    assert summary["selected"]["forget_loss"] == pytest.approx(best["objective"])
    assert summary["metrics"]["selected"]["utility/loss"] <= 1.04 * start["utility/loss"]

    metrics = list(read_jsonl(run.dir / "metrics.jsonl"))
    steps = sorted({m["step"] for m in metrics if m["stage"] == "unlearn" and m["metric"] == "min_k_pp_auc"})
    assert steps == [0, 1, 2, 3, 4]
    assert len([m for m in metrics if m["stage"] == "learn" and m["metric"] == "loss"]) == 3
    examples = list(read_jsonl(run.dir / "examples.jsonl"))
    assert {e["split"] for e in examples} == {"forget", "holdout", "retain", "utility"}
    assert {"mia_min_k_pp", "verbatim", "prefix_match", "token_acc"} <= set(next(e for e in examples if e["split"] == "forget"))
    assert (run.dir / "report" / "unlearning.png").is_file() and 'id="headline"' in (run.dir / "report.html").read_text()

    # the kept weights are those of the selected step: re-evaluating them reproduces its metrics
    weights = run.dir / summary["selection"]["weights"]
    assert weights.name == f"selected-step{best['step']}.safetensors"
    assert len(list(weights.parent.glob("selected-step*.safetensors"))) == 1
    runner = UnlearnRunner(config, run, Accelerator(cpu=True))
    runner.load(learned=False)
    runner.model.load_state_dict(load_file(str(weights)))
    runner.model.eval()
    sets = {name: runner.eval_set(items, 1024) for name, items in sets_from_stage(run.stage("data")).items()}
    selection = Selection(config.select, tmp_path / "scratch.json")
    selection.state["start_losses"] = json.loads((run.dir / "stages" / "unlearn" / "selection.json").read_text())["start_losses"]
    again, _ = Evaluator(runner, sets, selection).evaluate(step=best["step"])
    for key, value in summary["metrics"]["selected"].items():
        assert again[key] == pytest.approx(value, abs=1e-5), key

    mtime = (run.dir / "summary.json").stat().st_mtime_ns
    assert run_experiment(config, tmp_path).dir == run.dir  # found, not redone
    assert (run.dir / "summary.json").stat().st_mtime_ns == mtime

    # another method on the same items reuses the learning stage: same learned weights, same start
    raw["forget"]["method"] = "simnpo"
    other = run_experiment(build_config(raw), tmp_path)
    assert other.stage("learn")["shared"] == run.stage("learn")["key"]
    learned = [load_file(str(r.dir / "stages" / "learn" / "learned.safetensors")) for r in (run, other)]
    assert all(torch.equal(learned[0][k], learned[1][k]) for k in learned[0])
    assert other.summary()["metrics"]["start"] == summary["metrics"]["start"]


def _tiny(lora=False):
    """The run's model before unlearning (with LoRA: the adapters as seeded by the run, seed 0)."""
    from forgetlab.models import LoraSpec, ModelSpec, load_model

    torch.manual_seed(0)
    return load_model(ModelSpec(name="tiny-llama", lora=LoraSpec(r=2, alpha=4) if lora else None))[0]


def test_lora_npo_uses_a_reference_and_a_separate_mia_reference_model(tmp_path, monkeypatch):
    copies = []  # models deep-copied by the training loop (its frozen reference)
    original_deepcopy = copy.deepcopy

    def spy(obj, *args):
        if isinstance(obj, torch.nn.Module) and not args:  # top-level calls (recursive ones pass a memo)
            copies.append(type(obj).__name__)
        return original_deepcopy(obj, *args)

    monkeypatch.setattr(train.copy, "deepcopy", spy)
    raw = unlearn_raw_config("npo", options={"beta": 0.5, "retain_weight": 1.0})
    raw["model"]["lora"] = {"r": 4, "alpha": 8}
    raw["mia"] = {"bootstrap": 0, "reference": {"name": "tiny-llama", "tiny": {"seed": 3}}, "k": 0.5}
    raw["eval"]["extraction"] = False
    run = run_experiment(build_config(raw), tmp_path)
    summary = json.loads((run.dir / "summary.json").read_text())
    assert copies == ["PeftModelForCausalLM"]  # the frozen reference, once
    assert summary["lora"] and summary["options"] == {"beta": 0.5, "retain_weight": 1.0}
    keys = load_file(str(run.dir / "stages" / "unlearn" / "final.safetensors")).keys()
    assert keys and all("lora_" in k for k in keys)
    start = summary["metrics"]["start"]
    assert "mia/ref_auc" in start and "mia/ref_auc_ci_low" not in start and "forget/verbatim" not in start
    assert summary["metrics"]["final"]["forget/loss"] > start["forget/loss"]

    copies.clear()
    run_experiment(build_config(unlearn_raw_config("simnpo", max_steps=1, eval_every=1)), tmp_path / "b")
    assert copies == []  # SimNPO has no reference model


@pytest.mark.parametrize("method, options, lora", [
    ("grad_diff", {"retain_loss": "kl"}, False), ("idk", {}, True), ("idk_dpo", {"beta": 0.5}, True),
    ("rmu", {"layer": 1, "steering_coeff": 4.0}, True), ("rmu", {"layer": 1}, False),
])
def test_every_method_runs_and_records(tmp_path, method, options, lora):
    raw = unlearn_raw_config(method, options=options, max_steps=1, eval_every=1)
    if lora:
        raw["model"]["lora"] = {"r": 2, "alpha": 4}
    raw["sets"]["forget"]["size"] = 4
    raw["eval"]["extraction"] = False
    raw["mia"] = {"bootstrap": 0, "attacks": ["loss"]}
    run = run_experiment(build_config(raw), tmp_path)
    summary = run.summary()
    kept = load_file(str(run.dir / "stages" / "unlearn" / "final.safetensors"))
    assert all("lora_" in k for k in kept) if lora else len(kept) == len(list(train.trainable_state(_tiny())))
    if method == "rmu":  # RMU's default: only the mlp.down_proj weights of layers ℓ−2..ℓ = 0, 1 move
        # (with LoRA their adapters; lora_A gets no gradient while lora_B is still 0 at the first step)
        prefix, suffix = ("base_model.model.model", ".lora_B.default.weight") if lora else ("model", ".weight")
        assert moved(kept, lora) == {f"{prefix}.layers.{i}.mlp.down_proj{suffix}" for i in (0, 1)}
    assert summary["steps"] == 1 and summary["selected_step"] == 1
    assert summary["final"]["forget_loss"] != summary["start"]["forget_loss"]
    assert set(summary["metrics"]["final"]) == set(metric_names(build_config(raw)))


def moved(kept, lora=False):
    """Names of the kept tensors that differ from the freshly loaded model's."""
    start = dict(_tiny(lora).named_parameters())
    return {k for k, v in kept.items() if not torch.equal(v, start[k])}


def test_trainable_regex_overrides_the_method_default(tmp_path):
    raw = unlearn_raw_config("rmu", options={"layer": 1}, max_steps=1, eval_every=1, trainable=r"layers\.0\.mlp\.(up|gate)_proj")
    raw["sets"]["forget"]["size"] = 4
    raw["eval"]["extraction"] = False
    raw["mia"] = {"bootstrap": 0, "attacks": ["loss"]}
    run = run_experiment(build_config(raw), tmp_path)
    assert moved(load_file(str(run.dir / "stages" / "unlearn" / "final.safetensors"))) == {
        "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.gate_proj.weight"
    }


def test_killed_unlearning_resumes_identically(tmp_path, monkeypatch):
    raw = unlearn_raw_config(max_steps=4, eval_every=1, checkpoint_every=2)
    raw["eval"]["extraction"] = False
    config = build_config(raw)
    first = run_experiment(config, tmp_path / "a").summary()

    # killed after the evaluation at step 3, i.e. after the checkpoint at step 2: the resumed run
    # restarts from step 2 and must replace (not duplicate) what step 3 had recorded
    evaluate = Evaluator.__call__

    def evaluate_then_stop(self, step):
        rows = evaluate(self, step)
        if step == 3:
            raise KeyboardInterrupt
        return rows

    monkeypatch.setattr(Evaluator, "__call__", evaluate_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "b")
    monkeypatch.setattr(Evaluator, "__call__", evaluate)
    store = RunStore(tmp_path / "b")
    run = store.find("tiny")
    store.fail(run, "killed")
    assert json.loads((run.dir / "stages" / "unlearn-checkpoint" / "state.json").read_text())["steps"] == 2
    recorded = json.loads((run.dir / "stages" / "unlearn" / "selection.json").read_text())["history"]
    assert [h["step"] for h in recorded] == [0, 1, 2, 3]
    second = run_experiment(config, tmp_path / "b").summary()
    for key in ("selection", "metrics", "selected_step", "start", "final", "selected"):
        assert _close(second[key], first[key]), key
    assert not (run.dir / "stages" / "unlearn-checkpoint").exists()
    assert len(list((run.dir / "stages" / "unlearn").glob("selected-step*.safetensors"))) == 1


def _close(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == pytest.approx(b, abs=1e-5)
    return a == b


def test_rmu_default_with_lora_needs_adapters_on_down_proj():
    """Under LoRA RMU trains the down_proj adapters; adapters elsewhere only leave nothing to train (an error)."""
    from forgetlab.models import LoraSpec, ModelSpec, load_model

    model, _ = load_model(ModelSpec(name="tiny-llama", lora=LoraSpec(r=2, alpha=4, target_modules=["q_proj", "v_proj"])))
    spec = ForgetMethodSpec(method="rmu", options={"layer": 1})
    pattern, origin = trainable_pattern(spec, build_method(spec), model)
    with pytest.raises(ValueError, match="method rmu's default trainable parameters .* matches no trainable parameter"):
        restrict_trainable(model, pattern, origin)
