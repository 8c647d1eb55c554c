"""The sweep report: every group's mean and interval with its place in results.json, every cell linked to its
run, the plots a sweep's shape calls for (metric against each varied axis, a heat-map for two axes, the trade-off
front, a search's trials)."""

from __future__ import annotations

import json
import re

import pytest

from forgetlab.sweep.aggregate import group_cells, pareto_front
from forgetlab.sweep.report import write_sweep_markdown, write_sweep_report


def sweep_results(search: bool = True) -> dict:
    """A 2 methods × 2 learning rates × 2 seeds sweep's results, as :func:`forgetlab.sweep.results.collect` makes them."""
    cells = []
    for method in ("gradient_ascent", "npo"):
        for lr in (0.001, 0.01):
            for seed in (0, 1):
                forget = 2.0 + 10 * lr + 0.1 * seed + (0.5 if method == "npo" else 0.0)
                cells.append({"run": f"u-{method[:3]}{lr}{seed}", "label": f"forget.method={method} forget.lr={lr} seed={seed}",
                              "axes": {"forget.method": method, "forget.lr": lr, "seed": seed}, "seed": seed,
                              "status": "finished", "message": None,
                              "values": {"selected.forget_loss": forget, "selected.utility_loss": 2.5 + lr}})
    cells.append(dict(cells[0], run="u-failed", status="failed", message="ValueError: bad", values={}))
    axes = ["forget.method", "forget.lr", "seed"]
    points = [(c["values"]["selected.forget_loss"], c["values"]["selected.utility_loss"]) for c in cells[:8]]
    front = pareto_front(points, ("higher", "lower"))
    results = {
        "sweep": "demo-0123456789ab", "name": "demo", "experiment": "unlearn", "axes": axes,
        "metrics": ["selected.*"], "counts": {"finished": 8, "failed": 1, "blocked": 0, "waiting": 0}, "cells": cells,
        "groups": group_cells(cells[:8], axes),
        "tradeoff": {"x": {"key": "selected.forget_loss", "better": "higher"}, "y": {"key": "selected.utility_loss", "better": "lower"},
                     "points": [{"run": c["run"], "label": c["label"], "x": p[0], "y": p[1], "front": i in front}
                                for i, (c, p) in enumerate(zip(cells, points))]},
        "search": None,
    }
    if search:
        trials = [{"number": i, "params": {"forget.lr": 10 ** -(i + 2)}, "run": f"t-{i}", "value": 2.0 + i,
                   "badness": -(2.0 + i), "feasible": i != 2, "status": "finished"} for i in range(3)]
        results["search"] = {"objective": "selected.forget_loss", "direction": "from the metric registry", "sampler": "tpe",
                             "trials": trials, "best": trials[1]}
    return results


def test_the_report_shows_every_group_cell_and_figure(tmp_path):
    results = sweep_results()
    html = write_sweep_report(tmp_path, results).read_text()
    embedded = json.loads(re.search(r'<script type="application/json" id="summary">(.*?)</script>', html, re.S).group(1))
    assert embedded == json.loads(json.dumps(results))
    group = results["groups"][1]  # gradient_ascent at lr 0.01: seeds 0 and 1
    mean = group["metrics"]["selected.forget_loss"]["mean"]
    assert mean == pytest.approx(2.15, abs=1e-12)  # (2.0 + 0.1 + 0) and (2.0 + 0.1 + 0.1), averaged
    assert f'data-key="groups.1.metrics.selected\\.forget_loss.mean" data-value="{json.dumps(mean)}"' in html
    assert 'data-key="groups.1.metrics.selected\\.forget_loss.ci.0"' in html
    assert html.count('href="../../u-') == 9 and "ValueError: bad" in html
    # 2 varied axes × 2 metrics, 2 heat-maps, the trade-off and the search: 8 figures
    assert html.count("<img ") == 8
    assert "Forgetting against utility" in html and "best" in html


def test_without_a_search_or_a_second_axis_there_are_fewer_figures(tmp_path):
    results = sweep_results(search=False)
    results["tradeoff"] = None
    one_axis = [dict(c, axes={k: v for k, v in c["axes"].items() if k != "forget.lr"}) for c in results["cells"][:8:2]]
    results.update(axes=["forget.method", "seed"], cells=one_axis, groups=group_cells(one_axis, ["forget.method", "seed"]))
    html = write_sweep_report(tmp_path, results).read_text()
    assert html.count("<img ") == 2  # each metric against the method; no heat-map, trade-off or search


