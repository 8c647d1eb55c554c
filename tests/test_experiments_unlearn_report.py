"""The unlearn report: the headline numbers at the start, the selected step and the end, and the evaluated
metrics against the step (from a real run's files: the golden unlearn run)."""

from __future__ import annotations

from forgetlab.experiments.unlearn.report import UNLEARN_SECTIONS, _panels, _unlearning_curves
from forgetlab.report.html import write_report
from forgetlab.store import read_jsonl
from tests.report_checks import GOLDEN, GOLDEN_RUNS, assert_numbers_match, assert_self_contained, generic_summary, golden_run, make_run


def test_headline_table_and_metrics_by_step(tmp_path):
    run_dir, summary = golden_run(tmp_path, "unlearn")
    path = write_report(run_dir, UNLEARN_SECTIONS)
    parsed = assert_numbers_match(path, summary)
    assert_self_contained(path, parsed)
    assert parsed.ids[:3] == ["headline", "trajectory", "values"]
    keys = {k for k, _ in parsed.values}
    for moment in ("start", "selected", "final"):
        assert {f"{moment}.{name}" for name in summary[moment]} <= keys
    assert {"method", "steps", "selected_step"} <= keys
    assert [p.name for p in (run_dir / "report").glob("*.png")] == ["unlearning.png"] and len(parsed.images) == 1


def test_panels_follow_the_recorded_metrics():
    rows = list(read_jsonl(GOLDEN / GOLDEN_RUNS["unlearn"] / "metrics.jsonl"))
    panels = {panel.title: panel for panel in _panels(_unlearning_curves(rows))}
    assert set(panels["Loss per item set"].lines) == {"forget", "holdout", "retain", "utility"}
    assert set(panels["Membership inference"].lines) == {"loss", "zlib", "min_k", "min_k_pp", "ref"}
    assert panels["Membership inference"].chance == 0.5
    assert {"verbatim", "prefix_match", "token_acc"} == set(panels["Forget set: memorization"].lines)
    assert _panels(_unlearning_curves([r for r in rows if r["stage"] == "learn"])) == []


def test_without_metrics_only_the_headline(tmp_path):
    summary = generic_summary()  # a final headline only, no metrics.jsonl
    path = write_report(make_run(tmp_path, summary), UNLEARN_SECTIONS)
    parsed = assert_numbers_match(path, summary)
    assert "headline" in parsed.ids and "trajectory" not in parsed.ids and not parsed.images
    assert ("final.odd\\.key", "3") in parsed.values


def test_headline_directions_come_from_the_metric_registry():
    from forgetlab.experiments.unlearn.report import better

    assert better("forget_loss") == "↑"  # forgetting: the forget loss should rise
    assert better("utility_loss") == "↓"  # keeping: the utility loss should not
    assert better("mia_loss_auc") == "→ 0.5"
    assert better("not_a_headline") == "—"
