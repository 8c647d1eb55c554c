"""A table of one summary's numbers at several moments side by side (before and after unlearning, a reference
model): the report part that TOFU and MUSE runs share."""

from __future__ import annotations

from typing import Callable

from forgetlab.metrics.registry import Metric, Role
from forgetlab.report.context import ReportContext
from forgetlab.report.page import Page, esc


def moments_table(page: Page, context: ReportContext, moments: dict[str, str], better: Callable[[str], str]) -> None:
    """Rows: every metric found under any of the summary keys in ``moments`` (key → column header); columns: the
    metric, which way is better (``better(metric)``: ↑, ↓, → 0 ...), then each moment's value."""
    present = {key: header for key, header in moments.items() if isinstance(context.summary.get(key), dict)}
    names = list(dict.fromkeys(name for key in present for name in context.summary[key]))
    rows = [[esc(name), esc(better(name))] + [page.value([key, name]) for key in present] for name in names]
    page.table(["metric", "better", *present.values()], rows, numeric_from=2)


def direction_arrow(metric: Metric, role: Role) -> str:
    """Which way ``metric`` is better for data in ``role`` (the metric registry's direction): ↑, ↓, → target, or —."""
    direction = metric.direction(role)
    if direction == "closer":
        return f"→ {metric.target:g}"
    return {"higher": "↑", "lower": "↓", None: "—"}[direction]