def test_what_the_cells_say_together_is_drawn_by_the_experiments_own_sections(tmp_path):
    """A Study A sweep of one-task cells: the behaviour table and the correlations across its tasks, keyed under
    ``combined`` in results.json, their figures saved beside the report."""
    rows = {task: {"acc_pretrained": 0.5, "acc_finetuned": ft, "acc_forget_test": f, "acc_forget_train": 0.5,
                   "forget_gap": f - 0.5, "forget_ratio": (ft - f) / (ft - 0.5), "category": "partial",
                   "predictors": {"confidence_pretrained": c}}
            for task, ft, f, c in (("rte", 0.8, 0.6, 0.55), ("piqa", 0.7, 0.69, 0.7), ("cola", 0.9, 0.5, 0.52))}
    correlation = {"n": 3, "pearson_r": -0.97, "pearson_p": 0.15, "pearson_ci": [-1.0, -0.9], "spearman_rho": -1.0,
                   "spearman_p": 0.0, "spearman_ci": [-1.0, -1.0], "tasks": list(rows), "excluded": []}
    results = dict(sweep_results(search=False), experiment="forget_generalization", tradeoff=None, combined={
        "experiment": "forget_generalization", "model": "smollm2-135m", "study_a_runs": {t: f"study-{t}" for t in rows}, "tasks": rows,
        "analysis": {"target": "forget_ratio", "correlations": {"confidence_pretrained": correlation}, "excluded": []}})
    html = write_sweep_report(tmp_path, results).read_text()
    ratio = rows["cola"]["forget_ratio"]
    assert f'data-key="combined.tasks.cola.forget_ratio" data-value="{json.dumps(ratio)}"' in html
    assert 'data-key="combined.analysis.correlations.confidence_pretrained.pearson_r" data-value="-0.97"' in html
    assert "Behaviour per task" in html and "Predictors of the forget ratio" in html
    assert {p.name for p in (tmp_path / "report").glob("*.png")} >= {"behaviour.png", "predictor_confidence_pretrained.png"}
    markdown = (tmp_path / "results.md").read_text()  # written with the report, linking its figures
    assert "![Accuracy per task (bars: 95 % CI; dashed: chance)](report/behaviour.png)" in markdown
    assert "](report/predictor_confidence_pretrained.png)" in markdown
    (tmp_path / "report" / "old.png").write_bytes(b"")
    write_sweep_report(tmp_path, dict(results, combined=None))  # nothing drawn together: no figure kept
    assert not list((tmp_path / "report").glob("*.png")) and "## Figures" not in (tmp_path / "results.md").read_text()
    markdown = write_sweep_markdown(tmp_path, results).read_text()
    assert "| cola | 0.500 | 0.900 | 0.500 | 0.500 | 1.000 | partial |" in markdown
    assert "| confidence_pretrained | 3 | -0.970 [-1.000, -0.900] | 0.150 | -1.000 [-1.000, -1.000] | 0.000 |" in markdown
    assert "| gradient_ascent | 0.001 | 2 | 2.060 [" in markdown  # the groups: axes, seeds, means with intervals


def test_what_each_cell_cost_sums_its_stages_by_name(tmp_path):
    """Stage seconds grouped by the key's last part (a two-task run's fine-tuning summed), in minutes; a cell with
    no stage yet has no row; the HTML report shows each cell's total."""
    results = sweep_results(search=False)
    results["cells"][0]["cost"] = {"seconds": 930.0, "cpu_threads": 1, "stages": {
        "rte/data": 6.0, "rte/finetune": 300.0, "rte/forget": 240.0, "boolq/finetune": 360.0, "order": 24.0}}
    results["cells"][1]["cost"] = {"seconds": 0.0, "cpu_threads": 1, "stages": {}}
    markdown = write_sweep_markdown(tmp_path, results).read_text()
    assert "| cell | threads | data | finetune | forget | order | total |" in markdown
    label = results["cells"][0]["label"]
    assert f"| {label} | 1 | 0.1 | 11.0 | 4.0 | 0.4 | 15.5 |" in markdown
    assert "1 cells, 0.26 hours of stage time in all." in markdown
    html = write_sweep_report(tmp_path, results).read_text()
    assert "<th>minutes</th>" in html.replace(' class="num"', "") and ">15.5<" in html


def test_beyond_the_columns_the_smaller_stages_are_other():
    from forgetlab.sweep.report import cost_table
    stages = {"a": 60.0, "b": 120.0, "c": 6.0, "d": 30.0}
    table = cost_table([{"label": "x", "cost": {"seconds": 216.0, "cpu_threads": 2, "stages": stages}}], columns=3)
    assert "| cell | threads | a | b | other | total |" in table and "| x | 2 | 1.0 | 2.0 | 0.6 | 3.6 |" in table


