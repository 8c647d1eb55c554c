"""The section of a ``muse`` report: VerbMem, KnowMem and PrivLeak before and after unlearning and for the retrained model."""

from __future__ import annotations

import forgetlab.metrics.muse  # noqa: F401  (registers the MUSE metrics)
from forgetlab.metrics.registry import METRICS, Role
from forgetlab.report.context import ReportContext, Section
from forgetlab.report.moments import direction_arrow, moments_table
from forgetlab.report.page import Page

MOMENTS = {"before": "target (before)", "after": "unlearned (after)", "retrain": "retrained model"}
#: Each summary number's registered metric and the role of its data (which way it is better after unlearning).
ROLES: dict[str, tuple[str, Role]] = {
    "verbmem": ("verbmem", "forget"), "knowmem_forget": ("knowmem", "forget"), "knowmem_retain": ("knowmem", "keep"),
    "privleak": ("privleak", "forget"), "privleak_auc": ("privleak_auc", "observe"),
}


def better(name: str) -> str:
    """↑, ↓, → target or — for a MUSE number, from the metric registry."""
    if name not in ROLES:
        return "—"
    metric, role = ROLES[name]
    return direction_arrow(METRICS.get(metric), role)


def numbers(page: Page, context: ReportContext) -> None:
    page.section("muse", "MUSE: target, unlearned and retrained model")
    page.add(f"<p>Method {page.value(['method'])} on MUSE-{page.value(['corpus'])}, {page.value(['steps'])} steps. "
             "VerbMem and KnowMem: ROUGE-L F1 × 100; PrivLeak: (AUC − AUC_retrain) / AUC_retrain × 100 of Min-K% "
             f"(AUC_retrain {page.value(['auc_retrain'])}), negative when the forget texts still look seen.</p>")
    moments_table(page, context, MOMENTS, better)


MUSE_SECTIONS: tuple[Section, ...] = (numbers,)
