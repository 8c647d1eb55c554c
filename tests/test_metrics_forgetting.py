"""Study A's forgetting metrics: gap, ratio, the learned rule, forget-set fit and the behaviour categories."""

import pytest

from forgetlab.metrics.forgetting import (
    FULL, NOT_FIT, NOT_GENERALIZED, NOT_LEARNED, PARTIAL, ClassifySpec, classify, forget_gap, forget_ratio, task_learned,
    task_outcome,
)

RULES = ClassifySpec()


def test_gap_and_ratio_by_hand():
    assert forget_gap(0.69) == pytest.approx(0.19)
    assert forget_ratio(0.9, 0.7) == pytest.approx(0.2 / 0.4)
    assert forget_ratio(0.9, 0.5) == pytest.approx(1.0)
    assert forget_ratio(0.9, 0.95) == pytest.approx(-0.125)  # unclipped
    assert forget_ratio(0.9, 0.1, flipped=True) == pytest.approx(0.8 / 0.8)
    assert forget_ratio(0.505, 0.5) is None  # acc_FT at chance: undefined
    assert forget_ratio(0.457, 0.457) is None  # below chance: the denominator is negative (it gave −0.0)
    assert forget_ratio(0.45, 0.5) is None  # (it gave 1.0: "fully forgotten")
    assert forget_ratio(0.3, 0.2, flipped=True) is None


@pytest.mark.parametrize(
    "pt, ft, f, ftrain, expected",
    [
        (0.6, 0.9, 0.88, 0.5, NOT_GENERALIZED),
        (0.6, 0.9, 0.75, 0.52, PARTIAL),
        (0.6, 0.9, 0.61, 0.5, FULL),
        (0.6, 0.9, 0.5, 0.45, FULL),
        (0.6, 0.9, 0.5, 0.8, NOT_FIT),
    ],
)
def test_categories(pt, ft, f, ftrain, expected):
    assert classify(pt, ft, f, ftrain, RULES) == expected


def test_thresholds_are_options():
    loose = ClassifySpec(same_tolerance=0.2)
    assert classify(0.6, 0.9, 0.75, 0.5, loose) == NOT_GENERALIZED
    assert classify(0.6, 0.9, 0.5, 0.65, ClassifySpec(fit_tolerance=0.2)) == FULL


def test_fit_is_judged_on_the_training_labels_when_known():
    # Random labels that agree with gold on 65 % of the items, fit perfectly: acc vs TRUE labels is 0.65.
    assert classify(0.6, 0.9, 0.7, 0.65, RULES, acc_forget_train_labels=1.0) == PARTIAL
    assert classify(0.6, 0.9, 0.7, 0.5, RULES, acc_forget_train_labels=0.85) == NOT_FIT
    assert classify(0.6, 0.9, 0.7, 0.65, RULES) == NOT_FIT  # fallback: true labels only
    outcome = task_outcome(0.6, 0.9, 0.7, 0.65, RULES, acc_forget_train_labels=0.9)
    assert outcome.forget_set_fit and outcome.category == PARTIAL


def test_outcome_carries_every_field():
    outcome = task_outcome(0.6, 0.9, 0.7, 0.5, RULES).to_dict()
    assert set(outcome) >= {"acc_pretrained", "acc_finetuned", "acc_forget_test", "acc_forget_train", "forget_gap", "forget_ratio",
                            "category", "forget_set_fit", "learned"}
    assert outcome["forget_ratio"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "pt, ft, ci, learned",
    [
        (0.6, 0.9, (0.85, 0.95), True),
        (0.427, 0.457, (0.39, 0.52), False),  # both below chance
        (0.45, 0.56, (0.49, 0.63), False),  # the interval reaches chance
        (0.30, 0.60, (0.50, 0.70), False),  # lower end exactly at chance: not above it
        (0.70, 0.75, (0.68, 0.82), False),  # above chance, but not above pre-trained by its interval
        (0.70, 0.78, (0.71, 0.85), True),
        (0.40, 0.52, None, True),  # no interval: 0.5 + ratio_guard and above pre-trained
        (0.40, 0.505, None, False),
        (0.60, 0.58, None, False),
    ],
)
def test_learned_rule(pt, ft, ci, learned):
    assert task_learned(pt, ft, ci, RULES) is learned


def test_a_task_not_learned_is_flagged_not_classified():
    """The reported run: pre-trained 0.427, fine-tuned 0.457 (both below chance) gave forget_ratio −0.0 and
    ``not_generalized``; it is ``not_learned`` with no ratio, before the forget-set fit is even looked at."""
    ci = (0.39, 0.52)
    outcome = task_outcome(0.427, 0.457, 0.457, 0.5, RULES, acc_forget_train_labels=1.0, finetuned_ci=ci)
    assert outcome.category == NOT_LEARNED and outcome.forget_ratio is None and not outcome.learned
    assert outcome.forget_gap == pytest.approx(-0.043) and outcome.forget_set_fit
    assert classify(0.427, 0.457, 0.457, 0.9, RULES, acc_forget_train_labels=0.2, finetuned_ci=ci) == NOT_LEARNED
    # above chance but no gain over pre-trained: the three behaviours cannot be told apart
    flat = task_outcome(0.70, 0.75, 0.70, 0.5, RULES, acc_forget_train_labels=1.0, finetuned_ci=(0.68, 0.82))
    assert flat.category == NOT_LEARNED and flat.forget_ratio is None
    learned = task_outcome(0.70, 0.78, 0.70, 0.5, RULES, acc_forget_train_labels=1.0, finetuned_ci=(0.71, 0.85))
    assert learned.learned and learned.category == FULL and learned.forget_ratio == pytest.approx(0.08 / 0.28)
    assert classify(0.6, 0.9, 0.88, 0.5, RULES, finetuned_ci=(0.85, 0.95)) == NOT_GENERALIZED
