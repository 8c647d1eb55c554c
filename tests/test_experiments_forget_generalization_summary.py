"""Study A's summaries as pure functions of hand-made stage payloads: per task, per cell, per sweep."""

import pytest

from forgetlab.data.prepare import PreparedTask
from scipy import stats

from forgetlab.experiments.forget_generalization.config import CrossTaskCellConfig, CrossTaskConfig, ForgetGeneralizationConfig
from forgetlab.experiments.forget_generalization.markdown import cross_task_markdown, study_a_markdown
from forgetlab.experiments.forget_generalization.summary import (
    accuracy_interval,
    cell_forget_ratio,
    cell_summary,
    combined_summary,
    final_metric,
    sweep_summary,
    task_summary,
)
from forgetlab.metrics.forgetting import NOT_LEARNED, ClassifySpec
from tests.conftest import make_docs


def scored(stage, test_acc, forget_acc, *, ci=(0.0, 1.0), train_labels=None):
    """A scoring stage's payload: step-0 rows of both splits (and a later row that must be ignored)."""
    rows = []
    for split, acc in (("test", test_acc), ("forget", forget_acc)):
        base = {"task": "toy", "stage": stage, "step": 0, "split": split}
        values = {"acc": acc, "acc_norm": acc - 0.1, "confidence": acc - 0.2, "n": 10.0}
        if ci is not None:
            values.update(acc_ci_low=ci[0], acc_ci_high=ci[1])
        if split == "forget" and train_labels is not None:
            values["acc_train_labels"] = train_labels
        rows += [dict(base, metric=name, value=value) for name, value in values.items()]
    rows.append({"task": "toy", "stage": stage, "step": 4, "split": "test", "metric": "acc", "value": 0.123})
    return {"metrics": rows, "examples": []}


def test_final_metric_and_interval_read_step_zero():
    payload = scored("finetuned", 0.8, 0.7, ci=(0.7, 0.9))
    assert final_metric(payload, "test", "acc") == 0.8 and final_metric(payload, "forget", "acc") == 0.7
    assert accuracy_interval(payload, "test") == [0.7, 0.9]
    assert accuracy_interval(scored("finetuned", 0.8, 0.7, ci=None), "test") is None


def prepared():
    docs = make_docs(10)
    return PreparedTask("toy", docs[:4], docs[4:7], docs[7:8], docs[8:], {"too_long": 1}, "given", 0, 0, "test")


def results(acc_finetuned=0.9, acc_forgotten=0.6):
    return {
        "pretrained": scored("pretrained", 0.55, 0.5),
        "finetune": {"steps": 4, "metrics": [], "examples": []},
        "finetuned": scored("finetuned", acc_finetuned, 0.85, ci=(0.8, 0.95)),
        "forget": {"steps": 6, "metrics": [], "examples": []},
        "forgotten": scored("forgotten", acc_forgotten, 0.5, train_labels=1.0),
        "analysis": {"analysis": {"order": {"test": {"rho": 0.1}}}},
    }


def test_task_summary_from_stage_payloads():
    summary = task_summary(prepared(), results(), ClassifySpec(), flipped=False)
    assert summary["acc_pretrained"] == 0.55 and summary["acc_finetuned"] == 0.9 and summary["acc_forget_test"] == 0.6
    assert summary["forget_ratio"] == pytest.approx(0.3 / 0.4) and summary["category"] == "partial"
    assert summary["acc_forget_train"] == 0.5 and summary["acc_forget_train_labels"] == 1.0
    assert summary["acc_forget_train_before"] == 0.85
    assert summary["acc_finetuned_ci"] == [0.8, 0.95] and summary["acc_norm_forget_test"] == pytest.approx(0.5)
    assert summary["confidence_pretrained"] == pytest.approx(0.35)
    assert summary["steps"] == {"finetune": 4, "forget": 6}
    assert summary["sizes"] == {"finetune": 4, "forget": 3, "validation": 1, "test": 2}
    assert summary["cleaning"] == {"too_long": 1} and summary["split_strategy"] == "given"
    assert summary["order"] == {"test": {"rho": 0.1}}
    flipped = task_summary(prepared(), results(), ClassifySpec(), flipped=True)
    assert flipped["forget_ratio"] == pytest.approx(0.3 / 0.8)


def test_a_cell_of_a_task_not_learned_has_no_ratio():
    row = {"acc_finetuned": 0.6, "category": "partial"}
    assert cell_forget_ratio(row, 0.55, flipped=False) == pytest.approx(0.5)
    assert cell_forget_ratio(row, 0.55, flipped=True) == pytest.approx(0.25)
    assert cell_forget_ratio(dict(row, category="not_learned"), 0.55, flipped=False) is None


