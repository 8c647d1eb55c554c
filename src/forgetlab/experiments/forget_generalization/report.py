"""The sections of a Study A (``forget_generalization``) and a cross-task (``cross_task``) report.

Each section shows only what the run has data for: the behaviour table and plot, the predictor correlations
and scatters, item-level AUCs, probes, learn/forget order, the cross-task matrix (``cross_task``), and the
accuracy trajectories of fine-tuning and forgetting, drawn from ``metrics.jsonl`` — a run's own, or for a
summary that combines Study A runs (a cross-task matrix, a sweep of one-task cells) those of its runs
(``study_a_runs``, read through the store).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from forgetlab.experiments.forget_generalization.plots import (
    crosstask_axes,
    plot_behaviour,
    plot_crosstask,
    plot_order,
    plot_predictor,
    plot_probes,
    plot_trajectories,
    predictor_names,
    probe_models,
)
from forgetlab.report.context import ReportContext, Section, jsonl_rows
from forgetlab.report.page import Page, esc
from forgetlab.report.plots import curves, slug
from forgetlab.report.robustness import TITLE, has_robustness, robustness_part
from forgetlab.store import StoreError

CATEGORY_LABELS = {
    "not_generalized": "not generalized",
    "partial": "partial",
    "full": "full",
    "forget_set_not_fit": "forget set not fit",
    "not_learned": "not learned",
}

CATEGORY_STYLE = """
.cat-not_generalized { background: #fde8e8; } .cat-partial { background: #fff4d6; } .cat-full { background: #e3f5e1; }
.cat-forget_set_not_fit { background: #eee; } .cat-not_learned { background: #e6ecf7; }
"""

TRAINING_STAGES = ("finetune", "forget")


def _tasks(context: ReportContext) -> dict[str, dict[str, Any]]:
    """The summary's per-task rows (only those that are objects)."""
    tasks = context.summary.get("tasks")
    return {name: row for name, row in tasks.items() if isinstance(row, dict)} if isinstance(tasks, dict) else {}


# --- behaviour and predictors -------------------------------------------------------------------------


def behaviour(page: Page, context: ReportContext) -> None:
    """Accuracies, forget gap, ratio and category per task, with the bar plot."""
    tasks = _tasks(context)
    if not tasks:
        return
    page.style(CATEGORY_STYLE)
    page.section("behaviour", "Behaviour per task")
    page.add('<p class="muted">Accuracy on the held-out test set unless noted, with 95 % bootstrap CIs. '
             "forget gap = acc_F − 0.5; forget ratio = (acc_FT − acc_F) / (acc_FT − 0.5), 1 = fully forgotten. "
             "not learned: the fine-tuned accuracy's CI is not above chance and pre-trained, so there is no ratio "
             "and no category.</p>")
    rows, classes = [], []
    for task, row in tasks.items():
        category = row.get("category")
        rows.append([esc(task)] + [page.with_ci(["tasks", task, f"acc_{name}"]) for name in ("pretrained", "finetuned", "forget_test", "forget_train")]
                    + [page.value(["tasks", task, name]) for name in ("forget_gap", "forget_ratio", "category")])
        classes.append(f"cat-{category}" if isinstance(category, str) and category in CATEGORY_LABELS else "")
    page.table(["task", "pre-trained", "fine-tuned", "forgotten: test", "forgotten: forget set", "forget gap", "forget ratio", "category"],
               rows, numeric_from=1, row_class=classes, text_columns=(7,))
    context.figure(page, plot_behaviour(tasks), "behaviour", "Accuracy per task (bars: 95 % CI; dashed: chance)")


def predictors(page: Page, context: ReportContext) -> None:
    """Across tasks: each predictor's correlation with the forget ratio, the values, the scatters."""
    summary, tasks = context.summary, _tasks(context)
    analysis = summary.get("analysis") or {}
    correlations = analysis.get("correlations") or {}
    with_values = [t for t, row in tasks.items() if isinstance(row.get("predictors"), dict) and row["predictors"]]
    if not correlations and not with_values:
        return
    target = analysis.get("target") or "forget_ratio"
    page.section("predictors", "Predictors of the forget ratio")
    if correlations:
        page.add(f"<p>Across tasks, correlation of each predictor with <code>{esc(target)}</code> "
                 "(p-values two-sided; CIs: bootstrap over tasks, 95 %).</p>")
        rows = []
        for name in correlations:
            base = ["analysis", "correlations", name]
            rows.append([esc(name), page.value([*base, "n"]), page.value([*base, "pearson_r"]), page.value([*base, "pearson_p"], p=True),
                         page.interval([*base, "pearson_ci"]), page.value([*base, "spearman_rho"]),
                         page.value([*base, "spearman_p"], p=True), page.interval([*base, "spearman_ci"])])
        page.table(["predictor", "n", "Pearson r", "p", "95 % CI", "Spearman ρ", "p", "95 % CI"], rows)
    page.listed(["analysis", "excluded"], "Left out of the correlations, not learned")
    names = predictor_names(summary)
    if with_values:
        extra = sorted({k for t in with_values for k in tasks[t]["predictors"]} - set(names))
        columns = names + extra
        rows = [[esc(t)] + [page.value(["tasks", t, "predictors", c]) for c in columns] + [page.value(["tasks", t, target])] for t in with_values]
        page.add("<h3>Predictor values per task</h3>")
        page.table(["task", *columns, target], rows)
    for name in names:
        context.figure(page, plot_predictor(summary, name), f"predictor_{slug(name)}", f"{name} vs {target}")


def item_predictors(page: Page, context: ReportContext) -> None:
    """Within each task: ROC-AUC of each predictor for whether an item is forgotten."""
    rows = []
    for task, row in _tasks(context).items():
        for name in (row.get("item_predictors") or {}):
            base = ["tasks", task, "item_predictors", name]
            rows.append([esc(task), esc(name), page.value([*base, "auc"]), page.interval([*base, "ci"]),
                         page.value([*base, "n_pos"]), page.value([*base, "n_neg"])])
    if not rows:
        return
    page.section("items", "Item-level predictors")
    page.add("<p>Within each task, ROC-AUC of each predictor for whether an item is forgotten (0.5 = no signal).</p>")
    page.table(["task", "predictor", "AUC", "95 % CI", "forgotten (n_pos)", "kept (n_neg)"], rows, numeric_from=2)


# --- probes and order ---------------------------------------------------------------------------------


def _best_layer(layers: dict[str, Any]) -> str | None:
    def score(layer: str) -> tuple[float, float]:
        entry = layers[layer] or {}
        val = entry.get("val_acc")
        pair = entry.get("pair_acc")
        return (val if isinstance(val, (int, float)) else -1.0, pair if isinstance(pair, (int, float)) else -1.0)

    candidates = [k for k, v in layers.items() if isinstance(v, dict)]
    if not candidates:
        return None
    best = max(score(k) for k in candidates)
    return min((k for k in candidates if score(k) == best), key=lambda s: (0, int(s)) if s.lstrip("-").isdigit() else (1, 0))


def _probe_rows(page: Page, tasks: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Per task and probed model: its best layer's numbers."""
    rows = []
    for task, row in tasks.items():
        for model in probe_models(row["probes"]):
            layer = _best_layer(row["probes"][model])
            if layer is None:
                continue
            base = ["tasks", task, "probes", model, layer]
            rows.append([esc(task), esc(model), esc(layer)] + [page.value([*base, k]) for k in
                                                                 ("pair_acc", "question_acc", "val_acc", "c", "n_pairs", "n_questions")])
    return rows


def probes(page: Page, context: ReportContext) -> None:
    """Linear probes: each model's best layer per task, and accuracy by layer."""
    probed = {task: row for task, row in _tasks(context).items() if isinstance(row.get("probes"), dict)}
    figures = {task: plot_probes(task, row["probes"]) for task, row in probed.items()}
    rows = _probe_rows(page, probed)
    if not rows and not any(f is not None for f in figures.values()):
        return
    page.section("probes", "Linear probes")
    page.add("<p>L2 logistic-regression probes on hidden states of (prompt + answer) pairs, correct vs incorrect. "
             "Best layer = highest validation accuracy; pair/question accuracy on held-out items (chance 0.5).</p>")
    if rows:
        page.table(["task", "model", "best layer", "pair acc", "question acc", "val acc", "C", "pairs", "questions"], rows, numeric_from=2)
    for task, figure in figures.items():
        context.figure(page, figure, f"probes_{slug(task)}", f"{task}: probe accuracy by layer")


def order(page: Page, context: ReportContext) -> None:
    """Learn order against forget order: Spearman ρ per task and split, and the per-item scatter."""
    ordered = {task: row["order"] for task, row in _tasks(context).items() if isinstance(row.get("order"), dict)}
    rows = []
    for task, splits in ordered.items():
        for split, entry in splits.items():
            if isinstance(entry, dict):
                base = ["tasks", task, "order", split]
                rows.append([esc(task), esc(split), page.value([*base, "n"]), page.value([*base, "spearman_rho"]),
                             page.value([*base, "spearman_p"], p=True), page.interval([*base, "spearman_ci"])]
                            + [page.value([*base, k]) for k in ("n_never_learned", "n_never_forgotten", "threshold")])
    figure = plot_order(ordered)
    if not rows and figure is None:
        return
    page.section("order", "Learn order vs forget order")
    page.add("<p>Per item: the fine-tuning step at which its confidence first reaches the threshold (learned) and the "
             "forgetting step at which it first falls below (forgotten; never-forgotten items censored at the last step + 1). "
             "“Learned first, forgotten last” shows as a negative Spearman ρ.</p>")
    if rows:
        page.table(["task", "split", "n", "Spearman ρ", "p", "95 % CI", "never learned", "never forgotten", "threshold"], rows, numeric_from=2)
    context.figure(page, figure, "order", "Per item, per task: the step it was learned at against the step it was forgotten at")


# --- cross-task ---------------------------------------------------------------------------------------


def robustness(page: Page, context: ReportContext) -> None:
    """Per task: does test and forget accuracy come back under the recovery attacks?"""
    tasks = {name: task for name, task in _tasks(context).items() if has_robustness(task.get("robustness"))}
    if not tasks:
        return
    page.section("robustness", TITLE)
    for name in tasks:
        page.add(f"<h3>{esc(name)}</h3>")
        robustness_part(page, context, ["tasks", name, "robustness"], f"{slug(name)}_")


def _matrix_tables(page: Page, crosstask: dict[str, Any]) -> None:
    """The forget-ratio matrix (reference accuracies on top), then the accuracy and forget-fit matrices folded."""
    rows_order, cols_order = crosstask_axes(crosstask)
    if not rows_order or not cols_order:
        return
    header = ["forgotten A \\ evaluated B", *cols_order]
    rows = [["reference acc (FT on B)"] + [page.value(["crosstask", "reference", b]) for b in cols_order]]
    rows += [[esc(a)] + [page.value(["crosstask", "forget_ratio", a, b]) for b in cols_order] for a in rows_order]
    page.add("<h3>Forget ratio</h3>")
    page.table(header, rows)
    for name, label in (("accuracy", "Accuracy of B after forgetting A"),
                        ("forget_fit", "Forget-set fit: accuracy of A's forget set against the labels trained on")):
        if isinstance(crosstask.get(name), dict):
            page.add(f"<details><summary>{esc(label)}</summary>")
            page.table(header, [[esc(a)] + [page.value(["crosstask", name, a, b]) for b in cols_order] for a in rows_order])
            page.add("</details>")


def crosstask(page: Page, context: ReportContext) -> None:
    """The cross-task matrix: heatmap, tables, tasks without a ratio, variance explained."""
    matrix = context.summary.get("crosstask")
    if not isinstance(matrix, dict):
        return
    page.section("crosstask", "Cross-task forgetting")
    page.add("<p>Row A: the task forgotten (random labels); column B: the task evaluated. Cell: forget ratio of B "
             "relative to the model fine-tuned on B (its accuracy is the reference); the diagonal is the Study A forget ratio. "
             "Rows and columns in UPGMA order.</p>")
    context.figure(page, plot_crosstask(matrix), "crosstask", "Cross-task forget ratio (red: forgotten, blue: improved, white: unchanged)")
    _matrix_tables(page, matrix)
    page.listed(["crosstask", "not_learned"], "No ratio in the columns of tasks not learned")
    variance = matrix.get("variance_explained")
    if isinstance(variance, dict) and variance:
        page.add("<h3>Variance explained</h3>")
        page.table(["part", "share of variance"], [[esc(k), page.value(["crosstask", "variance_explained", k])] for k in variance])
    runs = context.summary.get("study_a_runs")
    if isinstance(runs, dict) and runs:
        named = ", ".join(f"{esc(task)} {page.value(['study_a_runs', task])}" for task in runs)
        page.add(f'<p class="muted">Diagonal and per-task numbers from the Study A runs: {named}.</p>')


# --- trajectories -------------------------------------------------------------------------------------


def _accuracy_curves(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{task: {stage: {split: points}}}`` of the accuracy rows of fine-tuning and forgetting."""
    def key(row: dict[str, Any]) -> tuple[str, str, str] | None:
        wanted = row.get("metric") == "acc" and row.get("stage") in TRAINING_STAGES
        return (row["task"], row["stage"], row["split"]) if wanted else None

    grouped: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for (task, stage, split), points in curves(rows, key).items():
        grouped[task][stage][split] = points
    return grouped


def _draw_trajectories(page: Page, context: ReportContext, rows: list[dict[str, Any]], source: str = "",
                       section: bool = True) -> None:
    grouped = _accuracy_curves(rows)
    if not grouped:
        return
    if section:
        page.section("trajectories", "Training trajectories")
    if source:
        page.add(f'<p class="muted">From the Study A runs {source}.</p>')
    context.figure(page, plot_trajectories(grouped, TRAINING_STAGES), "trajectories",
                   "Accuracy per task while fine-tuning, then while forgetting (dotted: forgetting starts; dashed: chance)")


def trajectories(page: Page, context: ReportContext) -> None:
    """Accuracy of each scored split against the step, per task, while fine-tuning and while forgetting: from the
    run's own ``metrics.jsonl``, or for a summary that combines Study A runs (a cross-task matrix, a sweep of one-task
    cells) from those runs' (``study_a_runs``, read through the store)."""
    runs = context.summary.get("study_a_runs")
    if not isinstance(runs, dict) or not runs:
        _draw_trajectories(page, context, context.rows("metrics.jsonl"))
        return
    rows: list[dict[str, Any]] = []
    unread: list[str] = []
    for run_id in runs.values():
        try:
            rows += jsonl_rows(context.finished_run(str(run_id)).dir / "metrics.jsonl")
        except (StoreError, ValueError, OSError) as error:
            unread.append(f"{run_id}: {error}")
    if unread:
        page.section("trajectories", "Training trajectories")
        page.note("The trajectories of these Study A runs cannot be read: " + "; ".join(unread))
    sources = ", ".join(page.value(["study_a_runs", task]) for task in runs)
    _draw_trajectories(page, context, rows, source=sources, section=not unread)


STUDY_A_SECTIONS: tuple[Section, ...] = (behaviour, predictors, item_predictors, probes, order, trajectories, robustness)
CROSS_TASK_SECTIONS: tuple[Section, ...] = (behaviour, predictors, item_predictors, probes, order, crosstask, trajectories)
