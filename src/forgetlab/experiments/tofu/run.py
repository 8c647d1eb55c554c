"""The TOFU runners: :class:`FinetuneRunner` (``tofu_finetune``: data → fine-tune → evaluate) and
:class:`TofuRunner` (``tofu``: the two fine-tuning runs → unlearn → evaluate → forget quality)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from forgetlab.experiments.base import StagedRunner, finished_stage, run_experiment
from forgetlab.experiments.tofu.config import TofuConfig, TofuFinetuneConfig
from forgetlab.experiments.tofu.data import Renderer, TofuSets, encode, load_sets, sets_from_stage, sets_to_stage
from forgetlab.experiments.tofu.evaluate import evaluate_model, with_forget_quality
from forgetlab.experiments.unlearn.run import finetune_stage, forget_stage
from forgetlab.models import load_model
from forgetlab.scoring import resolve_max_length


class TofuStages(StagedRunner):
    """What both runners share: the model with its renderer, encoding, and the evaluation stage."""

    config: TofuFinetuneConfig | TofuConfig

    def load(self) -> None:
        torch.manual_seed(self.config.seed)  # LoRA adapters are initialised from the global generator
        self.model, self.tokenizer = load_model(self.config.model, self.accelerator.device)
        self.renderer = Renderer(self.tokenizer, self.config.data)
        self.max_length = resolve_max_length(self.model.config, self.tokenizer)

    def encoded(self, items: list[Any], method: Any = None) -> list[Any]:
        return encode(self.tokenizer, self.renderer, items, method, self.config.seed, self.max_length, self.config.eval)

    def evaluation(self, sets: TofuSets) -> dict[str, Any]:
        """The ``eval`` stage: every TOFU number of the current model."""
        return self.stage("eval", lambda: evaluate_model(
            self.model, self.tokenizer, self.scorer, self.renderer, sets.eval, self.config.eval
        ))


class FinetuneRunner(TofuStages):
    """Fine-tune on the forget and retain authors (``learn: full``) or the retain authors only; keep the weights;
    evaluate."""

    config: TofuFinetuneConfig

    def run(self) -> dict[str, Any]:
        sets = sets_from_stage(self.stage("data", lambda: sets_to_stage(load_sets(self.config.data))))
        self.load()
        learned = self.stage("learn", lambda: self._learn(sets))
        self.load_weights(self.model, "finetuned")
        evaluation = self.evaluation(sets)
        self.save_timings()
        return {
            "experiment": self.config.experiment, "run": self.run_.id, "model": self.config.model.name,
            "learn": self.config.learn, "prompt": self.config.data.prompt,
            "sizes": {"learned": {"forget": len(sets.forget), "retain": len(sets.retain)},
                      "evaluated": {k: len(v) for k, v in sets.eval.items()}},
            "steps": learned["steps"], "final_loss": learned["losses"][-1] if learned["losses"] else None,
            "metrics": evaluation["metrics"],
        }

    def _learn(self, sets: TofuSets) -> dict[str, Any]:
        items = (sets.forget if self.config.learn == "full" else []) + sets.retain
        return finetune_stage(self, self.config.finetune, self.encoded(items), f"fine-tune on TOFU ({self.config.learn})")


class TofuRunner(TofuStages):
    """The target model unlearns the forget authors; every TOFU number before and after, forget quality against
    the retain model's forget truth ratios."""

    config: TofuConfig

    def run(self) -> dict[str, Any]:
        config, runs_dir = self.config, self.run_.dir.parent
        command = f"tofu {self.run_.id}"
        target = run_experiment(config.part("full"), runs_dir, command=command, accelerator=self.accelerator)
        retain = None
        if config.reference == "retain_model":
            retain = run_experiment(config.part("retain"), runs_dir, command=command, accelerator=self.accelerator)
        reference = reference_ratios(retain.stage("eval") if retain else None, config.reference)
        sets = sets_from_stage(finished_stage(target, "data"))
        self.load()
        self.model.load_state_dict(load_file(str(target.kept_weights("finetuned"))), strict=False)
        unlearned = self.stage("unlearn", lambda: self._unlearn(sets))
        self.load_weights(self.model, "unlearned")
        after = self.evaluation(sets)
        self.save_timings()
        before = finished_stage(target, "eval")
        return {
            "experiment": config.experiment, "run": self.run_.id, "model": config.model.name, "method": config.forget.method,
            "options": config.forget.options, "prompt": config.data.prompt, "forget_split": config.data.forget,
            "runs": {"target": target.id, "retain": retain.id if retain else None},
            "reference": config.reference, "steps": unlearned["steps"],
            "before": with_forget_quality(before, reference),
            "after": with_forget_quality(after, reference),
            "retain_model": with_forget_quality(finished_stage(retain, "eval"), reference) if retain else None,
        }

    def _unlearn(self, sets: TofuSets) -> dict[str, Any]:
        return forget_stage(self, self.config.forget, self.encoded, sets.forget, sets.retain, f"unlearn TOFU {self.config.data.forget}")


def reference_ratios(retain_eval: dict[str, Any] | None, reference: str) -> list[float]:
    """The retain model's forget truth ratios: from its run's evaluation, or from a file (a ``tofu_finetune`` run's
    ``stages/eval.json``, or OpenUnlearning's ``TOFU_EVAL.json``: ``forget_truth_ratio.value_by_index.*.score``)."""
    if retain_eval is not None:
        return list(retain_eval["items"]["forget"]["truth_ratio"])
    path = Path(reference)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"reference: cannot read {path}: {error}") from None
    if isinstance(data, dict) and "items" in data:
        return list(data["items"]["forget"]["truth_ratio"])
    if isinstance(data, dict) and "forget_truth_ratio" in data:
        by_index = data["forget_truth_ratio"].get("value_by_index", {})
        return [float(v["score"]) for _, v in sorted(by_index.items(), key=lambda kv: int(kv[0]))]
    raise ValueError(f"reference: {path} has neither items.forget.truth_ratio nor forget_truth_ratio.value_by_index")
