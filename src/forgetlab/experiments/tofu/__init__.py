"""TOFU (Maini et al. 2024): fine-tune on fictitious authors, unlearn some of them, and measure it as TOFU does.

Two experiments:

* ``tofu_finetune``: a model fine-tuned on TOFU answers — ``learn: full`` (the forget split's authors and the first
  ``data.retain_authors`` retain authors: the *target* model) or ``learn: retain`` (the retain authors only: the
  *retain* model, which never saw the forget authors) — then evaluated;
* ``tofu``: both of those runs (its parts: a sweep runs them first, once for every method), then the target model
  unlearns the forget split with ``forget.method`` and is evaluated again. Its summary holds every number
  ``before`` (the target model), ``after`` (the unlearned one) and for the ``retain_model``, each with forget
  quality against the retain model's forget truth ratios (or a stored file's: ``reference``).

The evaluation (:mod:`.evaluate`, formulas in :mod:`forgetlab.metrics.tofu`) reads ``forgetNN_perturbed``,
``retain_perturbed`` (its first ``data.eval_retain_authors`` authors, all of whom the models learned),
``real_authors_perturbed`` and ``world_facts_perturbed``. Prompts and answers (:class:`.data.Renderer`): the chat
template (``data.prompt: chat``) or ``"Question: {q}\\nAnswer: "`` (``qa``); an answer is scored through the end
of its turn and EOS, starting after the prompt's own tokens (``eval.tokenization: open_unlearning``).
"""

from typing import Any

from accelerate import Accelerator

from forgetlab.experiments.base import EXPERIMENTS, Experiment, Inputs, Part
from forgetlab.experiments.tofu.config import TofuConfig, TofuDataSpec, TofuEvalSpec, TofuFinetuneConfig, TofuFinetuneSpec
from forgetlab.experiments.tofu.data import Renderer, TofuSets, data_files, load_sets
from forgetlab.experiments.tofu.evaluate import evaluate_model
from forgetlab.experiments.tofu.report import TOFU_SECTIONS
from forgetlab.experiments.tofu.run import FinetuneRunner, TofuRunner, reference_ratios
from forgetlab.experiments.unlearn.run import check_trainable, checked_method
from forgetlab.metrics.registry import METRICS
from forgetlab.store import Run


class TofuFinetune(Experiment):
    """A model fine-tuned on TOFU authors and evaluated."""

    config = TofuFinetuneConfig
    sweep_metrics = ("metrics.forget/probability", "metrics.model_utility")

    def inputs(self, config: TofuFinetuneConfig) -> Inputs:
        return Inputs(files=data_files(config.data), models=[config.model])

    def run(self, config: TofuFinetuneConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        return FinetuneRunner(config, run, accelerator).run()


class Tofu(Experiment):
    """Unlearning on TOFU, measured as TOFU does."""

    config = TofuConfig
    report_sections = TOFU_SECTIONS
    sweep_metrics = ("after.forget_quality", "after.model_utility", "after.forget/probability", "after.forget/rouge_l_recall")
    #: forget quality (higher: closer to the retain model) against model utility (higher: more kept)
    tradeoff = (("after.forget_quality", "higher"), ("after.model_utility", "higher"))

    def badness(self, key: str, value: float) -> float:
        """``<before|after|retain_model>.<metric>``: forget quality and model utility are better higher; forget-set
        numbers as the registry says for forgetting, the kept sets' the other way (truth ratios: higher)."""
        name = key.split(".", 1)[-1]
        if name in ("forget_quality", "model_utility") or name.endswith("/truth_ratio"):
            return -value
        set_name, _, metric = name.partition("/")
        if metric in METRICS:
            return METRICS.get(metric).badness(value, "forget" if set_name == "forget" else "keep")
        raise KeyError(f"{key}: not a number of a tofu summary (e.g. after.forget_quality or after.retain/probability)")

    def validate(self, config: TofuConfig) -> None:
        check_trainable(config, checked_method(config.forget))
        if config.reference != "retain_model" and not config.reference.endswith(".json"):
            raise ValueError(f"reference: 'retain_model' or a .json file, got {config.reference!r}")

    def inputs(self, config: TofuConfig) -> Inputs:
        files = data_files(config.data) + ([] if config.reference == "retain_model" else [config.reference])
        return Inputs(files=files, models=[config.model])

    def parts(self, config: TofuConfig) -> list[Part]:
        parts = [Part(config.part("full"), label="target model (forget + retain authors)")]
        if config.reference == "retain_model":
            parts.append(Part(config.part("retain"), label="retain model (retain authors only)"))
        return parts

    def run(self, config: TofuConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        return TofuRunner(config, run, accelerator).run()


EXPERIMENTS.register("tofu_finetune")(TofuFinetune())
EXPERIMENTS.register("tofu")(Tofu())

__all__ = [
    "FinetuneRunner", "Renderer", "Tofu", "TofuConfig", "TofuDataSpec", "TofuEvalSpec", "TofuFinetune",
    "TofuFinetuneConfig", "TofuFinetuneSpec", "TofuRunner", "TofuSets", "data_files", "evaluate_model", "load_sets",
    "reference_ratios",
]
