"""The generic unlearning workbench: any forget/retain sets, any registered method, the standard metrics.

``experiment: unlearn``. Stages (each saved when it finishes; a killed run resumes at the first
unfinished one, and inside the unlearning stage at its last checkpoint):

1. ``data``: (prompt, target) items from the configured ``sources`` — local files (jsonl/json/csv/
   tsv/parquet with ``prompt``/``target`` or ``text`` fields), inline lists, the Study B corpora
   (:mod:`forgetlab.data.corpus`), TOFU configs and MUSE splits (``kind: tofu`` / ``muse``), or Study A
   tasks (``load_task_docs`` + ``prepare_task``, gold continuation as target) — split into the ``forget``, ``holdout`` (never-trained non-members for
   membership inference), ``retain`` and ``utility`` sets. Sets that name the same source take
   disjoint, seeded slices of it, and no item text is ever in two sets;
2. ``learn`` (optional): fine-tune on forget ∪ retain first, so that the model knows what it must
   forget (TOFU-style); its weights are the "original" model of the next stage. Runs in the same
   runs directory that learn the same items with the same model, spec and seed share it
   (``learn.share``), so a sweep over methods learns once;
3. ``unlearn``: the method from the registry (``forget.method`` with ``forget.options``) in the one
   training loop (:func:`forgetlab.train.train_items`: retain batches and the frozen reference only for
   methods that need them; LoRA when ``model.lora`` is set), evaluated every ``forget.eval_every``
   steps: forget/holdout/retain/utility loss and token accuracy, extraction (exact memorization,
   verbatim and prefix match of greedy generation) on the forget set, and membership inference
   (LOSS, zlib, Min-K%, Min-K%++, reference ratio; AUC, TPR at 1 % / 0.1 % FPR, bootstrap CI) with
   forget = members and holdout = non-members. The best step by ``select`` (objective + constraints)
   is tracked and its trainable weights kept (``stages/unlearn/selected.safetensors``).

All per-token numbers come from the scoring engine (:meth:`forgetlab.scoring.Scorer.token_scores`,
lm-eval's tokenisation; sharded over processes); extraction generates greedily
(:func:`forgetlab.scoring.greedy_generate`). Metric keys are ``<split>/<name>``: ``forget/loss``, ``utility/token_acc``, ``mia/min_k_pp_auc``,
``mia/loss_auc_gap`` ... (see :func:`metric_names`). AUC direction: see :mod:`forgetlab.metrics.mia`
(0.5 = indistinguishable, > 0.5 = forget items still look like members).

Modules, in the order of the flow: :mod:`.config` (the config classes), :mod:`.data` (sources → sets → encoded
items), :mod:`.evaluate` (metrics during unlearning, best-step selection), :mod:`.run` (the runner and the
experiment), :mod:`.summary` (stage payloads → ``summary.json``).
"""

from forgetlab.experiments.base import EXPERIMENTS
from forgetlab.experiments.robustness import ATTACKABLE
from forgetlab.experiments.unlearn.config import (
    Constraint, CorpusSource, FileSource, ForgetMethodSpec, InlineSource, LearnSpec, MIASpec, SelectSpec,
    SetSpec, SetsSpec, SourceSpec, TaskSource, UnlearnConfig, UnlearnEvalSpec,
)
from forgetlab.experiments.unlearn.data import (
    build_sets, load_source, sets_from_stage, sets_to_stage, training_items,
)
from forgetlab.experiments.unlearn.evaluate import EvalSet, Evaluator, Selection, metric_names, set_metrics
from forgetlab.experiments.unlearn.run import (
    Unlearn, UnlearnRunner, build_method, learn_key, restrict_trainable, trainable_pattern,
)
from forgetlab.experiments.unlearn.summary import headline, summarize

EXPERIMENTS.register("unlearn")(Unlearn())
ATTACKABLE.register("unlearn")(EXPERIMENTS.get("unlearn"))

__all__ = [
    "Constraint", "CorpusSource", "EvalSet", "Evaluator", "FileSource", "ForgetMethodSpec", "InlineSource",
    "LearnSpec", "MIASpec", "SelectSpec", "Selection", "SetSpec", "SetsSpec", "SourceSpec", "TaskSource", "Unlearn",
    "UnlearnConfig", "UnlearnEvalSpec", "UnlearnRunner", "build_method", "build_sets", "headline", "learn_key",
    "load_source", "metric_names", "restrict_trainable", "set_metrics", "sets_from_stage", "sets_to_stage", "summarize",
    "trainable_pattern", "training_items",
]