def test_cell_summary_carries_its_pair_accuracies_and_own_ratio():
    config = CrossTaskCellConfig(forget_run="study-0123456789ab", eval_run="study-ba9876543210", forget_task="a", eval_task="b")
    forget = {"steps": 3, "losses": [0.9, 0.8, 0.7], "seconds": 1.5}
    summary = cell_summary(config, "cell-1", {"acc_finetuned": 0.8, "category": "partial"}, forget,
                           acc_eval_test=0.65, acc_forget_train=0.5, acc_forget_train_labels=0.9, flipped=False)
    assert summary["forget_ratio"] == pytest.approx(0.15 / 0.3) and summary["reference_acc_finetuned"] == 0.8
    assert (summary["forget_task"], summary["eval_task"]) == ("a", "b")
    assert (summary["forget_run"], summary["eval_run"]) == ("study-0123456789ab", "study-ba9876543210")
    assert summary["steps"] == 3 and summary["losses"] == [0.9, 0.8, 0.7] and "seconds" not in summary


def test_sweep_summary_builds_the_matrix_against_each_tasks_reference():
    config = CrossTaskConfig(name="sweep", tasks=["a", "b"])
    study_a = {
        "study_a_runs": {"a": "sweep-0123456789ab", "b": "sweep-ba9876543210"},
        "tasks": {"a": {"acc_finetuned": 0.9, "category": "partial"}, "b": {"acc_finetuned": 0.52, "category": NOT_LEARNED}},
        "analysis": {"excluded": ["b"]},
    }
    accuracy_after = {"a": {"a": 0.6, "b": 0.5}, "b": {"a": 0.7, "b": 0.5}}
    fit = {"a": {"a": 1.0, "b": 0.9}, "b": {"a": 0.8, "b": 1.0}}
    cells = {"a": {"a": "sweep-tasks-0123456789ab", "b": "cell-ab"}, "b": {"a": "cell-ba", "b": "sweep-tasks-0123456789ab"}}
    summary = sweep_summary(config, "sweep-1", study_a, cells, accuracy_after, fit)
    assert summary["study_a_runs"] == study_a["study_a_runs"] and summary["cells"] == cells
    assert summary["tasks"] == study_a["tasks"] and summary["analysis"] == {"excluded": ["b"]}
    matrix = summary["crosstask"]
    assert matrix["reference"] == {"a": 0.9, "b": 0.52} and matrix["not_learned"] == ["b"]
    assert matrix["forget_ratio"]["b"]["a"] == pytest.approx(0.2 / 0.4) and matrix["forget_ratio"]["a"]["b"] is None
    assert matrix["forget_fit"] == fit
    without_predictors = {key: value for key, value in study_a.items() if key != "analysis"}
    assert "analysis" not in sweep_summary(config, "sweep-1", without_predictors, cells, accuracy_after, fit)


def one_task_run(task, forget_ratio, confidence, *, category="partial", seed=0, predictors=True):
    """A one-task Study A run as a sweep cell: its config and a summary with the task's predictors."""
    config = ForgetGeneralizationConfig(name="study", seed=seed, tasks=[task], analysis={"predictors": predictors})
    row = {"forget_ratio": forget_ratio, "category": category,
           "predictors": {"difficulty": 0.9 - (forget_ratio or 0) / 10, "confidence_pretrained": confidence}}
    return config, {"run": f"study-{task}", "tasks": {task: row}}


def test_combined_summary_puts_one_task_runs_together_and_correlates_across_them():
    ratios, confidences = [0.9, 0.1, 0.5, 0.7], [0.52, 0.71, 0.66, 0.58]
    cells = [one_task_run(t, r, c) for t, r, c in zip("abcd", ratios, confidences)]
    cells.append(one_task_run("e", None, 0.99, category=NOT_LEARNED))
    combined = combined_summary(cells)
    assert combined["study_a_runs"] == {t: f"study-{t}" for t in "abcde"} and list(combined["tasks"]) == list("abcde")
    assert combined["tasks"]["b"] == cells[1][1]["tasks"]["b"]
    analysis = combined["analysis"]
    assert analysis["excluded"] == ["e"] and analysis["target"] == "forget_ratio"
    confidence = analysis["correlations"]["confidence_pretrained"]
    assert confidence["n"] == 4 and confidence["tasks"] == list("abcd")  # e, not learned, is left out
    assert confidence["pearson_r"] == pytest.approx(stats.pearsonr(confidences, ratios)[0], abs=1e-12)
    assert confidence["spearman_rho"] == pytest.approx(stats.spearmanr(confidences, ratios)[0], abs=1e-12)
    assert analysis["correlations"]["difficulty"]["pearson_r"] == pytest.approx(-1.0, abs=1e-12)
    assert "analysis" not in combined_summary([one_task_run(t, 0.5, 0.6, predictors=False) for t in "ab"])


