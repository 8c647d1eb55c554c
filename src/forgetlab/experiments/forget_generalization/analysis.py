"""The model-facing half of Study A's analyses: what one task's run feeds into ``forgetlab.analysis``.

Per task (the ``analysis`` stage of :mod:`forgetlab.experiments.forget_generalization.run`):

* predictors — difficulty (acc_FT), mean confidence on the forget set before forgetting (pre-trained
  and fine-tuned model), total variance of the forget-set prompts' last-token hidden states; at item
  level, how well confidence and the distance to the mean hidden state separate the held-out items
  that forgetting flipped from those it left correct;
* order — per item, the first fine-tuning step at which confidence reaches the threshold and the
  first forgetting step at which it drops below it; Spearman ρ per split;
* probes — L2 logistic regression on (prompt + answer) hidden states, correct vs incorrect, trained
  on the fine-tune split, C chosen on the validation split, scored on the test split, per layer, for
  the pre-trained, fine-tuned and forgotten models.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Sequence

import numpy as np

from forgetlab.analysis.order import first_crossing, order_correlation
from forgetlab.analysis.predictors import (
    distance_to_mean,
    item_predictor_aucs,
    resolve_layer,
    total_variance,
)
from forgetlab.analysis.probes import layer_sweep
from forgetlab.data.prepare import PreparedTask
from forgetlab.data.types import MCDoc
from forgetlab.experiments.forget_generalization.config import AnalysisSpec
from forgetlab.models import num_hidden_layers
from forgetlab.scoring import Scorer

#: The models the probes compare, each named by the stage after which it is taken.
MODEL_STAGES = ("pretrained", "finetuned", "forgotten")

ScorerFor = Callable[[str], Scorer]


def prompt_text(doc: MCDoc) -> str:
    """The item's prompt (the first choice's context: the same for every choice of ordinary tasks)."""
    return doc.contexts[0]


def pair_texts(docs: Sequence[MCDoc]) -> tuple[list[str], list[int], list[str]]:
    """Every (prompt + answer) text of ``docs``, its label (1 = the gold choice) and its question id."""
    texts, labels, questions = [], [], []
    for doc in docs:
        for choice in range(doc.n_choices):
            context, continuation = doc.request(choice)
            texts.append(context + continuation)
            labels.append(int(choice == doc.gold))
            questions.append(doc.doc_id)
    return texts, labels, questions


def check_layers(spec: AnalysisSpec, depth: int) -> None:
    """Fail before any work when an analysis layer does not exist in a model of ``depth`` blocks."""
    if spec.predictors:
        resolve_layer(spec.layer, depth)
    if spec.probes:
        for layer in spec.probe_layers or ():
            try:
                resolve_layer(layer, depth)
            except ValueError as error:
                raise ValueError(f"analysis.probe_layers: {error}") from None


def final_examples(payload: dict[str, Any], split: str) -> dict[str, dict[str, Any]]:
    """A stage's step-0 per-item rows of one split, by item id."""
    return {e["doc_id"]: e for e in payload["examples"] if e["split"] == split and e["step"] == 0}


