"""The figures of a Study A (``forget_generalization``) or cross-task (``cross_task``) report, drawn from the
summary and ``metrics.jsonl``; each function returns a matplotlib figure, or None when its data is absent.

* :func:`plot_behaviour`: per task, grouped bars of the pre-trained, fine-tuned, forgotten (held-out test)
  and forgotten (forget set, true labels) accuracies with their 95 % CIs, chance marked;
* :func:`plot_predictor`: one task-level predictor against the forget ratio, tasks labelled;
* :func:`plot_probes`: probe pair and question accuracy by layer, one colour per model, chance marked;
* :func:`plot_order`: per task, per item, the fine-tuning step it was learned at against the forgetting step it
  was forgotten at, a colour per split (marker area = number of items at that pair of steps);
* :func:`plot_crosstask`: the cross-task forget-ratio matrix (rows: task forgotten, columns: task evaluated);
* :func:`plot_trajectories`: per task, accuracy of each scored split against the step, fine-tuning then forgetting.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.ticker import MaxNLocator

from forgetlab.report.plots import Points, chance_line, interval, number, plt, text

ACCURACIES = (
    ("acc_pretrained", "pre-trained"),
    ("acc_finetuned", "fine-tuned"),
    ("acc_forget_test", "forgotten: test"),
    ("acc_forget_train", "forgotten: forget set"),
)
PROBE_MODELS = ("pretrained", "finetuned", "forgotten")
MODEL_COLOURS = {"pretrained": "tab:blue", "finetuned": "tab:green", "forgotten": "tab:red"}
MODEL_MARKERS = {"pretrained": "o", "finetuned": "s", "forgotten": "^"}
NOT_PREDICTORS = ("hidden_layer",)


# --- behaviour -------------------------------------------------------------------------------------


def plot_behaviour(tasks: dict[str, dict[str, Any]]) -> Any | None:
    """Grouped bars per task: the four accuracies with 95 % CI error bars and the chance line."""
    names = [name for name, row in tasks.items() if any(number(row.get(k)) is not None for k, _ in ACCURACIES)]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) + 2.5), 3.8))
    width = 0.8 / len(ACCURACIES)
    for j, (key, label) in enumerate(ACCURACIES):
        xs, values, errors = [], [], [[], []]
        for i, name in enumerate(names):
            value = number(tasks[name].get(key))
            if value is None:
                continue
            xs.append(i + (j - (len(ACCURACIES) - 1) / 2) * width)
            values.append(value)
            ci = interval(tasks[name].get(f"{key}_ci"))
            errors[0].append(max(0.0, value - ci[0]) if ci else 0.0)
            errors[1].append(max(0.0, ci[1] - value) if ci else 0.0)
        if not xs:
            continue
        ax.bar(xs, values, width, yerr=errors, capsize=2, label=label, error_kw={"linewidth": 0.8})
    chance_line(ax)
    ax.set_xticks(range(len(names)), [text(n) for n in names], rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.set(ylabel="accuracy (95 % CI)", ylim=(0, 1.05), title="Accuracy before and after forgetting")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.25 if len(names) > 4 else -0.12))
    return fig


# --- predictors ------------------------------------------------------------------------------------


def predictor_names(summary: dict[str, Any]) -> list[str]:
    """The task-level predictors: those of the correlation analysis first, then any other one found."""
    names = list((summary.get("analysis") or {}).get("correlations") or {})
    for row in (summary.get("tasks") or {}).values():
        predictors = row.get("predictors") if isinstance(row, dict) else None
        for name, value in (predictors if isinstance(predictors, dict) else {}).items():
            if name not in names and name not in NOT_PREDICTORS and number(value) is not None:
                names.append(name)
    return names


def plot_predictor(summary: dict[str, Any], name: str) -> Any | None:
    """Predictor value against forget ratio, one labelled point per task."""
    analysis = summary.get("analysis") or {}
    target = analysis.get("target") or "forget_ratio"
    points = []
    for task, row in (summary.get("tasks") or {}).items():
        if not isinstance(row, dict) or not isinstance(row.get("predictors"), dict):
            continue
        x, y = number(row["predictors"].get(name)), number(row.get(target))
        if x is not None and y is not None:
            points.append((task, x, y))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    ax.scatter([p[1] for p in points], [p[2] for p in points], s=22, color="tab:purple")
    ax.margins(0.2, 0.15)
    for task, x, y in points:
        ax.annotate(text(task), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    stats = (analysis.get("correlations") or {}).get(name) or {}
    parts = []
    if number(stats.get("pearson_r")) is not None:
        parts.append(f"r = {stats['pearson_r']:.2f}")
    if number(stats.get("spearman_rho")) is not None:
        parts.append(f"ρ = {stats['spearman_rho']:.2f}")
    title = text(name) + (f"  ({', '.join(parts)})" if parts else "")
    ax.set(xlabel=text(name), ylabel=text(target), title=title)
    ax.title.set_fontsize(9)
    return fig


# --- probes ----------------------------------------------------------------------------------------


def probe_models(probes: dict[str, Any]) -> list[str]:
    """The probed models, in the order pre-trained, fine-tuned, forgotten, then any other."""
    found = [k for k, v in probes.items() if k != "layers" and isinstance(v, dict)]
    return [m for m in PROBE_MODELS if m in found] + [m for m in found if m not in PROBE_MODELS]


def _layer_sort(layers: Iterable[str]) -> list[str]:
    return sorted(layers, key=lambda s: (0, int(s), s) if str(s).lstrip("-").isdigit() else (1, 0, str(s)))


def plot_probes(task: str, probes: dict[str, Any]) -> Any | None:
    """Pair and question accuracy of the probes by layer, one colour per model, chance marked."""
    models = probe_models(probes)
    if not models:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.3), sharex=True, sharey=True)
    drawn = False
    for model in models:
        layers = _layer_sort(probes[model])
        xs = [int(layer) if str(layer).lstrip("-").isdigit() else i for i, layer in enumerate(layers)]
        for ax, metric in zip(axes, ("pair_acc", "question_acc")):
            ys = [number((probes[model][layer] or {}).get(metric)) for layer in layers]
            if any(y is not None for y in ys):
                ax.plot(xs, [np.nan if y is None else y for y in ys], marker=MODEL_MARKERS.get(model, "o"), markersize=4,
                        color=MODEL_COLOURS.get(model), label=text(model))
                drawn = True
    if not drawn:
        plt.close(fig)
        return None
    for ax, title in zip(axes, ("pair accuracy", "question accuracy")):
        chance_line(ax)
        ax.set(xlabel="layer", title=f"{text(task)}: {title}", ylim=(0, 1.05))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.title.set_fontsize(9)
    axes[0].set_ylabel("probe accuracy (test)")
    axes[0].legend(fontsize=7)
    return fig


# --- order -----------------------------------------------------------------------------------------


def _step_pairs(entry: dict[str, Any]) -> list[tuple[float, float]]:
    pairs = []
    for pair in entry.get("steps") or []:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            learn, forget = number(pair[0]), number(pair[1])
            if learn is not None and forget is not None:
                pairs.append((learn, forget))
    return pairs


ORDER_SPLIT_COLOURS = ("tab:orange", "tab:blue", "tab:green")


def plot_order(orders: dict[str, dict[str, Any]]) -> Any | None:
    """One panel per task: per item, the learn step (fine-tuning) against the forget step (forgetting), each split in
    its colour (marker area = number of items at that pair of steps)."""
    drawn = {task: [s for s, entry in order.items() if isinstance(entry, dict) and _step_pairs(entry)]
             for task, order in orders.items()}
    drawn = {task: splits for task, splits in drawn.items() if splits}
    if not drawn:
        return None
    fig, axes = task_grid(len(drawn), width=3.4, height=2.8)
    all_splits = list(dict.fromkeys(split for splits in drawn.values() for split in splits))
    colours = dict(zip(all_splits, ORDER_SPLIT_COLOURS * len(all_splits)))
    for ax, (task, splits) in zip(axes, drawn.items()):
        rhos = []
        for split in splits:
            entry = orders[task][split]
            counts = Counter(_step_pairs(entry))  # steps are discrete: one marker per pair, its area the count
            xs, ys = zip(*counts)
            ax.scatter(xs, ys, s=[8 + 8 * (c - 1) ** 0.8 for c in counts.values()], alpha=0.5, color=colours[split],
                       label=text(split))
            rho = number(entry.get("spearman_rho"))
            rhos.append(f"{text(split)} ρ {rho:.2f}" if rho is not None else text(split))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{text(task)}  ({', '.join(rhos)})", fontsize=8)
    axes[0].legend(fontsize=7, loc="best")
    fig.supxlabel("learn step (fine-tuning)", fontsize=9)
    fig.supylabel("forget step (forgetting)", fontsize=9)
    fig.tight_layout()
    return fig


def task_grid(panels: int, *, width: float, height: float, columns: int = 4, **options: Any) -> tuple[Any, list[Any]]:
    """A figure with one panel per task, ``columns`` to a row; the panels in use (the rest hidden)."""
    columns = min(columns, panels)
    rows = -(-panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows + 0.3), squeeze=False, **options)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:panels])


# --- cross-task ------------------------------------------------------------------------------------


def crosstask_axes(crosstask: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Row and column task names, in the clustered order when the summary gives one."""
    tasks = list(crosstask.get("tasks") or [])
    rows = list(crosstask.get("row_order") or tasks)
    cols = list(crosstask.get("col_order") or tasks)
    return rows, cols


