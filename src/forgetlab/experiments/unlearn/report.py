"""The sections of an ``unlearn`` report: the headline numbers at the start, the selected step and the end,
and the evaluated metrics against the unlearning step (``metrics.jsonl``), the selected step marked."""

from __future__ import annotations

from typing import Any, NamedTuple

from forgetlab.experiments.unlearn.evaluate import metric_and_role
from forgetlab.report.robustness import robustness
from forgetlab.experiments.unlearn.summary import HEADLINE
from forgetlab.report.context import ReportContext, Section
from forgetlab.report.moments import direction_arrow
from forgetlab.report.page import Page, esc
from forgetlab.report.plots import CHANCE, Points, chance_line, curves, legend, plt, text

MOMENTS = ("start", "selected", "final")
NOT_CURVES = ("train", "mia")  # splits of metrics.jsonl that are not item sets (training loss, membership inference)


def headline(page: Page, context: ReportContext) -> None:
    """The headline numbers (``start``, ``selected``, ``final`` of the summary) side by side."""
    summary = context.summary
    moments = [m for m in MOMENTS if isinstance(summary.get(m), dict)]
    if not moments:
        return
    names = list(dict.fromkeys(name for m in moments for name in summary[m]))
    page.section("headline", "Unlearning: start, selected step, end")
    page.add(f"<p>Method {page.value(['method'])}: {page.value(['steps'])} steps; step {page.value(['selected_step'])} "
             f"selected by <code>{esc((summary.get('selection') or {}).get('objective', '—'))}</code>. Losses in nats/token; "
             "MIA AUC 0.5 = forget items look like never-trained ones.</p>")
    headers = {"start": "start (step 0)", "selected": "selected step", "final": "end"}
    rows = [[esc(name), esc(better(name))] + [page.value([m, name]) for m in moments] for name in names]
    page.table(["metric", "better", *(headers[m] for m in moments)], rows, numeric_from=2)


def better(headline_name: str) -> str:
    """Which way a headline metric is better when unlearning, from the metric registry (↑, ↓, → target, or —)."""
    key = HEADLINE.get(headline_name)
    if key is None:
        return "—"
    return direction_arrow(*metric_and_role(key))


def _unlearning_curves(rows: list[dict[str, Any]]) -> dict[tuple[str, str], Points]:
    """``{(split, metric): points}`` of the evaluations during unlearning."""
    return curves(rows, lambda row: (row["split"], row["metric"]) if row.get("stage") == "unlearn" else None)


class Panel(NamedTuple):
    """One panel of the plot: its curves by label, and the level that means "like never trained" (if any)."""

    title: str
    ylabel: str
    lines: dict[str, Points]
    chance: float | None = None


def _panels(found: dict[tuple[str, str], Points]) -> list[Panel]:
    """The panels that have curves: loss per item set, the membership attacks' AUC, and the forget set's 0–1
    measures of memorization (token accuracy, extraction)."""
    loss = {split: points for (split, metric), points in found.items() if metric == "loss" and split not in NOT_CURVES}
    mia = {metric[: -len("_auc")]: points for (split, metric), points in found.items() if split == "mia" and metric.endswith("_auc")}
    forget = {metric: points for (split, metric), points in found.items() if split == "forget" and metric not in ("loss", "n")}
    panels = [Panel("Loss per item set", "loss (nats/token)", loss), Panel("Membership inference", "ROC-AUC (forget vs holdout)", mia, CHANCE),
              Panel("Forget set: memorization", "fraction", forget)]
    return [panel for panel in panels if panel.lines]


def plot_unlearning(found: dict[tuple[str, str], Points], selected_step: int | None) -> Any | None:
    """One panel per kind of metric against the unlearning step; the selected step as a dotted line."""
    panels = _panels(found)
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, points in sorted(panel.lines.items()):
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o", markersize=3, label=text(label))
        if panel.chance is not None:
            chance_line(ax, panel.chance, "indistinguishable")
        if selected_step is not None:
            ax.axvline(selected_step, color="black", linestyle=":", linewidth=1, label="selected step")
        ax.set(xlabel="unlearning step", ylabel=panel.ylabel, title=panel.title)
        legend(ax)
    return fig


def trajectory(page: Page, context: ReportContext) -> None:
    """The evaluated metrics against the unlearning step, the selected step marked."""
    selected = context.summary.get("selected_step")
    figure = plot_unlearning(_unlearning_curves(context.rows("metrics.jsonl")), selected if isinstance(selected, int) else None)
    if figure is None:
        return
    page.section("trajectory", "Metrics by unlearning step")
    context.figure(page, figure, "unlearning", "Loss, membership inference and memorization of the forget set at each evaluation")


UNLEARN_SECTIONS: tuple[Section, ...] = (headline, trajectory, robustness)