def trajectories(payload: dict[str, Any], split: str) -> dict[str, list[tuple[int, float]]]:
    """(step, confidence) per item of one split during a training stage."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for e in payload["examples"]:
        if e["split"] == split:
            series[e["doc_id"]].append((e["step"], e["confidence"]))
    return dict(series)


# --------------------------------------------------------------------------------------- order


def order_analysis(
    results: dict[str, dict[str, Any]], data: PreparedTask, relabelled: Sequence[MCDoc], threshold: float, seed: int
) -> dict[str, Any]:
    """Learning vs forgetting order on the forget set (items whose training label was changed) and the test subset."""
    changed = {new.doc_id for new, old in zip(relabelled, data.forget) if new.gold != old.gold}
    out = {}
    for split in ("forget", "test"):
        learn = trajectories(results["finetune"], split)
        forget = trajectories(results["forget"], split)
        if split == "forget":
            learn = {k: v for k, v in learn.items() if k in changed}
        if not learn or not forget:
            continue
        summary = order_correlation(learn, forget, threshold=threshold, seed=seed)
        summary["steps"] = _crossing_steps(learn, forget, threshold)
        out[split] = summary
    return out


def _crossing_steps(
    learn: dict[str, list[tuple[int, float]]], forget: dict[str, list[tuple[int, float]]], threshold: float
) -> list[list[int | None]]:
    """[learn step, forget step] per item in both trajectories (None: never crossed), for plots."""
    return [
        [first_crossing(learn[item], threshold, "up"), first_crossing(forget[item], threshold, "down")]
        for item in sorted(set(learn) & set(forget))
    ]


# --------------------------------------------------------------------------------------- predictors


def predictor_analysis(
    spec: AnalysisSpec,
    results: dict[str, dict[str, Any]],
    data: PreparedTask,
    scorer_for: ScorerFor,
    acc_finetuned: float,
    seed: int,
    bootstrap: int,
) -> dict[str, Any]:
    """Task-level predictors and item-level AUCs (forgotten vs kept held-out items)."""
    forget_pt = final_examples(results["pretrained"], "forget")
    forget_ft = final_examples(results["finetuned"], "forget")
    predictors: dict[str, Any] = {
        "difficulty": acc_finetuned,
        "confidence_pretrained": float(np.mean([e["confidence"] for e in forget_pt.values()])),
        "confidence_finetuned": float(np.mean([e["confidence"] for e in forget_ft.values()])),
    }
    test_ids = [d.doc_id for d in data.test]
    for model_stage, key in (("pretrained", "hidden_variance_pretrained"), ("finetuned", "hidden_variance")):
        scorer = scorer_for(model_stage)
        layer = resolve_layer(spec.layer, num_hidden_layers(scorer.model))
        states = scorer.hidden_states([prompt_text(d) for d in data.forget + data.test], [layer])[layer]
        predictors[key] = total_variance(states[: len(data.forget)])
        if model_stage == "finetuned":
            test_distance = distance_to_mean(states[len(data.forget):])
            predictors["hidden_layer"] = layer
    test_pt, test_ft = final_examples(results["pretrained"], "test"), final_examples(results["finetuned"], "test")
    test_f = final_examples(results["forgotten"], "test")
    item_values = {
        "confidence_pretrained": [test_pt[i]["confidence"] for i in test_ids],
        "confidence_finetuned": [test_ft[i]["confidence"] for i in test_ids],
        "hidden_distance": test_distance,
    }
    items = item_predictor_aucs(
        item_values,
        [test_ft[i]["correct"] for i in test_ids],
        [test_f[i]["correct"] for i in test_ids],
        n_resamples=bootstrap,
        seed=seed,
    )
    return {"predictors": predictors, "item_predictors": items}


# --------------------------------------------------------------------------------------- probes


def probe_analysis(spec: AnalysisSpec, data: PreparedTask, scorer_for: ScorerFor, seed: int) -> dict[str, Any]:
    """Layer sweep of correct-vs-incorrect probes for each model of the pipeline."""
    test_docs = data.test[: spec.probe_test_size] if spec.probe_test_size else data.test
    splits = {"train": data.finetune, "val": data.validation, "test": test_docs}
    if not data.validation:
        raise ValueError("analysis.probes: needs a validation split (data.validation_size > 0) to choose C")
    encoded = {name: pair_texts(docs) for name, docs in splits.items()}
    out: dict[str, Any] = {}
    for model_stage in MODEL_STAGES:
        scorer = scorer_for(model_stage)
        depth = num_hidden_layers(scorer.model)
        layers = sorted({resolve_layer(l, depth) for l in (spec.probe_layers or range(1, depth + 1))})
        states = {name: scorer.hidden_states(texts, layers) for name, (texts, _, _) in encoded.items()}
        features = {layer: (states["train"][layer], states["val"][layer], states["test"][layer]) for layer in layers}
        labels = tuple(np.asarray(encoded[name][1]) for name in ("train", "val", "test"))
        sweep = layer_sweep(features, labels, encoded["test"][2], cs=tuple(spec.probe_cs), seed=seed)
        out["layers"] = layers
        out[model_stage] = {str(layer): result for layer, result in sweep.items()}
    return out
