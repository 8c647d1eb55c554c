"""Study A's forgetting metrics (Zhang, Choshen & Andreas, COLM 2024, arXiv 2409.02228).

All accuracies are on binarized items, so chance is 0.5.

- ``forget_gap = acc_F - 0.5``: how far held-out accuracy after forgetting stays above chance
  (lower = more forgetting; 0 = chance).
- ``forget_ratio = (acc_FT - acc_F) / (acc_FT - 0.5)``: the share of the fine-tuned gain over chance
  that forgetting removed (1 = fully forgotten, 0 = not at all; unclipped; undefined when acc_FT is not
  above chance, and for a task that was not learned, see below).
- flipped labels push towards 0 rather than 0.5: ``(acc_FT - acc_F) / (2·acc_FT - 1)``.

A task counts as **learned** (:func:`task_learned`) when the lower end of acc_FT's 95 % interval is above
both chance and acc_PT. Otherwise there is no gain to forget: its ratio is None and it is flagged
``not_learned`` instead of being classified (it is also left out of the cross-task matrix columns and the
predictor correlations).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from pydantic import Field

from forgetlab.config import Spec
from forgetlab.metrics.registry import register_metric

CHANCE = 0.5

NOT_GENERALIZED = "not_generalized"  # acc_F ≈ acc_FT: forgetting did not carry over to new items
PARTIAL = "partial"  # acc_F dropped but stays above pre-trained
FULL = "full"  # acc_F at or below pre-trained, possibly chance
NOT_FIT = "forget_set_not_fit"  # the forget set itself was not forgotten: not classified
NOT_LEARNED = "not_learned"  # acc_FT not above chance and acc_PT by its interval: nothing to forget, not classified

CATEGORIES = (NOT_GENERALIZED, PARTIAL, FULL, NOT_FIT, NOT_LEARNED)


class ClassifySpec(Spec):
    """Thresholds of the three behaviours of Study A (accuracies, chance = 0.5).

    Before any of them: a task whose fine-tuned accuracy is not above chance and pre-trained accuracy by
    its 95 % interval (lower bound > max(0.5, acc_PT); without intervals acc_FT ≥ 0.5 + ``ratio_guard``
    and > acc_PT) is ``not_learned`` instead of one of the three, with no forget ratio
    (:func:`task_learned`).
    """

    same_tolerance: float = Field(0.05, ge=0, description="acc_F >= acc_FT - this: forgetting did not generalize")
    pretrained_tolerance: float = Field(0.02, ge=0, description="acc_F <= acc_PT + this: forgot to/below pre-trained")
    fit_tolerance: float = Field(
        0.1, ge=0, description="forget set fit when its accuracy on the labels it was trained on is >= 1 - this "
        "(fallback without them: acc_F_train <= 0.5 + this)"
    )
    ratio_guard: float = Field(0.01, gt=0, description="forget_ratio is undefined when acc_FT - 0.5 < this")


def forget_gap(acc_forget_test: float) -> float:
    """Held-out accuracy after forgetting minus chance."""
    return acc_forget_test - CHANCE


def forget_ratio(acc_finetuned: float, acc_forget_test: float, *, flipped: bool = False, guard: float = 0.01) -> float | None:
    """Share of the fine-tuned gain removed by forgetting; None unless acc_FT is at least ``guard`` above
    chance (at or below chance the denominator is ~0 or negative and the ratio means nothing)."""
    if acc_finetuned - CHANCE < guard:
        return None
    denominator = (2 * acc_finetuned - 1) if flipped else (acc_finetuned - CHANCE)
    return (acc_finetuned - acc_forget_test) / denominator


def task_learned(
    acc_pretrained: float, acc_finetuned: float, finetuned_ci: Sequence[float] | None, rules: ClassifySpec
) -> bool:
    """Whether fine-tuning taught the task: the lower end of acc_FT's 95 % interval is above chance
    *and* above acc_PT.

    Above chance, or the forget ratio's denominator is noise or negative; above pre-trained, or the three
    behaviours, which place acc_F between acc_FT and acc_PT, cannot be told apart. acc_PT is taken as
    measured (both are scored on the same test items; the interval bounds acc_FT's sampling noise).
    Without an interval (``eval.bootstrap: 0``) the point estimate must clear chance by
    ``rules.ratio_guard`` and exceed acc_PT.
    """
    if finetuned_ci is None:
        return acc_finetuned - CHANCE >= rules.ratio_guard and acc_finetuned > acc_pretrained
    return finetuned_ci[0] > max(CHANCE, acc_pretrained)


def forget_set_fit(acc_forget_train: float, rules: ClassifySpec, acc_forget_train_labels: float | None = None) -> bool:
    """Whether forgetting fit its forget set.

    Judged on the labels it was trained on when known: accuracy against them ≥ 1 − ``fit_tolerance``.
    (Against the TRUE labels a perfectly fit random-label set scores the share of random labels that
    happen to equal the gold one: 0.5 on average but, for 100 items, 0.4–0.6 one time in twenty; so
    the true-label rule, accuracy ≤ 0.5 + ``fit_tolerance``, is only the fallback.)
    """
    if acc_forget_train_labels is not None:
        return acc_forget_train_labels >= 1 - rules.fit_tolerance
    return acc_forget_train <= CHANCE + rules.fit_tolerance


def classify(
    acc_pretrained: float,
    acc_finetuned: float,
    acc_forget_test: float,
    acc_forget_train: float,
    rules: ClassifySpec,
    acc_forget_train_labels: float | None = None,
    *,
    finetuned_ci: Sequence[float] | None = None,
) -> str:
    """One of the three behaviours of Study A, or ``not_learned`` (:func:`task_learned` fails: nothing
    to forget) or ``forget_set_not_fit``; rules are applied in this order."""
    if not task_learned(acc_pretrained, acc_finetuned, finetuned_ci, rules):
        return NOT_LEARNED
    if not forget_set_fit(acc_forget_train, rules, acc_forget_train_labels):
        return NOT_FIT
    if acc_forget_test >= acc_finetuned - rules.same_tolerance:
        return NOT_GENERALIZED
    if acc_forget_test > acc_pretrained + rules.pretrained_tolerance:
        return PARTIAL
    return FULL


@dataclass
class TaskOutcome:
    """The headline numbers of one task."""

    acc_pretrained: float
    acc_finetuned: float
    acc_forget_test: float
    acc_forget_train: float
    forget_gap: float
    forget_ratio: float | None
    category: str
    forget_set_fit: bool
    learned: bool

    def to_dict(self) -> dict:
        return asdict(self)


def task_outcome(
    acc_pretrained: float,
    acc_finetuned: float,
    acc_forget_test: float,
    acc_forget_train: float,
    rules: ClassifySpec,
    *,
    flipped: bool = False,
    acc_forget_train_labels: float | None = None,
    finetuned_ci: Sequence[float] | None = None,
) -> TaskOutcome:
    """Gap, ratio and category from the four accuracies (and the forget set's accuracy on its training
    labels, and acc_FT's 95 % interval); the ratio is None for a task that was not learned."""
    learned = task_learned(acc_pretrained, acc_finetuned, finetuned_ci, rules)
    ratio = forget_ratio(acc_finetuned, acc_forget_test, flipped=flipped, guard=rules.ratio_guard)
    return TaskOutcome(
        acc_pretrained=acc_pretrained,
        acc_finetuned=acc_finetuned,
        acc_forget_test=acc_forget_test,
        acc_forget_train=acc_forget_train,
        forget_gap=forget_gap(acc_forget_test),
        forget_ratio=ratio if learned else None,
        category=classify(acc_pretrained, acc_finetuned, acc_forget_test, acc_forget_train, rules, acc_forget_train_labels,
                          finetuned_ci=finetuned_ci),
        forget_set_fit=forget_set_fit(acc_forget_train, rules, acc_forget_train_labels),
        learned=learned,
    )


def accuracy(correct: Sequence[bool]) -> float:
    """Fraction correct (NaN-free: an empty list is an error)."""
    if not correct:
        raise ValueError("accuracy of an empty item list")
    return sum(bool(c) for c in correct) / len(correct)


_STUDY_A = "Zhang, Choshen & Andreas 2024 (COLM)"
register_metric("forget_gap", "lower", _STUDY_A, "held-out accuracy after forgetting minus chance (0.5)")
register_metric("forget_ratio", "higher", _STUDY_A, "share of the fine-tuned gain over chance that forgetting removed (1: all)")
for _name, _what in (("acc_pretrained", "pre-trained"), ("acc_finetuned", "fine-tuned"), ("acc_forget_test", "forgotten, held-out")):
    register_metric(_name, None, _STUDY_A, f"test accuracy of the {_what} model")
register_metric("acc_forget_train", "closer", _STUDY_A, "forget-set accuracy on the true labels after forgetting (chance 0.5)", 0.5)
