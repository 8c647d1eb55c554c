"""What the recovery attacks of a Study A task attack (:mod:`forgetlab.experiments.robustness` runs them):
the model after random-label forgetting (*forgotten*), the fine-tuned model before it (*original*) and the
pre-trained model, which never learned the task (*never_learned*, the control: relearning it shows what the
relearning items teach by themselves). Each is measured by the task's own metrics — accuracy on the forget
set (true labels) and on the test split (``attack_data.test_size``) — with the items' 0/1 correctness for
paired intervals. Relearning trains on fine-tuning items with their correct labels (``disjoint``) or on
pairs of a benign corpus (``benign``); the logit lens reads the forget items' choices off every layer, and
linear probes fitted on the fine-tuning items read the forget items' answers out of the hidden states.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from forgetlab.attacks import AttackContext, ProbeSplit
from forgetlab.data.corpus import load_corpus
from forgetlab.data.prepare import PreparedTask
from forgetlab.data.types import MCDoc
from forgetlab.experiments.forget_generalization.analysis import pair_texts
from forgetlab.experiments.forget_generalization.config import ForgetGeneralizationConfig
from forgetlab.experiments.forget_generalization.evaluate import score_task
from forgetlab.experiments.base import StagedRunner
from forgetlab.experiments.robustness import Target, run_attacks
from forgetlab.metrics.forgetting import accuracy
from forgetlab.models import load_model, model_config
from forgetlab.scoring import Scorer, resolve_max_length
from forgetlab.train import encode_items, encode_pairs

#: Recovery is computed for these (the report's figures draw them all).
HEADLINE = ("test/acc", "forget/acc")
#: Each role's weights: the stage that kept them (None: the pre-trained model as loaded).
ROLE_WEIGHTS = {"forgotten": "forgotten", "original": "finetuned", "never_learned": None}


def relearn_docs(config: ForgetGeneralizationConfig, data: PreparedTask) -> list[MCDoc]:
    """The items relearning trains on (correct labels): the first ``relearn_size`` fine-tuning items, checked
    to share no item with the forget or test sets."""
    docs = data.finetune[: config.attack_data.relearn_size]
    measured = {doc.doc_id for doc in (*data.forget, *data.test)}
    shared = sorted(doc.doc_id for doc in docs if doc.doc_id in measured)
    if shared:
        raise ValueError(f"{data.task}: relearning items {shared[:5]} are also forget or test items")
    return docs


class TaskTarget:
    """Builds one task's :class:`~forgetlab.experiments.robustness.Target`."""

    def __init__(self, config: ForgetGeneralizationConfig, data: PreparedTask, load_weights: Callable[[torch.nn.Module, str], Any],
                 scorer: Callable[[torch.nn.Module, Any], Scorer], accelerator: Any) -> None:
        self.config, self.data, self.accelerator = config, data, accelerator
        self._load_weights, self._scorer = load_weights, scorer
        self.tokenizer: Any = None

    def target(self) -> Target:
        """The three models, the measurement and the attacks' data of this task."""
        roles = {role: (lambda stage=stage: self.load(stage)) for role, stage in ROLE_WEIGHTS.items()}
        return Target(roles=roles, measure=self.measure, context=self.context, metrics=HEADLINE)

    def load(self, stage: str | None) -> torch.nn.Module:
        """The pre-trained model with the weights kept by ``stage`` (none: as pre-trained)."""
        model, self.tokenizer = load_model(self.config.model, self.accelerator.device)
        if stage is not None:
            self._load_weights(model, stage)
        return model.eval()

    def measure(self, model: torch.nn.Module) -> dict[str, Any]:
        """Accuracy on the forget set and on the test split (its first ``attack_data.test_size`` items), with
        each item's correctness."""
        scorer = self._scorer(model, self.tokenizer)
        splits = {"forget": self.data.forget, "test": self.data.test[: self.config.attack_data.test_size]}
        metrics, items = {}, {}
        for split, docs in splits.items():
            correct = [float(s.correct) for s in score_task(scorer, docs, self.data.task, f"{self.data.task}: attacked {split}")]
            metrics[f"{split}/acc"], items[f"{split}/acc"] = accuracy([c == 1.0 for c in correct]), correct
        return {"metrics": metrics, "items": items}

    def context(self) -> AttackContext:
        """Relearning items (fine-tuning items; benign corpus pairs when configured) and the forget items'
        choices with their true answers."""
        spec = self.config.attack_data
        max_length = resolve_max_length(model_config(self.config.model), self.tokenizer)
        relearn = {"disjoint": encode_items(self.tokenizer, relearn_docs(self.config, self.data), max_length)}
        if spec.benign is not None:
            pairs = load_corpus(spec.benign).split(spec.benign_split)[: spec.benign_size]
            relearn["benign"] = encode_pairs(self.tokenizer, pairs, max_length)
        choices = [([doc.request(c) for c in range(doc.n_choices)], doc.gold) for doc in self.data.forget]
        return AttackContext(tokenizer=self.tokenizer, seed=self.config.seed, accelerator=self.accelerator,
                             relearn_items=relearn, forget_choices=choices, probe_splits=self.probe_splits(),
                             score_tokens=self.config.compute.score_tokens)

    def probe_splits(self) -> dict[str, ProbeSplit]:
        """Correct-vs-distractor texts: fitted on the fine-tuning items, C chosen on validation, tested on the
        forget items with their true answers (none without a validation split)."""
        if not self.data.validation:
            return {}
        splits = {"train": self.data.finetune, "val": self.data.validation, "test": self.data.forget}
        return {name: ProbeSplit(*pair_texts(docs)) for name, docs in splits.items()}


def task_robustness(runner: StagedRunner, config: ForgetGeneralizationConfig, data: PreparedTask,
                    load_weights: Callable[[torch.nn.Module, str], Any]) -> dict[str, Any]:
    """The recovery attacks on one task (stages ``<task>/robustness/...`` of ``runner``'s run); ``load_weights``
    loads the weights a stage of the attacked run kept (``finetuned``, ``forgotten``)."""
    target = TaskTarget(
        config, data, load_weights,
        lambda model, tokenizer: runner.scorer(model, tokenizer, batch_size=config.eval.batch_size, on_overlong=config.eval.on_overlong),
        runner.accelerator,
    ).target()
    return run_attacks(runner, f"{data.task}/", config.attacks, target, config.eval.bootstrap, config.seed)