def test_a_sweep_over_tasks_shows_them_by_name_with_a_column_per_metric(tmp_path):
    from forgetlab.report.plots import plt
    from forgetlab.sweep.report import plot_against

    tasks = {"boolq": (0.63, None), "rte": (0.58, None), "cb": (0.9, 150)}
    cells = [{"run": f"a-{name}", "label": f"tasks={name}", "seed": 0, "status": "finished", "message": None,
              "axes": {"tasks": [{"name": name, "source": "local"}], "data.finetune_size": size},
              "values": {"tasks.*.acc_finetuned": acc}} for name, (acc, size) in tasks.items()]
    axes = ["tasks", "data.finetune_size"]
    results = {"sweep": "study-0123456789ab", "name": "study", "experiment": "forget_generalization", "axes": axes,
               "metrics": ["tasks.*.acc_finetuned"], "counts": {"finished": 3}, "cells": cells,
               "groups": group_cells(cells, axes), "tradeoff": None, "search": None, "combined": None}
    markdown = write_sweep_markdown(tmp_path, results).read_text()
    assert "| tasks | data.finetune_size | seeds | tasks.*.acc_finetuned |" in markdown
    assert "| boolq | — | 1 | 0.630 |" in markdown and "| cb | 150 | 1 | 0.900 |" in markdown
    html = write_sweep_report(tmp_path, results).read_text()
    assert "{&#x27;name&#x27;" not in html and "{'name'" not in html  # no mapping shown as Python
    fig = plot_against(results["groups"], "tasks", "tasks.*.acc_finetuned", ["tasks", "data.finetune_size"])
    assert [tick.get_text() for tick in fig.axes[0].get_xticklabels()] == ["boolq", "rte", "cb"]
    plt.close(fig)


def test_a_cross_task_sweep_shows_its_matrix_and_what_every_run_it_started_cost(tmp_path):
    """One cross-task cell (nothing varied): results.md shows the matrix (its combined view) instead of a
    one-row table of every ratio, and a cost row for each Study A run and matrix cell it started."""
    from forgetlab.experiments import EXPERIMENTS

    names = ["a", "b"]
    summary = {"crosstask": {"tasks": names, "reference": {"a": 0.8, "b": 0.9}, "not_learned": [],
                             "accuracy": {"a": {"a": 0.5, "b": 0.85}, "b": {"a": 0.6, "b": 0.5}},
                             "forget_ratio": {"a": {"a": 1.0, "b": 0.125}, "b": {"a": 0.6666, "b": 1.0}},
                             "row_order": names, "col_order": names, "variance_explained": {"rows": 0.5, "columns": 0.25, "residual": 0.25}},
               "tasks": {}}
    assert EXPERIMENTS.get("cross_task").combine([(None, summary)]) is summary
    assert EXPERIMENTS.get("cross_task").combine([(None, summary), (None, summary)]) is None  # seeds: the groups compare
    cell = {"run": "x-top", "label": "base", "axes": {}, "seed": 0, "status": "finished", "message": None, "cost": None,
            "values": {"crosstask.forget_ratio.a.b": 0.125}}
    parts = [{"run": "x-a", "label": "Study A: a", "status": "finished",
              "cost": {"seconds": 600.0, "cpu_threads": 1, "stages": {"a/finetune": 480.0, "a/forget": 120.0}}},
             {"run": "x-ab", "label": "forget a, score b", "status": "finished",
              "cost": {"seconds": 90.0, "cpu_threads": 1, "stages": {"forget": 90.0}}}]
    results = {"sweep": "ct-0123456789ab", "name": "ct", "experiment": "cross_task", "axes": [], "metrics": [],
               "counts": {"finished": 3}, "cells": [cell], "parts": parts, "groups": group_cells([cell], []),
               "tradeoff": None, "search": None, "combined": summary}
    markdown = write_sweep_markdown(tmp_path, results).read_text()
    html = write_sweep_report(tmp_path, results).read_text()
    assert "Mean over seeds" not in html and 'data-key="cells.0.values' not in html  # nor in the report
    assert 'data-key="combined.crosstask.forget_ratio.a.b"' in html and "x-top" in html
    assert "experiment cross_task, 1 cells and the 2 runs they start: 3 finished" in markdown
    assert "| forget a | 1.000 | 0.125 |" in markdown and "| forget b | 0.667 | 1.000 |" in markdown
    assert "Mean over seeds" not in markdown and "crosstask.forget_ratio.a.b" not in markdown
    assert "| Study A: a | 1 | 8.0 | 2.0 | 10.0 |" in markdown and "| forget a, score b | 1 | — | 1.5 | 1.5 |" in markdown
    assert "2 cells, 0.19 hours of stage time in all." in markdown
