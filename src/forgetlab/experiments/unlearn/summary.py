"""``summary.json`` of an ``unlearn`` run from its stage payloads (pure functions: no timings, so identical runs
give byte-identical summaries), and the extra timings kept apart in ``timings.json``."""

from __future__ import annotations

from typing import Any

from forgetlab.data.types import Pair
from forgetlab.experiments.unlearn.config import UnlearnConfig
from forgetlab.experiments.unlearn.evaluate import objective_direction

#: The short names of the headline numbers and the metric keys they show.
HEADLINE = {
    "forget_loss": "forget/loss",
    "forget_token_acc": "forget/token_acc",
    "forget_verbatim": "forget/verbatim",
    "utility_loss": "utility/loss",
    "utility_token_acc": "utility/token_acc",
    "retain_loss": "retain/loss",
    "mia_loss_auc": "mia/loss_auc",
    "mia_min_k_pp_auc": "mia/min_k_pp_auc",
}


#: The evaluations a summary shows: before unlearning, after it, and at the selected step.
EVALUATIONS = ("start", "final", "selected")


def summary_metric(key: str) -> str:
    """The metric (``<set>/<name>``) behind a summary key: ``selected.forget_loss`` → ``forget/loss``,
    ``metrics.final.mia/loss_auc`` → ``mia/loss_auc``; KeyError for any other key."""
    parts = key.split(".")
    if len(parts) == 2 and parts[0] in EVALUATIONS and parts[1] in HEADLINE:
        return HEADLINE[parts[1]]
    if len(parts) == 3 and parts[0] == "metrics" and parts[1] in EVALUATIONS and "/" in parts[2]:
        return parts[2]
    raise KeyError(f"{key}: not a metric of an unlearn summary (e.g. selected.forget_loss or metrics.selected.forget/loss)")


def headline(metrics: dict[str, float] | None) -> dict[str, float] | None:
    """The few numbers of a results table, from one evaluation's flat metrics (keys that exist)."""
    if metrics is None:
        return None
    return {short: metrics[key] for short, key in HEADLINE.items() if key in metrics}


def timings(unlearn: dict[str, Any]) -> dict[str, float]:
    """The unlearning stage's seconds split into evaluation and training (``timings.json`` beside the seconds of
    every stage; a resumed stage counts its last attempt)."""
    return {
        "unlearn_eval": unlearn["eval_seconds"],
        "unlearn_train": unlearn["seconds"] - unlearn["eval_seconds"],
    }


def summarize(config: UnlearnConfig, run_id: str, sets: dict[str, list[Pair]], learn: dict[str, Any] | None,
              unlearn: dict[str, Any]) -> dict[str, Any]:
    """``summary.json``: the method, sizes, and the metrics at the start, the end and the selected step (no timings:
    identical runs give byte-identical summaries)."""
    selected = unlearn["selected"]
    return {
        "experiment": config.experiment,
        "run": run_id,
        "model": config.model.name,
        "lora": config.model.lora is not None,
        "method": config.forget.method,
        "options": config.forget.options,
        "sizes": {name: len(items) for name, items in sets.items()},
        "learn_steps": learn["steps"] if learn else 0,
        "steps": unlearn["steps"],
        "selection": {
            "objective": config.select.objective,
            "better": objective_direction(config.select.objective),
            "constraints": [c.model_dump(exclude_none=True) for c in config.select.constraints],
            "history": unlearn["history"],
            "weights": unlearn["selected_weights"],
        },
        "selected_step": selected["step"] if selected else None,
        "start": headline(unlearn["start"]),
        "final": headline(unlearn["final"]),
        "selected": headline(selected["metrics"]) if selected else None,
        "metrics": {"start": unlearn["start"], "final": unlearn["final"], "selected": selected["metrics"] if selected else None},
    }
