"""The compute block (precision.py): autocast and TF32 for a run's duration, tokens per scoring pass, identity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from forgetlab.attacks.logit_lens import lens_logprobs
from forgetlab.config import ComputeSpec, ConfigError, OptimSpec
from forgetlab.experiments import build_config, load_config, run_experiment
from forgetlab.experiments.base import EXPERIMENTS, run_identity
from forgetlab.methods import METHODS
from forgetlab.models import load_model
from forgetlab.precision import compute_context, device_name, forward_autocast
from forgetlab.scoring import Scorer
from forgetlab.scoring.generate import greedy_generate
from forgetlab.train import encode_items, train_items

from .conftest import STUDY_A_RAW, make_docs

BF16 = ComputeSpec(mixed_precision="bf16")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# The fingerprint of the recipe below as forgetlab computed it before the compute block existed
# (RESULTS_VERSION 4). Runs made earlier must keep their ids, so that they are found and resume.
FINGERPRINT_V4 = "7ace7db1aa6c87bfc3cd05ac3bde71c95eac97b51e54056e43a579a448fa6ee8"
REQUESTS = [("The cat sat on", " the mat"), ("The cat sat on", " a hat"), ("Once upon a time there", " was")]


def identity(**compute):
    config = build_config({
        "experiment": "forget_generalization", "model": {"name": "tiny-llama"}, "tasks": ["synth_compare"],
        "cpu_threads": 2, **({"compute": compute} if compute else {}),
    })
    return run_identity(config, EXPERIMENTS.get("forget_generalization"), 1)


def test_the_default_compute_keeps_the_ids_runs_had_before_the_block():
    assert identity().fingerprint == FINGERPRINT_V4
    assert identity(mixed_precision="no", tf32=False, score_tokens=2048).fingerprint == FINGERPRINT_V4


@pytest.mark.parametrize("change", [{"mixed_precision": "bf16"}, {"tf32": True}, {"score_tokens": 4096}])
def test_any_other_compute_is_part_of_the_identity_and_recorded(change):
    changed = identity(**change)
    assert changed.fingerprint != FINGERPRINT_V4
    (key, value), = change.items()
    assert changed.record["config"]["compute"][key] == value
    assert identity().record["config"]["compute"] == ComputeSpec().model_dump()


@pytest.mark.parametrize("bad, field", [({"mixed_precision": "fp8"}, "mixed_precision"), ({"score_tokens": 0}, "score_tokens"),
                                        ({"tf23": True}, "tf23")])
def test_bad_compute_options_are_named(bad, field):
    with pytest.raises(ConfigError, match=f"compute.{field}"):
        build_config({**STUDY_A_RAW, "compute": bad})


def test_forward_passes_autocast_inside_a_bf16_run_only():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with compute_context(BF16, "cpu"):
        with forward_autocast("cpu"):
            assert (a @ b).dtype == torch.bfloat16
        assert (a @ b).dtype == torch.float32  # backward passes and optimizer steps run outside autocast
    with forward_autocast("cpu"):
        assert (a @ b).dtype == torch.float32
    with compute_context(ComputeSpec(), "cpu"), forward_autocast("cpu"):
        assert (a @ b).dtype == torch.float32


def test_tf32_is_set_for_the_duration_and_restored():
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        with compute_context(ComputeSpec(), "cpu"):
            assert torch.backends.cuda.matmul.allow_tf32 is False  # a run without tf32 is full fp32 whatever came before
        assert torch.backends.cuda.matmul.allow_tf32 is True
        torch.backends.cuda.matmul.allow_tf32 = False
        with compute_context(ComputeSpec(tf32=True), "cpu"):
            assert torch.backends.cuda.matmul.allow_tf32 is True
            assert torch.backends.cudnn.allow_tf32 is True
        assert torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_bf16_scores_move_by_rounding_only(one_thread, tiny):
    model, tokenizer = tiny
    scorer = Scorer(model, tokenizer, batch_size=4)
    full = [r.logprob for r in scorer.loglikelihood(REQUESTS)]
    with compute_context(BF16, "cpu"):
        half = [r.logprob for r in scorer.loglikelihood(REQUESTS)]
    diffs = [abs(f - h) for f, h in zip(full, half)]
    assert max(diffs) > 1e-6  # autocast really ran the products in bf16 ...
    assert max(diffs) < 0.05 * max(abs(f) for f in full)  # ... and bf16's 8-bit mantissa moves them by < 1 %


def test_bf16_training_keeps_fp32_weights_and_follows_fp32_training(one_thread):
    spec = OptimSpec(method="finetune", lr=1e-3, batch_size=4, max_steps=4)

    def train(compute: ComputeSpec) -> tuple[list[float], torch.nn.Module]:
        model, tokenizer = load_model("tiny-llama")
        items = encode_items(tokenizer, make_docs(16), 64)
        with compute_context(compute, "cpu"):
            result = train_items(model, items, METHODS.get("finetune")(loss="answer"), spec, pad_id=tokenizer.pad_token_id,
                                 seed=0, accelerator=Accelerator(cpu=True), desc="test")
        return result.losses, model

    full_losses, full = train(ComputeSpec())
    half_losses, half = train(BF16)
    assert all(p.dtype == torch.float32 for p in half.parameters())
    assert all(torch.isfinite(p).all() for p in half.parameters())
    assert half_losses != full_losses
    # every step sees the weights the last one left (one autocast around all steps would reuse step 1's bf16 copies:
    # losses 5.550, 5.518, 5.545, 5.488 against fp32's 5.550, 5.455, 5.428, 5.307)
    assert half_losses == pytest.approx(full_losses, rel=2e-3)
    moved = max((a - b).abs().max().item() for a, b in zip(full.parameters(), half.parameters()))
    assert 0 < moved < 1e-2


def test_a_run_applies_its_compute_block(tmp_path, monkeypatch):
    seen = []
    init = Scorer.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        with forward_autocast("cpu"):
            seen.append((self.max_tokens_per_batch, (torch.randn(2, 2) @ torch.randn(2, 2)).dtype))

    monkeypatch.setattr(Scorer, "__init__", spy)
    probe = [{"name": "probe", "options": {"layers": [1], "cs": [1.0]}}]  # an attack builds its own Scorer
    raw = {**STUDY_A_RAW, "attacks": probe, "compute": {"mixed_precision": "bf16", "score_tokens": 96}}
    run = run_experiment(build_config(raw), tmp_path)
    assert len(seen) > 3 and set(seen) == {(96, torch.bfloat16)}
    assert "0-probe" in run.summary()["tasks"]["synth_compare"]["robustness"]["attacks"]
    assert run.summary()["tasks"]["synth_compare"]["acc_finetuned"] >= 0
    with forward_autocast("cpu"):
        assert (torch.randn(2, 2) @ torch.randn(2, 2)).dtype == torch.float32  # the block ended with the run


def test_device_names():
    assert device_name("cpu") == "cpu"
    assert device_name(torch.device("cpu")) == "cpu"


def test_the_logit_lens_and_generation_run_under_bf16(one_thread, tiny):
    model, tokenizer = tiny
    full = lens_logprobs(model, tokenizer, REQUESTS)
    with compute_context(BF16, "cpu"):
        half = lens_logprobs(model, tokenizer, REQUESTS)
        generated = greedy_generate(model, [tokenizer("The cat")["input_ids"]], 4, pad_id=tokenizer.pad_token_id, eos_id=None)
    assert half.shape == full.shape and 0 < abs(half - full).max() < 0.05 * abs(full).max()
    assert len(generated[0]) == 4


@pytest.mark.parametrize("recipe", ["study_a_analysis.yaml", "tofu.yaml", "muse_news.yaml"])
def test_the_runs_a_run_starts_compute_as_it_does(recipe):
    compute = ["compute.mixed_precision=bf16", "compute.tf32=true", "compute.score_tokens=8192"]
    config = load_config(CONFIGS / recipe, compute + (["experiment=cross_task"] if "study_a" in recipe else []))
    parts = EXPERIMENTS.get(config.experiment).parts(config)
    assert len(parts) >= 2
    assert all(part.config.compute == config.compute != ComputeSpec() for part in parts)
