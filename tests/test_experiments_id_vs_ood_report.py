"""The Study B report, from a real run's summary.json and metrics.jsonl (the golden id_vs_ood run): the group
table, the paper's claims and every curve, numbers exactly summary.json's."""

from __future__ import annotations

import json

from forgetlab.experiments.id_vs_ood.report import CLAIMS, ID_VS_OOD_SECTIONS
from forgetlab.report.html import write_report
from forgetlab.report.page import key_of
from tests.report_checks import GOLDEN, GOLDEN_RUNS, assert_numbers_match, assert_self_contained, golden_run

FIGURES = {"exposure_vs_step.png", "genex_vs_step.png", "utility_vs_step.png", "tradeoff.png", "buckets_tradeoff.png",
           "exposure_before.png", "memorization_difficulty.png"}


def test_report_shows_groups_claims_and_curves(tmp_path):
    run_dir, summary = golden_run(tmp_path, "id_vs_ood")
    examples = [{"stage": "baseline", "task": name, "kind": group["kind"], "difficulty": 5.0 + i, "memorization": 0.1 * i}
                for i, (name, group) in enumerate(summary["before"].items())]
    (run_dir / "examples.jsonl").write_text("".join(json.dumps(row) + "\n" for row in examples))
    path = write_report(run_dir, ID_VS_OOD_SECTIONS)
    parsed = assert_numbers_match(path, summary)
    assert_self_contained(path, parsed)
    assert parsed.ids[:5] == ["groups", "claims", "curves", "before", "values"]
    keys = {k for k, _ in parsed.values}
    for name in summary["groups"]:
        assert {key_of(["groups", name, "steps_to_unlearn"]), key_of(["groups", name, "genex_after", "mean"])} <= keys
    assert key_of(["groups", "ood_x1", "exposure_before", "mean"]) in keys
    assert key_of(["buckets", "id_x10/difficulty_easy", "utility_lost", "loss"]) in keys
    assert {key_of(["findings", claim]) for claim, _ in CLAIMS} <= keys
    assert {p.name for p in (run_dir / "report").glob("*.png")} == FIGURES and len(parsed.images) == len(FIGURES)


def test_a_diverged_group_is_shown_by_its_status(tmp_path):
    groups = json.loads((GOLDEN / GOLDEN_RUNS["id_vs_ood"] / "summary.json").read_text())["groups"]
    groups["id_x1"] = {"group": "id_x1", "kind": "id", "status": "diverged", "error": "NaN at step 3", "last_finite_step": 2}
    run_dir, summary = golden_run(tmp_path, "id_vs_ood", groups=groups, buckets={})
    path = write_report(run_dir, ID_VS_OOD_SECTIONS)
    parsed = assert_numbers_match(path, summary)
    assert ("groups.id_x1.status", '"diverged"') in parsed.values
    assert "buckets_tradeoff.png" not in {p.name for p in (run_dir / "report").glob("*.png")}
    assert not (run_dir / "plots").exists()