def test_cells_that_are_not_one_study_are_not_combined():
    assert combined_summary([one_task_run("a", 0.5, 0.6)]) is None  # one task: nothing across tasks
    assert combined_summary([one_task_run("a", 0.5, 0.6), one_task_run("a", 0.4, 0.6, seed=1)]) is None  # seeds
    assert combined_summary([one_task_run("a", 0.5, 0.6), one_task_run("a", 0.4, 0.6)]) is None  # a task twice
    assert combined_summary([one_task_run("a", 0.5, 0.6), one_task_run("b", 0.4, 0.6, seed=1)]) is None  # seeds differ


def test_the_combined_study_reads_as_markdown_tables():
    cells = [one_task_run(t, r, c) for t, r, c in zip("abc", [0.9, 0.1, 0.5], [0.52, 0.71, 0.66])]
    cells.append(one_task_run("d", None, 0.99, category=NOT_LEARNED))
    combined = combined_summary(cells)
    combined["tasks"]["a"].update(acc_pretrained=0.25, acc_pretrained_ci=[0.2, 0.3], acc_finetuned=0.745,
                                  order={"forget": {"n": 40, "spearman_rho": -0.31, "spearman_ci": [-0.6, 0.0], "spearman_p": 0.0004}})
    text = study_a_markdown(combined)
    assert "| a | 0.250 [0.200, 0.300] | 0.745 | — | — | 0.900 | partial |" in text
    assert "| d | — | — | — | — | — | not learned |" in text and "Not learned (" in text and ": d." in text
    r = combined["analysis"]["correlations"]["confidence_pretrained"]["pearson_r"]
    assert f"| confidence_pretrained | 3 | {r:.3f} [" in text
    assert "| a | forget | 40 | -0.310 [-0.600, 0.000] | 4.0e-04 |" in text
    assert study_a_markdown({"tasks": {}}) == ""


def test_the_cross_task_matrix_reads_as_markdown_in_its_clustered_order():
    """Rows and columns in the summary's clustered order (not the task order), every value of a row in its column,
    the references, the variance shares and the task not learned; the Study A tables follow, without an order
    table when the runs kept no trajectories."""
    names = ["a", "b", "c"]
    ratio = {"a": {"a": 1.0, "b": 0.25, "c": None}, "b": {"a": -0.125, "b": 0.5, "c": None}, "c": {"a": 2.0, "b": 0.75, "c": None}}
    accuracy = {a: {b: 0.5 + 0.01 * (3 * i + j) for j, b in enumerate(names)} for i, a in enumerate(names)}
    summary = {"crosstask": {"tasks": names, "reference": {"a": 0.8, "b": 0.7, "c": 0.5}, "accuracy": accuracy,
                             "forget_ratio": ratio, "not_learned": ["c"], "row_order": ["c", "a", "b"], "col_order": ["b", "a", "c"],
                             "variance_explained": {"rows": 0.125, "columns": 0.5, "residual": 0.375},
                             "forget_fit": {a: {b: 1.0 for b in names} for a in names}},
               "tasks": {name: {"acc_finetuned": 0.8, "category": "partial", "order": {}} for name in names}}
    text = cross_task_markdown(summary)
    assert "|  | score b | score a | score c |" in text
    rows = [line for line in text.splitlines() if line.startswith("| forget ")]
    assert rows[:3] == ["| forget c | 0.750 | 2.000 | — |", "| forget a | 0.250 | 1.000 | — |", "| forget b | 0.500 | -0.125 | — |"]
    assert "| forget a | 0.510 | 0.500 | 0.520 |" in rows[3:6]  # accuracy after forgetting: b, a, c columns
    assert "reference): b 0.700, a 0.800, c 0.500." in text and "no ratio in their columns: c." in text
    assert "(rows) 0.125, the task scored (columns) 0.500, neither (residual) 0.375." in text
    assert text.index("### Cross-task forget ratio") < text.index("### Behaviour per task")
    assert "Learn order" not in text  # no trajectories, no order table
    assert cross_task_markdown({"tasks": {}}) == ""
