"""The Study A and cross-task reports: every table and figure the summary and metrics.jsonl have data for,
numbers exactly summary.json's, sections left out without data, the sweep's trajectories from its Study A run."""

from __future__ import annotations

import json

from forgetlab.experiments.forget_generalization.report import CATEGORY_LABELS, CROSS_TASK_SECTIONS, STUDY_A_SECTIONS
from forgetlab.metrics.forgetting import CATEGORIES
from forgetlab.report.html import write_report
from forgetlab.report.page import key_of
from forgetlab.report.plots import plt
from tests.report_checks import (
    ODD,
    accuracy_rows,
    assert_numbers_match,
    assert_self_contained,
    catalog,
    cross_task_summary,
    embedded_summary,
    make_run,
    study_a_summary,
)

TRAJECTORIES = ["trajectories.png"]


def test_study_a_report_numbers_equal_summary(tmp_path):
    summary = study_a_summary()
    run_dir = make_run(tmp_path, summary, metrics=accuracy_rows(["boolq"]))
    path = write_report(run_dir, STUDY_A_SECTIONS)
    parsed = assert_numbers_match(path, summary)
    assert_self_contained(path, parsed)
    assert embedded_summary(parsed) == summary
    keys = {k for k, _ in parsed.values}
    for task in summary["tasks"]:
        for field in ("acc_pretrained", "acc_finetuned", "acc_forget_test", "acc_forget_train", "forget_gap", "forget_ratio", "category"):
            assert key_of(["tasks", task, field]) in keys
        assert key_of(["tasks", task, "acc_pretrained_ci", 0]) in keys
        assert key_of(["tasks", task, "item_predictors", "confidence_finetuned", "auc"]) in keys
        assert key_of(["tasks", task, "order", "forget", "spearman_rho"]) in keys
        # best layer by validation accuracy: 4 for every model
        assert key_of(["tasks", task, "probes", "forgotten", "4", "pair_acc"]) in keys
    assert key_of(["analysis", "correlations", "hidden_variance", "pearson_r"]) in keys
    assert key_of(["analysis", "correlations", "difficulty", "pearson_ci", 1]) in keys
    # shown rounded, exact in data-value
    assert 'data-key="tasks.boolq.acc_finetuned" data-value="0.8333333333333334">0.833<' in path.read_text()
    assert parsed.ids[:7] == ["behaviour", "predictors", "items", "probes", "order", "trajectories", "values"]
    assert "crosstask" not in parsed.ids
    pngs = sorted(p.name for p in (run_dir / "report").glob("*.png"))
    assert {"behaviour.png", "predictor_hidden_variance.png", "probes_boolq.png", "order.png", *TRAJECTORIES} <= set(pngs)
    assert "predictor_hidden_layer.png" not in pngs
    assert len(parsed.images) == len(pngs)  # every figure on the page, none left over
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")], "temporary files left"


def test_sections_omitted_when_data_absent(tmp_path):
    summary = study_a_summary(extras=False)
    run_dir = make_run(tmp_path, summary)
    path = write_report(run_dir, STUDY_A_SECTIONS)
    parsed = assert_numbers_match(path, summary)
    assert_self_contained(path, parsed)
    assert "behaviour" in parsed.ids
    for section in ("predictors", "items", "probes", "order", "crosstask", "trajectories"):
        assert section not in parsed.ids, section
    assert [p.name for p in (run_dir / "report").glob("*.png")] == ["behaviour.png"]
    assert len(parsed.images) == 1


def test_partial_analysis_keys(tmp_path):
    summary = study_a_summary()
    for row in summary["tasks"].values():
        del row["probes"], row["order"]
    del summary["analysis"]
    summary["tasks"]["piqa"]["forget_ratio"] = None  # guarded ratio
    path = write_report(make_run(tmp_path, summary), STUDY_A_SECTIONS)
    parsed = assert_numbers_match(path, summary)
    assert "predictors" in parsed.ids and "items" in parsed.ids
    assert "probes" not in parsed.ids and "order" not in parsed.ids
    assert ("tasks.piqa.forget_ratio", "null") in parsed.values


