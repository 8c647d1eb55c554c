"""The sections of a ``tofu`` report: every TOFU number before and after unlearning and for the retain model, and
the forget truth ratios of the three models, whose distributions forget quality compares."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from forgetlab.report.context import ReportContext, Section
from forgetlab.report.moments import moments_table
from forgetlab.report.page import Page
from forgetlab.report.plots import legend, plt

MOMENTS = {"before": "target (before)", "after": "unlearned (after)", "retain_model": "retain model"}


def better(name: str) -> str:
    """↑ or ↓ for a TOFU number after unlearning: forget-set probability and ROUGE down, everything else up."""
    if name.startswith("forget/") and not name.endswith("truth_ratio"):
        return "↓"
    return "↑"


def numbers(page: Page, context: ReportContext) -> None:
    page.section("tofu", "TOFU: target, unlearned and retain model")
    page.add(f"<p>Method {page.value(['method'])} on {page.value(['forget_split'])}, {page.value(['steps'])} steps. Forget "
             "quality: KS-test p-value of the forget truth ratios against the retain model's (higher: closer to never having "
             "learned them); truth ratio on forget: mean min(R, 1/R); elsewhere mean max(0, 1 − R).</p>")
    moments_table(page, context, MOMENTS, better)


def _ratios(context: ReportContext) -> dict[str, list[float]]:
    """The forget truth ratios of each model whose evaluation is at hand (this run's and its parts' ``eval`` stages)."""
    runs = context.summary.get("runs") or {}
    found = {}
    sources = {"target (before)": runs.get("target"), "unlearned (after)": context.run_dir.name, "retain model": runs.get("retain")}
    for label, run_id in sources.items():
        if not run_id:
            continue
        path = context.run_dir.parent / run_id / "stages" / "eval.json"
        if path.is_file():
            found[label] = json.loads(path.read_text())["items"]["forget"]["truth_ratio"]
    return found


def plot_ratios(ratios: dict[str, list[float]]) -> Any | None:
    """The empirical CDF of each model's forget truth ratios (log scale): what the KS test compares."""
    if not ratios:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, values in ratios.items():
        x = np.sort(np.asarray(values))
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=label)
    ax.set(xscale="log", xlabel="truth ratio R = P(perturbed) / P(paraphrased)", ylabel="fraction of forget questions",
           title="Forget set: truth ratios")
    legend(ax)
    return fig


def truth_ratios(page: Page, context: ReportContext) -> None:
    figure = plot_ratios(_ratios(context))
    if figure is None:
        return
    page.section("truth-ratios", "Forget truth ratios")
    context.figure(page, figure, "truth_ratios", "Cumulative distribution of the forget questions' truth ratios per model; "
                   "forget quality is the KS test between the unlearned and the retain model's curves")


TOFU_SECTIONS: tuple[Section, ...] = (numbers, truth_ratios)
