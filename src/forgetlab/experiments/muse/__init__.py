"""MUSE (Shi et al. 2024): fine-tune on news articles (or books), unlearn the forget text, and measure it as MUSE does.

Two experiments, shaped like the TOFU ones (:mod:`forgetlab.experiments.tofu`):

* ``muse_finetune``: ``learn: target`` (the forget text and the retain text: the model to unlearn from) or ``learn:
  retrain`` (the retain text only: the model that never saw the forget text, PrivLeak's reference), then evaluated;
* ``muse``: both, then the target unlearns the forget text with ``forget.method``; ``before`` / ``after`` /
  ``retrain`` hold VerbMem, KnowMem (forget and retain: the latter is utility) and PrivLeak.

The shared data (``../shared/data/muse_news``) has the QA, VerbMem and privleak files and the raw *forget* articles but
not the raw retain or holdout corpora. So by default the forget text is the raw forget articles that hold the
evaluated VerbMem prompts and privleak forget texts, the retain text is privleak's retain texts (MUSE's retain2), and
the retrained reference is fine-tuned on that retain text only. With the full data from the hub, ``data.forget_text:
all`` and ``data.retain_text: raw`` give MUSE's own setting. Texts are learned in pieces of ``data.chunk_words`` words.
"""

from typing import Any

from accelerate import Accelerator

from forgetlab.experiments.base import EXPERIMENTS, Experiment, Inputs, Part
from forgetlab.experiments.muse.config import MuseConfig, MuseDataSpec, MuseEvalSpec, MuseFinetuneConfig, MuseFinetuneSpec
from forgetlab.experiments.muse.data import MuseSets, data_files, holding_articles, load_sets
from forgetlab.experiments.muse.evaluate import evaluate_model
from forgetlab.experiments.muse.report import MUSE_SECTIONS, ROLES
from forgetlab.experiments.muse.run import FinetuneRunner, MuseRunner
from forgetlab.experiments.unlearn.run import check_trainable, checked_method
from forgetlab.metrics.registry import METRICS
from forgetlab.store import Run



class MuseFinetune(Experiment):
    """A model fine-tuned on MUSE text and evaluated."""

    config = MuseFinetuneConfig
    sweep_metrics = ("metrics.verbmem", "metrics.knowmem_forget", "metrics.knowmem_retain", "metrics.privleak_auc")

    def inputs(self, config: MuseFinetuneConfig) -> Inputs:
        return Inputs(files=data_files(config.data), models=[config.model])

    def run(self, config: MuseFinetuneConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        return FinetuneRunner(config, run, accelerator).run()


class Muse(Experiment):
    """Unlearning on MUSE, measured as MUSE does."""

    config = MuseConfig
    report_sections = MUSE_SECTIONS
    sweep_metrics = ("after.verbmem", "after.knowmem_forget", "after.knowmem_retain", "after.privleak")
    #: forgetting (VerbMem, lower is better) against utility (retain KnowMem, higher is better)
    tradeoff = (("after.verbmem", "lower"), ("after.knowmem_retain", "higher"))

    def badness(self, key: str, value: float) -> float:
        """From the metric registry, with the role of each number's data (:data:`~.report.ROLES`)."""
        name = key.split(".", 1)[-1]
        if name not in ROLES:
            raise KeyError(f"{key}: not a number of a muse summary (e.g. after.verbmem or after.privleak)")
        metric, role = ROLES[name]
        return METRICS.get(metric).badness(value, role)

    def validate(self, config: MuseConfig) -> None:
        check_trainable(config, checked_method(config.forget))

    def inputs(self, config: MuseConfig) -> Inputs:
        return Inputs(files=data_files(config.data), models=[config.model])

    def parts(self, config: MuseConfig) -> list[Part]:
        return [Part(config.part("target"), label="target model (forget + retain text)"),
                Part(config.part("retrain"), label="retrained model (retain text only)")]

    def run(self, config: MuseConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        return MuseRunner(config, run, accelerator).run()


EXPERIMENTS.register("muse_finetune")(MuseFinetune())
EXPERIMENTS.register("muse")(Muse())

__all__ = [
    "FinetuneRunner", "Muse", "MuseConfig", "MuseDataSpec", "MuseEvalSpec", "MuseFinetune", "MuseFinetuneConfig",
    "MuseFinetuneSpec", "MuseRunner", "MuseSets", "data_files", "evaluate_model", "holding_articles", "load_sets",
]
