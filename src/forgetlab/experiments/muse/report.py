"""The section of a ``muse`` report: VerbMem, KnowMem and PrivLeak before and after unlearning and for the retrained model."""

from __future__ import annotations

from forgetlab.report.context import ReportContext, Section
from forgetlab.report.moments import moments_table
from forgetlab.report.page import Page

MOMENTS = {"before": "target (before)", "after": "unlearned (after)", "retrain": "retrained model"}
BETTER = {"verbmem": "↓", "knowmem_forget": "↓", "knowmem_retain": "↑", "privleak": "→ 0", "privleak_auc": "—"}


def numbers(page: Page, context: ReportContext) -> None:
    page.section("muse", "MUSE: target, unlearned and retrained model")
    page.add(f"<p>Method {page.value(['method'])} on MUSE-{page.value(['corpus'])}, {page.value(['steps'])} steps. "
             "VerbMem and KnowMem: ROUGE-L F1 × 100; PrivLeak: (AUC − AUC_retrain) / AUC_retrain × 100 of Min-K% "
             f"(AUC_retrain {page.value(['auc_retrain'])}), negative when the forget texts still look seen.</p>")
    moments_table(page, context, MOMENTS, lambda name: BETTER.get(name, "—"))


MUSE_SECTIONS: tuple[Section, ...] = (numbers,)
