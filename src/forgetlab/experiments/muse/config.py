"""The configurations of the MUSE experiments: ``muse_finetune`` (a model fine-tuned on MUSE text, then evaluated:
the target model, or the retrained one that never saw the forget text) and ``muse`` (the target unlearns the forget
text with a method; VerbMem, KnowMem and PrivLeak against the retrained model)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from forgetlab.config import ExperimentConfig, OptimSpec, Spec
from forgetlab.experiments.unlearn.config import ForgetMethodSpec
from forgetlab.metrics.muse import KNOWMEM_NEW_TOKENS, MIN_K, VERBMEM_NEW_TOKENS


class MuseDataSpec(Spec):
    """Which MUSE text the models learn and which items the evaluation reads (first N of each file; None: all)."""

    corpus: Literal["news", "books"] = "news"
    source: Literal["auto", "local", "hub"] = "auto"
    root: str | None = Field(None, description="data root (default $FORGETLAB_DATA or ../shared/data)")
    verbmem_items: int | None = Field(None, ge=1, le=100, description="VerbMem prompts evaluated")
    privleak_texts: int | None = Field(None, ge=2, le=100, description="privleak forget and holdout texts scored (N of each)")
    knowmem_items: int | None = Field(None, ge=1, le=100, description="KnowMem questions asked, per split")
    knowmem_forget: Literal["all", "learned"] = Field(
        "all", description="forget questions asked: all, or those whose answer occurs in the forget text learned "
        "(for subsets: the others ask about articles the model never read)",
    )
    forget_text: Literal["evaluated", "all"] = Field(
        "evaluated", description="the forget text learned and unlearned: the raw forget articles that hold the evaluated "
        "VerbMem prompts and privleak forget texts (a text found in no article is learned as it is), or every raw forget article",
    )
    retain_text: Literal["privleak", "raw"] = Field(
        "privleak", description="the retain text both models learn: the privleak retain texts (MUSE's retain2 split) or "
        "the raw retain1 articles (hub only)",
    )
    retain_texts: int | None = Field(8, ge=1, description="retain texts learned (None: all)")
    chunk_words: int = Field(200, ge=8, description="training text is cut into pieces of this many words")


class MuseFinetuneSpec(OptimSpec):
    """Fine-tuning on MUSE text (next-token loss over the whole piece)."""

    method: Literal["finetune"] = "finetune"
    loss: Literal["answer", "full", "choice"] = "answer"  # a piece is the continuation of an empty prompt: every token
    lr: float = Field(1e-5, gt=0)
    epochs: float = Field(3.0, gt=0)


class MuseEvalSpec(Spec):
    """How the MUSE metrics are computed (the authors' code by default; OpenUnlearning's choices as options)."""

    batch_size: int = Field(8, ge=1)
    verbmem_new_tokens: int = Field(VERBMEM_NEW_TOKENS, ge=1)
    knowmem_new_tokens: int = Field(KNOWMEM_NEW_TOKENS, ge=1)
    k: float = Field(MIN_K, gt=0, le=1, description="Min-K% fraction for PrivLeak")
    rouge_stemmer: bool = Field(False, description="Porter stemmer in ROUGE (MUSE: off; OpenUnlearning: on)")
    verbmem_reference: Literal["muse", "full"] = Field(
        "muse", description="the true continuation cut to its first verbmem_new_tokens tokens, BOS counted (MUSE) or whole (OpenUnlearning)",
    )


class MuseForgetSpec(ForgetMethodSpec):
    """The unlearning stage: epochs over the forget text's pieces, not capped in steps."""

    lr: float = Field(1e-5, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0, description="overrides epochs when set")


class MuseBase(ExperimentConfig):
    data: MuseDataSpec = Field(default_factory=MuseDataSpec)
    finetune: MuseFinetuneSpec = Field(default_factory=MuseFinetuneSpec)
    eval: MuseEvalSpec = Field(default_factory=MuseEvalSpec)


class MuseFinetuneConfig(MuseBase):
    """``learn: target`` (forget and retain text: the model to unlearn from) or ``retrain`` (retain text only)."""

    experiment: Literal["muse_finetune"] = "muse_finetune"
    learn: Literal["target", "retrain"] = "target"


class MuseConfig(MuseBase):
    """Unlearn the forget text from the target model; VerbMem, KnowMem and PrivLeak before and after."""

    experiment: Literal["muse"] = "muse"
    forget: MuseForgetSpec = Field(default_factory=MuseForgetSpec)
    reference_auc: float | None = Field(
        None, gt=0, lt=1, description="PrivLeak's AUC_retrain: None (the retrained run's own) or a number (MUSE's published "
        "Llama-2 values: news 0.4772, books 0.5393)",
    )

    def part(self, learn: Literal["target", "retrain"]) -> MuseFinetuneConfig:
        return MuseFinetuneConfig(
            name=f"{self.name}-{learn}", seed=self.seed, model=self.model, cpu_threads=self.cpu_threads, compute=self.compute,
            data=self.data, finetune=self.finetune, eval=self.eval, learn=learn,
        )