def plot_crosstask(crosstask: dict[str, Any]) -> Any | None:
    """Heatmap of the forget ratio of task B (column) after forgetting task A (row).

    Diverging colours centred on 0 (= B not forgotten, white): red towards 1 (fully forgotten) and
    beyond, blue below 0 (B better than after fine-tuning on it). Columns are labelled with the
    reference accuracy (the model fine-tuned on B); unmeasured cells are grey.
    """
    rows, cols = crosstask_axes(crosstask)
    ratios = crosstask.get("forget_ratio") or {}
    if not rows or not cols:
        return None
    matrix = np.array([[number((ratios.get(a) or {}).get(b)) for b in cols] for a in rows], dtype=float)
    finite = matrix[np.isfinite(matrix)]
    if finite.size == 0:
        return None
    limit = max(1.0, float(np.abs(finite).max()))
    size = max(4.5, 0.55 * max(len(rows), len(cols)) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, norm=Normalize(-limit, limit), aspect="auto")
    fontsize = 8 if max(len(rows), len(cols)) <= 10 else 6
    for i in range(len(rows)):
        for j in range(len(cols)):
            value = matrix[i, j]
            label = "—" if not np.isfinite(value) else f"{value:.2f}"
            dark = np.isfinite(value) and abs(value) > 0.6 * limit
            ax.text(j, i, label, ha="center", va="center", fontsize=fontsize, color="white" if dark else "black")
    reference = crosstask.get("reference") or {}
    col_labels = []
    for b in cols:
        acc = number(reference.get(b))
        col_labels.append(f"{text(b)}\n(FT {acc:.2f})" if acc is not None else text(b))
    ax.set_xticks(range(len(cols)), col_labels, rotation=45, ha="right", fontsize=fontsize)
    ax.set_yticks(range(len(rows)), [text(a) for a in rows], fontsize=fontsize)
    ax.set(xlabel="task evaluated (B), reference accuracy", ylabel="task forgotten (A)", title="Cross-task forget ratio")
    fig.colorbar(image, ax=ax, label="forget ratio (0 = kept, 1 = forgotten)", shrink=0.8)
    return fig