def test_trajectories_are_drawn_from_metrics(tmp_path):
    rows = accuracy_rows(["boolq", ODD]) + [{"task": "boolq", "stage": "forget", "step": 0, "split": "forget", "metric": "loss", "value": 2.0}]
    run_dir = make_run(tmp_path, study_a_summary(extras=False), metrics=rows)
    parsed = assert_numbers_match(write_report(run_dir, STUDY_A_SECTIONS), study_a_summary(extras=False))
    assert "trajectories" in parsed.ids
    assert (run_dir / "report" / "trajectories.png").is_file() and not (run_dir / "plots").exists()


def test_each_task_is_one_panel_fine_tuning_then_forgetting_on_one_axis():
    from forgetlab.experiments.forget_generalization.plots import plot_trajectories

    curves = {"boolq": {"finetune": {"test": [(0, 0.5), (8, 0.7), (16, 0.8)]},
                        "forget": {"test": [(0, 0.8), (13, 0.6)], "forget": [(0, 0.9), (13, 0.5)]}},
              "rte": {"finetune": {"test": [(0, 0.5), (4, 0.6)]}}}
    fig = plot_trajectories(curves, ("finetune", "forget"))
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["boolq", "rte"]
    lines = [(list(line.get_xdata()), list(line.get_ydata())) for line in visible[0].lines if line.get_marker() == "o"]
    assert lines == [([0, 8, 16], [0.5, 0.7, 0.8]), ([16, 29], [0.9, 0.5]), ([16, 29], [0.8, 0.6])]  # forgetting after step 16
    starts = [line.get_xdata()[0] for line in visible[0].lines if line.get_linestyle() == ":"]
    assert starts == [16]  # where forgetting starts; rte never forgot: no line
    assert not [line for line in visible[1].lines if line.get_linestyle() == ":"]
    plt.close(fig)
    assert plot_trajectories({}, ("finetune", "forget")) is None


def test_cross_task_heatmap_and_tables(tmp_path):
    summary = cross_task_summary()
    run_dir = make_run(tmp_path, summary)
    path = write_report(run_dir, CROSS_TASK_SECTIONS)
    parsed = assert_numbers_match(path, summary)
    assert_self_contained(path, parsed)
    assert "crosstask" in parsed.ids and (run_dir / "report" / "crosstask.png").is_file()
    keys = [k for k, _ in parsed.values]
    ct = summary["crosstask"]
    ratio_keys = [k for k in keys if k.startswith("crosstask.forget_ratio.")]
    expected = [key_of(["crosstask", "forget_ratio", a, b]) for a in ct["row_order"] for b in ct["col_order"]]
    assert ratio_keys[: len(expected)] == expected  # rows and columns in the clustered order (then the all-values table)
    for part in ("rows", "columns", "residual"):
        assert f"crosstask.variance_explained.{part}" in keys
    for b in ct["col_order"]:
        assert key_of(["crosstask", "reference", b]) in keys
        assert key_of(["crosstask", "forget_fit", ct["row_order"][0], b]) in keys
    # no runs directory around this sweep: its Study A run's trajectories cannot be read, and it says so
    assert "trajectories" in parsed.ids and "cannot be read" in path.read_text()


def test_cross_task_shows_its_study_a_runs_trajectories(tmp_path):
    study_a = study_a_summary(extras=False)
    study_a_dir = make_run(tmp_path, study_a, metrics=accuracy_rows(["boolq"]))
    catalog(tmp_path, study_a_dir, study_a)
    sweep = cross_task_summary()
    assert set(sweep["study_a_runs"].values()) == {study_a["run"]}
    run_dir = make_run(tmp_path, sweep, metrics=[])
    parsed = assert_numbers_match(write_report(run_dir, CROSS_TASK_SECTIONS), sweep)
    assert set(TRAJECTORIES) <= {p.name for p in (run_dir / "report").glob("*.png")}
    task = next(iter(sweep["study_a_runs"]))
    assert (f"study_a_runs.{task}", json.dumps(study_a["run"])) in parsed.values and "cannot be read" not in " ".join(parsed.text)


