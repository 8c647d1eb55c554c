"""The sections of a Study B (``id_vs_ood``) report: a headline table per forget group (and tercile), the
paper's claims as the run found them, the curves during unlearning (``metrics.jsonl``), the groups before
unlearning (``examples.jsonl``) and, with recovery attacks, each group's robustness."""

from __future__ import annotations

from typing import Any

from forgetlab.experiments.id_vs_ood.plots import (
    plot_exposure,
    plot_exposure_before,
    plot_memorization,
    plot_metric,
    plot_tradeoff,
    plot_utility,
    unlearning_series,
)
from forgetlab.report.context import ReportContext, Section
from forgetlab.report.page import Page, esc
from forgetlab.report.robustness import TITLE, has_robustness, robustness_part

#: The headline columns of a group: (header, place in the group's summary).
GROUP_COLUMNS = (
    ("kind", ("kind",)),
    ("repetitions", ("repetitions",)),
    ("batch", ("batch_size",)),
    ("status", ("status",)),
    ("steps to unlearn", ("steps_to_unlearn",)),
    ("steps run", ("steps_run",)),
    ("exposure before", ("exposure_before", "mean")),
    ("exposure after", ("exposure_after", "mean")),
    ("GenEx before", ("genex_before", "mean")),
    ("GenEx after", ("genex_after", "mean")),
    ("held-out loss before", ("utility_before", "loss")),
    ("loss gained", ("utility_lost", "loss")),
    ("BLEU lost", ("utility_lost", "bleu")),
)

#: The paper's findings as the summary states them: (key in ``findings``, the claim).
CLAIMS = (
    ("ood_needs_more_steps", "OOD canaries need more steps than ID data to unlearn (both: mean GenEx ≤ 0)"),
    ("ood_needs_more_steps_exposure_vs_genex", "… with OOD unlearned by exposure at the never-seen baseline instead"),
    ("ood_better_tradeoff", "OOD unlearning costs less held-out loss per nat of GenEx removed"),
    ("id_decays_utility_faster", "ID unlearning raises held-out loss faster per step"),
    ("exposure_rises_with_repetitions", "Canaries repeated more often are more exposed before unlearning"),
)


def _groups(summary: dict[str, Any], part: str) -> dict[str, dict[str, Any]]:
    found = summary.get(part)
    return {k: v for k, v in found.items() if isinstance(v, dict)} if isinstance(found, dict) else {}


def _group_table(page: Page, part: str, groups: dict[str, dict[str, Any]]) -> None:
    rows = [[esc(key)] + [page.value([part, key, *place]) for _, place in GROUP_COLUMNS] for key in groups]
    page.table(["group", *(header for header, _ in GROUP_COLUMNS)], rows, text_columns=(1, 4))


def groups(page: Page, context: ReportContext) -> None:
    """Per forget group (and per memorization/difficulty tercile): steps to unlearn, exposure, GenEx, utility."""
    main, buckets = _groups(context.summary, "groups"), _groups(context.summary, "buckets")
    if not main and not buckets:
        return
    page.section("groups", "Unlearning per group")
    page.add("<p>Gradient ascent on each forget group from the original model. Exposure in bits (a never-seen canary: "
             "≈ log2 e = 1.44); GenEx (generalized exposure) in nats, 0 = like the reference model that never saw the group. "
             "Loss gained and BLEU lost: held-out utility at the unlearned step (or the last one) against the start.</p>")
    if main:
        _group_table(page, "groups", main)
    if buckets:
        page.add("<h3>Per tercile of memorization or difficulty</h3>")
        _group_table(page, "buckets", buckets)


def claims(page: Page, context: ReportContext) -> None:
    """The paper's claims: whether this run shows each (majority over repetition counts) and the votes."""
    found = context.summary.get("findings")
    if not isinstance(found, dict) or not any(key in found for key, _ in CLAIMS):
        return
    page.section("claims", "The paper's claims in this run")
    rows = [[esc(claim), page.value(["findings", key]), page.value(["findings", f"{key}_votes"])] for key, claim in CLAIMS if key in found]
    page.table(["claim", "holds", "votes"], rows, text_columns=(1, 2))


def unlearning_curves(page: Page, context: ReportContext) -> None:
    """Exposure, GenEx, utility and their trade-off against the gradient-ascent step, per group and tercile."""
    ok = {k: v for k, v in _groups(context.summary, "groups").items() if v.get("status") == "ok"}
    ok_buckets = {k: v for k, v in _groups(context.summary, "buckets").items() if v.get("status") == "ok"}
    series = unlearning_series(context.rows("metrics.jsonl"))
    if not ok or not series:
        return
    page.section("curves", "During unlearning")
    threshold = next((v["exposure_baseline"] + v.get("exposure_tolerance", 0.0) for v in ok.values()), None)
    context.figure(page, plot_exposure(series, ok, threshold), "exposure_vs_step", "Mean exposure of each canary group by step")
    genex = plot_metric(series, ok, "forget", "genex_mean", "mean generalized exposure (nats)", zero=True)
    context.figure(page, genex, "genex_vs_step", "Mean generalized exposure of each group by step")
    context.figure(page, plot_utility(series, ok), "utility_vs_step", "Held-out loss and BLEU by step")
    context.figure(page, plot_tradeoff(series, ok), "tradeoff", "Utility against unlearning quality, one point per evaluation")
    if ok_buckets:
        tradeoff = plot_tradeoff(series, ok_buckets, "Trade-off per tercile")
        context.figure(page, tradeoff, "buckets_tradeoff", "Trade-off per memorization/difficulty tercile")


def before_unlearning(page: Page, context: ReportContext) -> None:
    """The groups before unlearning: exposure under both models, memorization and difficulty per item."""
    groups_before = _groups(context.summary, "before")
    if not groups_before:
        return
    page.section("before", "Before unlearning")
    if any(v.get("kind") == "ood" for v in groups_before.values()):
        context.figure(page, plot_exposure_before(groups_before), "exposure_before", "Exposure per canary group, original and reference model")
    memorization = plot_memorization(context.rows("examples.jsonl"), context.summary)
    context.figure(page, memorization, "memorization_difficulty", "Memorization and difficulty of the forget items")


def robustness(page: Page, context: ReportContext) -> None:
    """Per forget group: the recovery attacks on its unlearned model (``groups.<group>.robustness``)."""
    attacked = [key for key, group in _groups(context.summary, "groups").items() if has_robustness(group.get("robustness"))]
    if not attacked:
        return
    page.section("robustness", TITLE)
    page.add("<p>Each group's model after unlearning (forgotten) against the original model, with the reference model "
             "(which never saw any forget item) as the control of relearning. Relearning data: <i>disjoint</i> = fresh "
             "items of the group's own kind (canaries for a canary group, never-trained corpus pairs for an ID group), "
             "<i>benign</i> = the other kind. Exposure in bits, GenEx and losses in nats.</p>")
    for key in attacked:
        page.add(f"<h3>Group {esc(key)}</h3>")
        robustness_part(page, context, ["groups", key, "robustness"], f"{key}_")


ID_VS_OOD_SECTIONS: tuple[Section, ...] = (groups, claims, unlearning_curves, before_unlearning, robustness)