# --- trajectories ----------------------------------------------------------------------------------


def plot_trajectories(curves: dict[str, dict[str, dict[str, Points]]], stages: tuple[str, ...]) -> Any | None:
    """One panel per task: the accuracy of each scored split against the optimizer step, the ``stages`` (fine-tuning,
    then forgetting) one after the other on one axis, a dotted line where each later stage starts."""
    tasks = [task for task in curves if any(curves[task].values())]
    if not tasks:
        return None
    fig, axes = task_grid(len(tasks), width=3.4, height=2.5, sharey=True)
    splits = sorted({split for task in tasks for stage in curves[task].values() for split in stage})
    colours = {split: f"C{i}" for i, split in enumerate(splits)}
    for ax, task in zip(axes, tasks):
        offset = 0.0
        for i, stage in enumerate(s for s in stages if curves[task].get(s)):
            if i:
                ax.axvline(offset, color="grey", linestyle=":", linewidth=1)
            last = offset
            for split, points in sorted(curves[task][stage].items()):
                steps, values = zip(*points)
                ax.plot([offset + x for x in steps], values, marker="o", markersize=2.5, linewidth=1.2, color=colours[split])
                last = max(last, offset + max(steps))
            offset = last
        chance_line(ax)
        ax.set(ylim=(0, 1), title=text(task))
        ax.title.set_fontsize(9)
    fig.supylabel("accuracy", fontsize=9)
    fig.supxlabel(f"optimizer step ({', then '.join(stages)})", fontsize=9)
    handles = [plt.Line2D([], [], color=colours[split], marker="o", markersize=3) for split in splits]
    axes[0].legend(handles, [f"split: {text(split)}" for split in splits], fontsize=7, loc="best")
    fig.tight_layout()
    return fig
