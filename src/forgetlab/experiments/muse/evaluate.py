"""MUSE's evaluation of one model (:mod:`forgetlab.metrics.muse`): VerbMem on the forget prompts, KnowMem on the
forget and retain questions, and the Min-K% AUC of privleak holdout vs forget texts that PrivLeak compares.

Prompts are tokenised as MUSE does (``tokenizer(prompt)``: special tokens as the tokenizer adds them) and continued
greedily; privleak texts are scored by the scoring engine after the tokenizer's BOS (or its stand-in)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from forgetlab.experiments.muse.config import MuseEvalSpec
from forgetlab.experiments.muse.data import MuseSets
from forgetlab.metrics.muse import cut_at_stop_words, knowmem_prompt, min_k_prob, muse_auc, privleak
from forgetlab.metrics.rouge import rouge_l
from forgetlab.scoring import greedy_texts


def generate(model: Any, tokenizer: Any, prompts: list[str], new_tokens: int, batch_size: int) -> list[str]:
    """Greedy continuations of the prompts (``tokenizer(prompt)`` ids), decoded without special tokens."""
    contexts = [tokenizer(p).input_ids for p in prompts]
    return greedy_texts(model, tokenizer, contexts, new_tokens, batch_size=batch_size, clean_up_tokenization_spaces=True)


def verbmem(model: Any, tokenizer: Any, sets: MuseSets, spec: MuseEvalSpec) -> tuple[float, dict[str, list[Any]]]:
    """Mean ROUGE-L F1 × 100 of the continuations against the truth (cut to ``verbmem_new_tokens`` tokens, BOS
    counted, unless ``verbmem_reference: full``)."""
    outputs = generate(model, tokenizer, [v.prompt for v in sets.verbmem], spec.verbmem_new_tokens, spec.batch_size)
    if spec.verbmem_reference == "muse":
        references = [tokenizer.decode(tokenizer(v.gt).input_ids[: spec.verbmem_new_tokens], skip_special_tokens=True,
                                       clean_up_tokenization_spaces=True) for v in sets.verbmem]
    else:
        references = [v.gt for v in sets.verbmem]
    scores = rouge_l(outputs, references, "fmeasure", stemmer=spec.rouge_stemmer)
    return float(scores.mean() * 100), {"rouge_l_f1": scores.tolist(), "generated": outputs}


def knowmem(model: Any, tokenizer: Any, questions: list[Any], examples: list[Any], spec: MuseEvalSpec) -> tuple[float, dict[str, list[Any]]]:
    """Mean ROUGE-L F1 × 100 of the answers (cut at MUSE's stop words) to questions after all in-context examples."""
    shots = [(e.question, e.answer) for e in examples]
    prompts = [knowmem_prompt(shots, q.question) for q in questions]
    outputs = [cut_at_stop_words(o) for o in generate(model, tokenizer, prompts, spec.knowmem_new_tokens, spec.batch_size)]
    scores = rouge_l(outputs, [q.answer for q in questions], "fmeasure", stemmer=spec.rouge_stemmer)
    return float(scores.mean() * 100), {"rouge_l_f1": scores.tolist(), "generated": outputs}


def privleak_scores(scorer: Any, texts: list[str], k: float, name: str) -> np.ndarray:
    """Min-K% (k) of each text's token log-probabilities."""
    stats = scorer.token_scores([("", t) for t in texts], names=[f"privleak {name} text {i}" for i in range(len(texts))], desc=f"privleak {name}")
    return np.array([min_k_prob(s.logprobs, k) for s in stats])


def evaluate_model(model: Any, tokenizer: Any, make_scorer: Callable[..., Any], sets: MuseSets, spec: MuseEvalSpec) -> dict[str, Any]:
    """``metrics`` (verbmem, knowmem_forget, knowmem_retain, privleak_auc) and per-item ``items``."""
    was_training = model.training
    model.eval()
    try:
        vm, vm_items = verbmem(model, tokenizer, sets, spec)
        kf, kf_items = knowmem(model, tokenizer, sets.knowmem_forget, sets.icl_forget, spec)
        kr, kr_items = knowmem(model, tokenizer, sets.knowmem_retain, sets.icl_retain, spec)
        scorer = make_scorer(model, tokenizer, batch_size=spec.batch_size, progress=True)
        forget, holdout = (privleak_scores(scorer, getattr(sets, f"privleak_{s}"), spec.k, s) for s in ("forget", "holdout"))
    finally:
        model.train(was_training)
    metrics = {"verbmem": vm, "knowmem_forget": kf, "knowmem_retain": kr, "privleak_auc": muse_auc(forget, holdout)}
    items = {"verbmem": vm_items, "knowmem_forget": kf_items, "knowmem_retain": kr_items,
             "privleak": {"forget_min_k": forget.tolist(), "holdout_min_k": holdout.tolist()}}
    return {"metrics": metrics, "items": items}


def with_privleak(evaluation: dict[str, Any], auc_retrain: float | None) -> dict[str, float]:
    """An evaluation's metrics plus ``privleak`` against the retrained model's AUC (when known)."""
    metrics = dict(evaluation["metrics"])
    if auc_retrain is not None:
        metrics["privleak"] = privleak(metrics["privleak_auc"], auc_retrain)
    return metrics
