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
    """Per task and split: Spearman ρ of learn step against forget step, with its interval and n."""
    rows = []
    for name, row in tasks.items():
        for split, entry in (row.get("order") or {}).items():
            if isinstance(entry, dict):
                rows.append([name, split, str(entry.get("n", DASH)), with_interval(entry.get("spearman_rho"), entry.get("spearman_ci")),
                             number(entry.get("spearman_p"), p=True)])
    return table(["task", "split", "n", "Spearman ρ [95 % CI]", "p"], rows)


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
    if any(isinstance(row.get("order"), dict) for row in tasks.values()):
        parts += ["\n### Learn order against forget order\n", "A negative ρ: items learned first are forgotten last.\n",
                  order_table(tasks)]
    return "\n".join(parts)
