"""The report's frame, the same for every experiment: header, the experiment's sections in order, all summary
values, config and versions; one self-contained file whose numbers are exactly summary.json's; figures in
<run>/report/ that follow the data."""

from __future__ import annotations

import json

import pytest

from forgetlab.report.context import ReportContext
from forgetlab.report.html import write_report
from forgetlab.report.page import Page, key_of
from forgetlab.report.plots import plt
from tests.report_checks import (
    VERSIONS,
    assert_numbers_match,
    assert_self_contained,
    embedded_summary,
    generic_summary,
    make_run,
    parse,
    study_a_summary,
)


def test_summary_values_are_flattened_with_their_keys(tmp_path):
    summary = generic_summary()
    run_dir = make_run(tmp_path, summary)
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    parsed = assert_numbers_match(path, summary)
    assert_self_contained(path, parsed, images=False)
    assert embedded_summary(parsed) == summary
    keys = {k for k, _ in parsed.values}
    assert {"method", "options.beta", "lora", "selection.history.2.objective", "final.forget_loss", "final.mia_loss_auc"} <= keys
    assert key_of(["final", "odd.key"]) == "final.odd\\.key" and "final.odd\\.key" in keys
    assert not any(k.startswith(("curve", "names")) for k in keys)  # long lists summarised
    body = " ".join(parsed.text)
    assert "list of 40: min 0.000, mean 1.950, max 3.900" in body and "list of 30" in body
    assert parsed.ids == ["values", "config", "versions", "summary"] and not parsed.images and not (run_dir / "report").exists()
    assert "<details open>" in path.read_text()  # nothing else shows the run: the values are unfolded
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")], "temporary files left"


def test_config_and_versions_present(tmp_path):
    path = write_report(make_run(tmp_path, study_a_summary(extras=False)))
    text = path.read_text()
    body = " ".join(parse(path).text)
    for name, version in VERSIONS.items():
        assert name in body and version in body
    assert "forget.lr=1e-4" in body and "fingerprint: " + "0123456789ab" * 5 in body
    assert "<pre>" in text and "world_size: 1" in body


def _scatter(page: Page, context: ReportContext) -> None:
    """A section with a table and a figure, shown only when the summary has ``points``."""
    points = context.summary.get("points")
    if not points:
        return
    page.section("scatter", "Scatter")
    page.table(["point", "value"], [[str(i), page.value(["points", i])] for i in range(len(points))])
    fig, ax = plt.subplots()
    ax.plot(points)
    context.figure(page, fig, "scatter", "the points")


def _nothing(page: Page, context: ReportContext) -> None:
    context.figure(page, None, "never", "no data, no figure")


def test_sections_come_between_header_and_summary_values(tmp_path):
    summary = dict(generic_summary(), points=[0.25, 0.5, 1.0])
    run_dir = make_run(tmp_path, summary)
    path = write_report(run_dir, [_nothing, _scatter])
    parsed = assert_numbers_match(path, summary)
    assert_self_contained(path, parsed)
    assert parsed.ids == ["scatter", "values", "config", "versions", "summary"]
    assert [p.name for p in (run_dir / "report").iterdir()] == ["scatter.png"] and len(parsed.images) == 1
    assert oct((run_dir / "report" / "scatter.png").stat().st_mode & 0o777) == "0o644"
    assert "<details>" in path.read_text()  # the sections show the run: the values are folded away
    assert ("points.1", "0.5") in parsed.values


def test_rewrite_removes_stale_figures(tmp_path):
    summary = dict(generic_summary(), points=[1.0, 2.0])
    run_dir = make_run(tmp_path, summary)
    write_report(run_dir, [_scatter])
    assert (run_dir / "report" / "scatter.png").is_file()
    del summary["points"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    parsed = parse(write_report(run_dir, [_scatter]))
    assert not list((run_dir / "report").glob("*.png")) and not parsed.images and "scatter" not in parsed.ids


def test_names_are_escaped(tmp_path):
    summary = dict(generic_summary(), model="</script><script>alert(1)</script>", **{"a<b>&c": 1})
    path = write_report(make_run(tmp_path, summary))
    text = path.read_text()
    assert "<script>alert" not in text and "a<b>&c" not in text and "a&lt;b&gt;&amp;c" in text
    parsed = assert_numbers_match(path, summary)
    assert embedded_summary(parsed) == summary
    assert sum(1 for attrs, _ in parsed.scripts if attrs.get("id") == "summary") == 1


def test_unfinished_run_is_an_error(tmp_path):
    run_dir = make_run(tmp_path, generic_summary())
    (run_dir / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="summary.json"):
        write_report(run_dir)
