"""The MUSE runners: :class:`FinetuneRunner` (``muse_finetune``: data → fine-tune → evaluate) and
:class:`MuseRunner` (``muse``: the two fine-tuning runs → unlearn → evaluate → PrivLeak)."""

from __future__ import annotations

from typing import Any

import torch
from safetensors.torch import load_file

from forgetlab.experiments.base import StagedRunner, finished_stage, run_experiment
from forgetlab.experiments.muse.config import MuseConfig, MuseFinetuneConfig
from forgetlab.data.muse import word_pieces
from forgetlab.experiments.muse.data import MuseSets, load_sets
from forgetlab.experiments.muse.evaluate import evaluate_model, with_privleak
from forgetlab.experiments.unlearn.data import training_items
from forgetlab.experiments.unlearn.run import finetune_stage, forget_stage
from forgetlab.models import load_model
from forgetlab.scoring import resolve_max_length


class MuseStages(StagedRunner):
    """What both runners share: the model, the training pieces, and the evaluation stage."""

    config: MuseFinetuneConfig | MuseConfig

    def load(self) -> None:
        torch.manual_seed(self.config.seed)  # LoRA adapters are initialised from the global generator
        self.model, self.tokenizer = load_model(self.config.model, self.accelerator.device)
        self.max_length = resolve_max_length(self.model.config, self.tokenizer)

    def pieces(self, texts: list[str], name: str) -> list[Any]:
        return word_pieces(texts, self.config.data.chunk_words, name)

    def encoded(self, items: list[Any], method: Any = None) -> list[Any]:
        return training_items(self.tokenizer, items, method, self.config.seed, self.max_length)

    def evaluation(self, sets: MuseSets) -> dict[str, Any]:
        return self.stage("eval", lambda: evaluate_model(self.model, self.tokenizer, self.scorer, sets, self.config.eval))


class FinetuneRunner(MuseStages):
    """Fine-tune on the forget and retain text (``learn: target``) or the retain text only; keep the weights; evaluate."""

    config: MuseFinetuneConfig

    def run(self) -> dict[str, Any]:
        sets = MuseSets.from_stage(self.stage("data", lambda: load_sets(self.config.data).to_stage()))
        self.load()
        learned = self.stage("learn", lambda: self._learn(sets))
        self.load_weights(self.model, "finetuned")
        evaluation = self.evaluation(sets)
        self.save_timings()
        return {
            "experiment": self.config.experiment, "run": self.run_.id, "model": self.config.model.name,
            "learn": self.config.learn, "corpus": self.config.data.corpus,
            "sizes": {"forget_texts": len(sets.forget_text), "retain_texts": len(sets.retain_text), "pieces": learned["items"],
                      "verbmem": len(sets.verbmem), "knowmem_forget": len(sets.knowmem_forget),
                      "knowmem_retain": len(sets.knowmem_retain), "privleak": len(sets.privleak_forget)},
            "steps": learned["steps"], "metrics": evaluation["metrics"],
        }

    def _learn(self, sets: MuseSets) -> dict[str, Any]:
        forget = self.pieces(sets.forget_text, "forget") if self.config.learn == "target" else []
        desc = f"fine-tune on MUSE-{self.config.data.corpus} ({self.config.learn})"
        return finetune_stage(self, self.config.finetune, self.encoded(forget + self.pieces(sets.retain_text, "retain")), desc)


class MuseRunner(MuseStages):
    """The target model unlearns the forget text; every MUSE number before and after, PrivLeak against the
    retrained model's AUC (or ``reference_auc``)."""

    config: MuseConfig

    def run(self) -> dict[str, Any]:
        config, runs_dir = self.config, self.run_.dir.parent
        command = f"muse {self.run_.id}"
        target = run_experiment(config.part("target"), runs_dir, command=command, accelerator=self.accelerator)
        retrain = run_experiment(config.part("retrain"), runs_dir, command=command, accelerator=self.accelerator)
        retrained = finished_stage(retrain, "eval")
        auc_retrain = config.reference_auc if config.reference_auc is not None else retrained["metrics"]["privleak_auc"]
        sets = MuseSets.from_stage(finished_stage(target, "data"))
        self.load()
        self.model.load_state_dict(load_file(str(target.kept_weights("finetuned"))), strict=False)
        unlearned = self.stage("unlearn", lambda: forget_stage(
            self, config.forget, self.encoded, self.pieces(sets.forget_text, "forget"), self.pieces(sets.retain_text, "retain"),
            f"unlearn MUSE-{config.data.corpus}",
        ))
        self.load_weights(self.model, "unlearned")
        after = self.evaluation(sets)
        self.save_timings()
        return {
            "experiment": config.experiment, "run": self.run_.id, "model": config.model.name, "method": config.forget.method,
            "options": config.forget.options, "corpus": config.data.corpus,
            "runs": {"target": target.id, "retrain": retrain.id}, "auc_retrain": auc_retrain, "steps": unlearned["steps"],
            "before": with_privleak(finished_stage(target, "eval"), auc_retrain),
            "after": with_privleak(after, auc_retrain),
            "retrain": with_privleak(retrained, auc_retrain),
        }
