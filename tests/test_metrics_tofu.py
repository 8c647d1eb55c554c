"""TOFU metrics against re-typed copies of the published code (locuslab/tofu ``aggregate_eval_stat.py`` at
bdc209e, ``utils.py``; OpenUnlearning ``src/evals/metrics/memorization.py``, ``privacy.py`` at d3d7cf9)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import hmean, ks_2samp

from forgetlab.metrics.rouge import rouge_l
from forgetlab.metrics.tofu import (
    forget_quality, model_utility, option_probability, probability, truth_ratio_forget, truth_ratio_kept, truth_ratios,
)

RNG = np.random.default_rng(7)


def eval_result(n: int, m: int, forget: bool) -> dict:
    """One set's losses in TOFU's eval-log layout (``{index: value}``), drawn at random."""
    gt = RNG.uniform(0.2, 3.0, n)
    para = RNG.uniform(0.2, 3.0, n)
    pert = RNG.uniform(0.2, 3.0, (n, m))
    rouge = RNG.uniform(0, 1, n)
    return {
        "avg_gt_loss": dict(enumerate(gt)), "avg_paraphrased_loss": dict(enumerate(para)),
        "average_perturb_loss": {i: list(row) for i, row in enumerate(pert)}, "rougeL_recall": dict(enumerate(rouge)),
    }


def tofu_model_utility(eval_result_dict: dict) -> dict:
    """``aggregate_eval_stat.get_model_utility``, re-typed (task names as in its ``eval_task_dict``)."""
    eval_task_dict = {"eval_real_author_wo_options.json": "Real Authors", "eval_real_world_wo_options.json": "Real World",
                      "eval_log.json": "Retain", "eval_log_forget.json": "Forget"}
    output_result = {}
    for k in eval_task_dict:
        if "eval_log" in k:
            gt_probs = np.exp(-1 * np.array(list(eval_result_dict[k]["avg_gt_loss"].values())))
            avg_gt_prob = np.mean(gt_probs)
        else:
            avg_true_prob = np.exp(-1 * np.array(list(eval_result_dict[k]["avg_gt_loss"].values())))
            avg_false_prob = np.exp(-1 * np.array(list(eval_result_dict[k]["average_perturb_loss"].values())))
            avg_all_prob = np.concatenate([np.expand_dims(avg_true_prob, axis=-1), avg_false_prob], axis=1).sum(-1)
            avg_gt_prob = np.mean(avg_true_prob / avg_all_prob)
        output_result[f"Prob. {eval_task_dict[k]}"] = avg_gt_prob
        output_result[f"ROUGE {eval_task_dict[k]}"] = np.array(list(eval_result_dict[k]["rougeL_recall"].values())).mean()
        avg_paraphrase_np_values = np.array(list(eval_result_dict[k]["avg_paraphrased_loss"].values()))
        avg_perturbed_np_values = np.array(list(eval_result_dict[k]["average_perturb_loss"].values())).mean(axis=-1)
        curr_stat_1 = np.exp(avg_perturbed_np_values - avg_paraphrase_np_values)
        if "forget" in k:
            paraphrased_perturb_ratio = np.mean(np.minimum(curr_stat_1, 1 / curr_stat_1))
        else:
            paraphrased_perturb_ratio = np.mean(np.maximum(0, 1 - 1 / curr_stat_1))
        output_result[f"Truth Ratio {eval_task_dict[k]}"] = paraphrased_perturb_ratio
    output_result["Model Utility"] = hmean([v for k, v in output_result.items() if "Forget" not in k])
    return output_result


def ours(result: dict, options: bool) -> dict[str, float]:
    gt = list(result["avg_gt_loss"].values())
    pert = list(result["average_perturb_loss"].values())
    prob = option_probability(gt, pert) if options else probability(gt)
    ratios = truth_ratios(list(result["avg_paraphrased_loss"].values()), pert)
    return {"probability": float(prob.mean()), "rouge_l_recall": float(np.mean(list(result["rougeL_recall"].values()))),
            "ratios": ratios}


def test_model_utility_and_truth_ratios_equal_tofu_aggregate_eval_stat() -> None:
    logs = {"eval_log.json": eval_result(400, 5, False), "eval_log_forget.json": eval_result(40, 5, True),
            "eval_real_author_wo_options.json": eval_result(100, 3, False), "eval_real_world_wo_options.json": eval_result(117, 3, False)}
    # real authors / world facts have no paraphrase: TOFU scores the answer itself in its place
    for k in ("eval_real_author_wo_options.json", "eval_real_world_wo_options.json"):
        logs[k]["avg_paraphrased_loss"] = logs[k]["avg_gt_loss"]
    expected = tofu_model_utility(logs)
    values = {}
    for key, name, options in (("eval_log.json", "retain", False), ("eval_real_author_wo_options.json", "real_authors", True),
                               ("eval_real_world_wo_options.json", "world_facts", True)):
        got = ours(logs[key], options)
        values.update({f"{name}/probability": got["probability"], f"{name}/rouge_l_recall": got["rouge_l_recall"],
                       f"{name}/truth_ratio": truth_ratio_kept(got["ratios"])})
    assert values["retain/probability"] == pytest.approx(expected["Prob. Retain"], rel=1e-12)
    assert values["real_authors/probability"] == pytest.approx(expected["Prob. Real Authors"], rel=1e-12)
    assert values["world_facts/truth_ratio"] == pytest.approx(expected["Truth Ratio Real World"], rel=1e-12)
    assert values["retain/truth_ratio"] == pytest.approx(expected["Truth Ratio Retain"], rel=1e-12)
    assert model_utility(values) == pytest.approx(expected["Model Utility"], rel=1e-12)
    forget = ours(logs["eval_log_forget.json"], False)
    assert truth_ratio_forget(forget["ratios"]) == pytest.approx(expected["Truth Ratio Forget"], rel=1e-12)
    assert forget["probability"] == pytest.approx(expected["Prob. Forget"], rel=1e-12)


def test_forget_quality_equals_tofu_get_forget_quality() -> None:
    unlearn, retain = eval_result(40, 5, True), eval_result(40, 5, True)

    def tofu_stat(result: dict) -> np.ndarray:  # get_forget_quality: exp(perturbed − paraphrased) = 1/R
        perturbed = np.array(list(result["average_perturb_loss"].values())).mean(axis=-1)
        return np.exp(perturbed - np.array(list(result["avg_paraphrased_loss"].values())))

    expected = ks_2samp(tofu_stat(unlearn), tofu_stat(retain)).pvalue
    r_unlearn, r_retain = (ours(x, False)["ratios"] for x in (unlearn, retain))
    assert forget_quality(r_unlearn, r_retain) == pytest.approx(expected, rel=1e-12)
    assert forget_quality(r_retain, r_retain) == 1.0
    shifted = r_retain * 50  # a model that prefers the wrong answers everywhere
    assert forget_quality(shifted, r_retain) < 1e-10


def test_truth_ratio_by_hand_and_both_perturbed_means() -> None:
    # paraphrase loss 1.0; perturbed losses 2.0 and 4.0
    geometric = truth_ratios([1.0], [[2.0, 4.0]])[0]
    assert geometric == pytest.approx(np.exp(1.0 - 3.0))
    arithmetic = truth_ratios([1.0], [[2.0, 4.0]], mean="arithmetic")[0]
    assert arithmetic == pytest.approx((np.exp(-2.0) + np.exp(-4.0)) / 2 / np.exp(-1.0))  # TOFU utils.get_model_utility
    assert truth_ratio_kept([0.25, 1.5]) == pytest.approx((0.75 + 0.0) / 2)
    assert truth_ratio_forget([0.5, 4.0]) == pytest.approx((0.5 + 0.25) / 2)
    assert option_probability([np.log(2)], [[np.log(4), np.log(4)]])[0] == pytest.approx(0.5 / (0.5 + 0.25 + 0.25))
    with pytest.raises(ValueError, match="mean must be"):
        truth_ratios([1.0], [[1.0]], mean="median")


def test_model_utility_needs_all_nine_and_is_zero_with_a_zero() -> None:
    values = {f"{s}/{m}": 0.5 for s in ("retain", "real_authors", "world_facts") for m in ("probability", "rouge_l_recall", "truth_ratio")}
    assert model_utility(values) == pytest.approx(0.5)
    values["retain/probability"] = 0.1
    assert model_utility(values) == pytest.approx(9 / (8 / 0.5 + 1 / 0.1))
    assert model_utility(dict(values, **{"world_facts/truth_ratio": 0.0})) == 0.0
    with pytest.raises(KeyError, match="world_facts/rouge_l_recall"):
        model_utility({k: v for k, v in values.items() if k != "world_facts/rouge_l_recall"})


def test_rouge_l_recall_and_f1_by_hand() -> None:
    # reference 4 tokens, generation 3 tokens; LCS "the cat sat" = 3 (stemmer: "sitting" ≠ "sat")
    recall = rouge_l(["the cat sat"], ["The cat sat down"], "recall")[0]
    assert recall == pytest.approx(3 / 4)
    f1 = rouge_l(["the cat sat"], ["The cat sat down"], "fmeasure")[0]
    assert f1 == pytest.approx(2 * (3 / 4) * 1.0 / (3 / 4 + 1.0))
    # the Porter stemmer matches "writes" with "writing"; without it they differ
    assert rouge_l(["she writes"], ["she writing"], "recall")[0] == 1.0
    assert rouge_l(["she writes"], ["she writing"], "recall", stemmer=False)[0] == 0.5
    with pytest.raises(ValueError, match="2 generated texts for 1 references"):
        rouge_l(["a", "b"], ["a"], "recall")
