"""Does anything predict how much a task (or which item) is forgotten?

Study A (Zhang, Choshen & Andreas, COLM 2024) relates the forget ratio across tasks to

* **difficulty** = acc_FT, the fine-tuned accuracy (found *not* to predict it);
* **confidence**: per item ``p(gold) / (p(gold) + p(distractor))``, averaged over the task, before forgetting
  (pre-trained or fine-tuned model);
* **hidden-state total variance**: ``tr(Cov(h))`` of the hidden state at the prompt's last token over the
  forget-set prompts, at one layer (default the fifth-to-last hidden state).

Low confidence and low variance go weakly with more generalization of forgetting; neither separates the
forgotten *items* from the kept ones (:func:`item_predictor_aucs`, an AUC near 0.5).

**Layer convention** (:func:`resolve_layer`): indices into transformers' ``output_hidden_states`` tuple of
``num_layers + 1`` tensors: index 0 = the embeddings, index ``num_layers`` = the output of the last block.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from forgetlab.stats import auc_with_ci, correlation, optional_float

DEFAULT_PREDICTORS = ("difficulty", "confidence_pretrained", "confidence_finetuned", "hidden_variance")


def _layer_error(layer: Any, num_layers: int) -> ValueError:
    return ValueError(
        f"analysis.layer must be an int in [{-(num_layers + 1)}, {num_layers}] (an index into the "
        f"{num_layers + 1} hidden states: 0 = embeddings, {num_layers} = last block, negative counts from the "
        f"end) or a float in (0, 1] (relative depth); got {layer!r}"
    )


def resolve_layer(layer: int | float, num_layers: int) -> int:
    """The non-negative hidden-state index that ``analysis.layer`` names, for a model of ``num_layers`` blocks.

    An int indexes the ``output_hidden_states`` tuple (length ``num_layers + 1``; negative counts from the
    end, so -5 is the fifth-to-last); a float in (0, 1] is a relative depth, ``round(layer * num_layers)``
    (Python's round: halves go to the even index). Anything else raises ValueError.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers}")
    if isinstance(layer, (bool, np.bool_)):
        raise _layer_error(layer, num_layers)
    if isinstance(layer, numbers.Integral):
        index = int(layer)
        if not -(num_layers + 1) <= index <= num_layers:
            raise _layer_error(layer, num_layers)
        return index % (num_layers + 1)
    if isinstance(layer, numbers.Real) and 0 < float(layer) <= 1:
        return int(round(float(layer) * num_layers))
    raise _layer_error(layer, num_layers)


def _rows(hidden: np.ndarray, minimum: int) -> np.ndarray:
    rows = np.asarray(hidden, dtype=np.float64)
    if rows.ndim != 2:
        raise ValueError(f"hidden states must be a 2-d array (items × dim), got shape {rows.shape}")
    if rows.shape[0] < minimum:
        raise ValueError(f"need at least {minimum} rows of hidden states, got {rows.shape[0]}")
    return rows


def distance_to_mean(hidden: np.ndarray) -> list[float]:
    """Per item (row), the squared Euclidean distance ``‖h_i − h̄‖²`` to the mean hidden state.

    Each item's contribution to the total variance: ``Σ_i ‖h_i − h̄‖² / (n − 1) = tr(Cov(h))``.
    """
    rows = _rows(hidden, 1)
    centered = rows - rows.mean(axis=0)
    return [float(d) for d in np.einsum("ij,ij->i", centered, centered)]


def total_variance(hidden: np.ndarray) -> float:
    """``tr(Cov(h))``: the trace of the sample covariance (ddof = 1) of the rows, = Σ per-dimension variances.

    ``hidden`` is items × dim; needs at least 2 rows.
    """
    rows = _rows(hidden, 2)
    return float(sum(distance_to_mean(rows)) / (rows.shape[0] - 1))


def forgotten_labels(correct_finetuned: Sequence[bool],
                     correct_forgotten: Sequence[bool]) -> tuple[list[int], list[bool]]:
    """Indices of the items answered correctly after fine-tuning, and for each whether forgetting made it wrong."""
    if len(correct_finetuned) != len(correct_forgotten):
        raise ValueError(f"correctness lists differ in length: {len(correct_finetuned)} and {len(correct_forgotten)}")
    indices = [i for i, correct in enumerate(correct_finetuned) if correct]
    return indices, [not bool(correct_forgotten[i]) for i in indices]


def item_predictor_aucs(predictors: dict[str, Sequence[float]], correct_finetuned: Sequence[bool],
                        correct_forgotten: Sequence[bool], *, n_resamples: int = 1000,
                        seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per predictor, how well its per-item values separate forgotten from kept items.

    Only items correct after fine-tuning count (an item never known cannot be forgotten). The result per
    predictor is :func:`~forgetlab.stats.auc_with_ci` with forgotten items as positives: AUC > 0.5
    means forgotten items have *higher* values; ≈ 0.5 means the predictor does not tell which items go.
    """
    indices, forgotten = forgotten_labels(correct_finetuned, correct_forgotten)
    out = {}
    for name, values in predictors.items():
        if len(values) != len(correct_finetuned):
            raise ValueError(f"predictor {name!r} has {len(values)} values for {len(correct_finetuned)} items")
        kept_values = [values[i] for i in indices]
        out[name] = auc_with_ci(kept_values, forgotten, n_resamples=n_resamples, seed=seed)
    return out


def _paired(per_task: dict[str, dict[str, Any]], predictor: str, target: str) -> tuple[list[str], list[float], list[float]]:
    tasks, x, y = [], [], []
    for task, row in per_task.items():
        px, py = optional_float(row.get(predictor)), optional_float(row.get(target))
        if px is not None and py is not None:
            tasks.append(task)
            x.append(px)
            y.append(py)
    return tasks, x, y


def predictor_correlations(per_task: dict[str, dict[str, Any]], target: str = "forget_ratio",
                           predictors: Sequence[str] = DEFAULT_PREDICTORS, *, n_resamples: int = 2000,
                           seed: int = 0, exclude: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Across tasks, :func:`~forgetlab.stats.correlation` of each predictor with ``target``.

    ``per_task`` maps a task name to its numbers (``{"forget_ratio": ..., "difficulty": ..., ...}``). Tasks
    named in ``exclude`` (e.g. not learned) never count; tasks whose target or predictor is missing, None
    or NaN are skipped for that predictor. Each result also carries ``"tasks"``, the task names used (in
    ``per_task``'s order), and ``"excluded"``, those of ``per_task`` left out by ``exclude``.
    """
    left_out = [task for task in per_task if task in set(exclude)]
    kept = {task: row for task, row in per_task.items() if task not in left_out}
    out = {}
    for predictor in predictors:
        tasks, x, y = _paired(kept, predictor, target)
        out[predictor] = {**correlation(x, y, n_resamples=n_resamples, seed=seed), "tasks": tasks, "excluded": left_out}
    return out