def test_not_learned_task_is_shown_and_listed(tmp_path):
    """A not-learned task: its category row, the correlations' excluded list and the matrix's not-learned columns."""
    summary = cross_task_summary()
    summary["tasks"]["piqa"].update(category="not_learned", forget_ratio=None, learned=False)
    summary["analysis"]["excluded"] = ["piqa"]
    summary["crosstask"]["not_learned"] = ["piqa"]
    for row in summary["crosstask"]["forget_ratio"].values():
        row["piqa"] = None
    path = write_report(make_run(tmp_path, summary), CROSS_TASK_SECTIONS)
    parsed = assert_numbers_match(path, summary)
    keys = {k for k, _ in parsed.values}
    assert {"tasks.piqa.category", "analysis.excluded.0", "crosstask.not_learned.0"} <= keys
    text = path.read_text()
    assert '<tr class="cat-not_learned"><td>piqa</td>' in text and ".cat-not_learned {" in text
    assert "Left out of the correlations, not learned" in text and "No ratio in the columns of tasks not learned" in text
    assert set(CATEGORY_LABELS) == set(CATEGORIES) and all(f".cat-{c} {{" in text for c in CATEGORIES)  # a label and a colour each


def test_escaping_of_names(tmp_path):
    summary = study_a_summary()
    summary["model"] = "</script><script>alert(1)</script>"
    run_dir = make_run(tmp_path, summary, metrics=accuracy_rows([ODD]))
    path = write_report(run_dir, STUDY_A_SECTIONS)
    text = path.read_text()
    assert ODD not in text and "a&lt;b&gt;&amp;c" in text
    assert "<script>alert" not in text
    parsed = assert_numbers_match(path, summary)
    assert embedded_summary(parsed) == summary
    assert any(ODD in t for t in parsed.text)  # shown, decoded, as text
    assert len({p.name for p in (run_dir / "report").glob("probes_*.png")}) == 3


def test_rewrite_removes_stale_plots(tmp_path):
    summary = study_a_summary()
    run_dir = make_run(tmp_path, summary)
    write_report(run_dir, STUDY_A_SECTIONS)
    assert (run_dir / "report" / "probes_boolq.png").is_file()
    for row in summary["tasks"].values():
        del row["probes"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    write_report(run_dir, STUDY_A_SECTIONS)
    assert not list((run_dir / "report").glob("probes_*.png"))


def test_order_is_one_panel_per_task_with_a_colour_per_split():
    from forgetlab.experiments.forget_generalization.plots import plot_order

    orders = {"boolq": {"forget": {"steps": [[8, 13], [8, 13], [16, 26]], "spearman_rho": -0.5}, "test": {"steps": [[0, 39]]}},
              "rte": {"forget": {"steps": []}}, "cola": {"test": {"steps": [[24, 0]], "spearman_rho": 0.25}}}
    fig = plot_order(orders)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["boolq  (forget ρ -0.50, test)", "cola  (test ρ 0.25)"]  # rte: no items
    forget, test = visible[0].collections
    assert forget.get_offsets().tolist() == [[8, 13], [16, 26]] and list(forget.get_sizes()) == [16, 8]  # 2 items at (8, 13)
    assert test.get_offsets().tolist() == [[0, 39]]
    assert visible[1].collections[0].get_facecolor().tolist() == test.get_facecolor().tolist()  # one colour per split
    plt.close(fig)
    assert plot_order({"rte": {"forget": {"steps": []}}}) is None
