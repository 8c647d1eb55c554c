"""TOFU's evaluation of one model: on the forget, retain, real-authors and world-facts sets, the answer's
probability, the ROUGE-L recall of the greedy answer and the truth ratio; model utility (:mod:`forgetlab.metrics.tofu`).

Every answer (the true one, the paraphrased one, the perturbed ones) is scored as the prompt's continuation
through the end of the turn and EOS (:class:`~forgetlab.experiments.tofu.data.Renderer`) by the scoring engine,
``ℓ = −log p / tokens``. Greedy answers start from the prompt's tokens, stop at EOS or ``max_new_tokens`` and are
decoded without special tokens and stripped.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from forgetlab.data.tofu import TofuItem
from forgetlab.experiments.tofu.config import TofuEvalSpec
from forgetlab.experiments.tofu.data import EVAL_SETS, OPTION_SETS, Renderer
from forgetlab.metrics.rouge import rouge_l
from forgetlab.metrics.tofu import (
    forget_quality, model_utility, option_probability, probability, truth_ratio_forget, truth_ratio_kept, truth_ratios,
)
from forgetlab.scoring import Scorer, greedy_texts

MakeScorer = Callable[..., Scorer]


def average_losses(scorer: Scorer, requests: list[tuple[str, str]], names: list[str], desc: str) -> np.ndarray:
    """``−log p(continuation | prompt) / tokens`` per request."""
    scores = scorer.loglikelihood(requests, names=names, desc=desc)
    return np.array([-s.logprob / s.n_tokens for s in scores], dtype=np.float64)


def greedy_answers(model: Any, tokenizer: Any, scorer: Scorer, prompts: list[str], spec: TofuEvalSpec) -> list[str]:
    """The model's greedy answer to each prompt, decoded without special tokens and stripped."""
    contexts = [scorer.encode_pair(p, "x")[0] for p in prompts]
    return [text.strip() for text in greedy_texts(model, tokenizer, contexts, spec.max_new_tokens, batch_size=spec.batch_size)]


def evaluate_set(
    model: Any, tokenizer: Any, scorer: Scorer, renderer: Renderer, name: str, items: list[TofuItem], spec: TofuEvalSpec
) -> tuple[dict[str, float], dict[str, list[Any]]]:
    """One set's three numbers and its per-item values (probability, ROUGE-L recall, truth ratio R, greedy answer)."""
    options = name in OPTION_SETS
    prompts = [renderer.prompt(i.question) for i in items]
    width = len(items[0].perturbed_answers)
    if any(len(i.perturbed_answers) != width for i in items):
        raise ValueError(f"TOFU {name}: items have different numbers of perturbed answers")
    # per item: the answer, the paraphrased answer (not for the option sets), the perturbed answers — one call, so
    # the scorer runs each prompt once for all of its continuations
    columns = ["answer"] + ([] if options else ["paraphrased answer"]) + [f"perturbed answer {j + 1}" for j in range(width)]
    requests, names = [], []
    for prompt, item in zip(prompts, items):
        answers = [item.answer] + ([] if options else [item.paraphrased_answer]) + list(item.perturbed_answers)
        requests += [(prompt, renderer.target(item.question, a)) for a in answers]
        names += [f"{name} {item.item_id} ({column})" for column in columns]
    losses = average_losses(scorer, requests, names, name).reshape(len(items), len(columns))
    answer, perturbed = losses[:, 0], losses[:, len(columns) - width :]
    paraphrased = answer if options else losses[:, 1]
    prob = option_probability(answer, perturbed) if options else probability(answer)
    ratios = truth_ratios(paraphrased, perturbed, spec.perturbed_mean)
    generated = greedy_answers(model, tokenizer, scorer, prompts, spec)
    rouge = rouge_l(generated, [i.answer for i in items], "recall")
    aggregate = truth_ratio_forget if name == "forget" else truth_ratio_kept
    metrics = {"probability": float(prob.mean()), "rouge_l_recall": float(rouge.mean()), "truth_ratio": aggregate(ratios)}
    per_item = {"item_id": [i.item_id for i in items], "probability": prob.tolist(), "rouge_l_recall": rouge.tolist(),
                "truth_ratio": ratios.tolist(), "generated": generated}
    return metrics, per_item


def evaluate_model(
    model: Any, tokenizer: Any, make_scorer: MakeScorer, renderer: Renderer, sets: dict[str, list[TofuItem]], spec: TofuEvalSpec
) -> dict[str, Any]:
    """Every TOFU number of ``model``: ``metrics`` (``<set>/<name>`` and ``model_utility``) and ``items`` (per set,
    the per-item values; the forget set's truth ratios are what forget quality compares)."""
    was_training = model.training
    model.eval()
    scorer = make_scorer(model, tokenizer, batch_size=spec.batch_size, progress=True, boundary=spec.boundary)
    metrics: dict[str, float] = {}
    items: dict[str, dict[str, list[Any]]] = {}
    try:
        for name in EVAL_SETS:
            values, items[name] = evaluate_set(model, tokenizer, scorer, renderer, name, sets[name], spec)
            metrics.update({f"{name}/{k}": v for k, v in values.items()})
    finally:
        model.train(was_training)
    metrics["model_utility"] = model_utility(metrics)
    return {"metrics": metrics, "items": items}


def with_forget_quality(evaluation: dict[str, Any], reference_ratios: list[float] | None) -> dict[str, float]:
    """An evaluation's metrics plus ``forget_quality`` against the retain model's forget truth ratios (when known)."""
    metrics = dict(evaluation["metrics"])
    if reference_ratios is not None:
        metrics["forget_quality"] = forget_quality(evaluation["items"]["forget"]["truth_ratio"], reference_ratios)
    return metrics
