"""Study A's headline tables as Markdown (for a README, a paper draft, an issue): the behaviour per task with 95 %
intervals, the tasks not learned, the predictor correlations across tasks and the learn/forget order per task.
"""

from __future__ import annotations

from typing import Any

from forgetlab.metrics.forgetting import NOT_LEARNED
from forgetlab.report.markdown import DASH, number, table, with_interval

def behaviour_table(tasks: dict[str, dict[str, Any]]) -> str:
    """Per task: accuracies (pre-trained, fine-tuned, forgotten on test and on the forget set) with intervals,
    forget ratio and category."""
    rows = []
    for name, row in tasks.items():
        rows.append([name, *(with_interval(row.get(f"acc_{s}"), row.get(f"acc_{s}_ci"))
                             for s in ("pretrained", "finetuned", "forget_test", "forget_train")),
                     number(row.get("forget_ratio")), str(row.get("category") or DASH).replace("_", " ")])
    return table(["task", "pre-trained", "fine-tuned", "forgotten: test", "forgotten: forget set", "forget ratio", "category"], rows)


def correlations_table(analysis: dict[str, Any]) -> str:
    """Per predictor: n, Pearson r with p and interval, Spearman ρ with p and interval."""
    rows = []
    for name, entry in (analysis.get("correlations") or {}).items():
        rows.append([name, str(entry.get("n", DASH)), with_interval(entry.get("pearson_r"), entry.get("pearson_ci")),
                     number(entry.get("pearson_p"), p=True), with_interval(entry.get("spearman_rho"), entry.get("spearman_ci")),
                     number(entry.get("spearman_p"), p=True)])
    return table(["predictor", "n", "Pearson r [95 % CI]", "p", "Spearman ρ [95 % CI]", "p"], rows)


def order_table(tasks: dict[str, dict[str, Any]]) -> str:
    """Per task and split: Spearman ρ of learn step against forget step, with its interval and n; empty when no task
    has one (runs without trajectories)."""
    rows = [[name, split, str(entry.get("n", DASH)), with_interval(entry.get("spearman_rho"), entry.get("spearman_ci")),
             number(entry.get("spearman_p"), p=True)]
            for name, row in tasks.items() for split, entry in (row.get("order") or {}).items() if isinstance(entry, dict)]
    return table(["task", "split", "n", "Spearman ρ [95 % CI]", "p"], rows) if rows else ""


def study_a_markdown(summary: dict[str, Any]) -> str:
    """A Study A summary's (a run's or a sweep's combined one) tables as one Markdown document part."""
    tasks = {name: row for name, row in (summary.get("tasks") or {}).items() if isinstance(row, dict)}
    if not tasks:
        return ""
    parts = ["### Behaviour per task\n", "Accuracy on held-out test items unless noted, 95 % bootstrap intervals; "
             "forget ratio = (acc_FT − acc_F) / (acc_FT − 0.5).\n", behaviour_table(tasks)]
    not_learned = [name for name, row in tasks.items() if row.get("category") == NOT_LEARNED]
    if not_learned:
        parts.append(f"\nNot learned (fine-tuned accuracy's interval not above chance and pre-trained): {', '.join(not_learned)}.\n")
    analysis = summary.get("analysis") or {}
    if analysis.get("correlations"):
        parts += [f"\n### Predictors of the {analysis.get('target', 'forget_ratio')} across tasks\n", correlations_table(analysis)]
    order = order_table(tasks)
    if order:
        parts += ["\n### Learn order against forget order\n", "A negative ρ: items learned first are forgotten last.\n", order]
    return "\n".join(parts)


def pair_table(matrix: dict[str, dict[str, Any]], rows: list[str], columns: list[str]) -> str:
    """One value per ordered task pair: a row per task forgotten (A), a column per task scored (B)."""
    body = [[f"forget {a}", *(number(matrix.get(a, {}).get(b)) for b in columns)] for a in rows]
    return table(["", *(f"score {b}" for b in columns)], body)


def cross_task_markdown(summary: dict[str, Any]) -> str:
    """A cross-task sweep's summary as Markdown: the forget-ratio matrix (rows and columns in their clustered
    order), the accuracy on B after forgetting A, the fit of A's forget set, how much of the matrix the row task,
    the column task and neither explain, then its Study A runs' own tables."""
    found = summary.get("crosstask") or {}
    if not found.get("forget_ratio"):
        return study_a_markdown(summary)
    rows = list(found.get("row_order") or found["tasks"])
    columns = list(found.get("col_order") or found["tasks"])
    reference = found.get("reference") or {}
    parts = ["### Cross-task forget ratio\n",
             "Row A: the model fine-tuned on B forgot A's forget set (random labels); column B: scored on B's test items. "
             "Cell = (acc_FT(B) − acc(B after forgetting A)) / (acc_FT(B) − 0.5): 1 = B forgotten to chance, 0 = kept; "
             "the diagonal is each task's own Study A run.\n",
             pair_table(found["forget_ratio"], rows, columns),
             "\nFine-tuned accuracy on B (the reference): "
             + ", ".join(f"{b} {number(reference.get(b))}" for b in columns) + ".\n"]
    if found.get("not_learned"):
        parts.append(f"\nNot learned, so no ratio in their columns: {', '.join(found['not_learned'])}.\n")
    shares = found.get("variance_explained") or {}
    if shares:
        parts.append("\nShare of the matrix's variance (two-way decomposition, no replication): the task forgotten "
                     f"(rows) {number(shares.get('rows'))}, the task scored (columns) {number(shares.get('columns'))}, "
                     f"neither (residual) {number(shares.get('residual'))}.\n")
    parts += ["\n### Accuracy on B after forgetting A\n", pair_table(found.get("accuracy") or {}, rows, columns)]
    if found.get("forget_fit"):
        parts += ["\n### Fit of A's forget set to its random labels\n", pair_table(found["forget_fit"], rows, columns)]
    rest = study_a_markdown(summary)
    return "\n".join(parts + ([f"\n{rest}"] if rest else []))
