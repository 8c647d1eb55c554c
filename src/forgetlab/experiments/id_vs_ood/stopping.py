"""When a group counts as unlearned, and when gradient ascent on it stops (``unlearn.stop``).

Two criteria: ``exposure_baseline`` (groups with references, i.e. canaries: mean exposure at or below the
exposure of a never-seen canary, plus a tolerance) and ``genex_zero`` (every group: mean generalized exposure
at or below 0). Both are tracked for the summary's steps-to-unlearn; the enabled ones stop the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, Literal, Sequence

import numpy as np

from forgetlab.data.canaries import GroupKind
from forgetlab.metrics.exposure import LOG2_E, Convention, expected_unseen_exposure, exposure_rank


class Criterion(StrEnum):
    """A criterion of "unlearned" (the names ``unlearn.stop.rules`` lists)."""

    EXPOSURE_BASELINE = "exposure_baseline"
    GENEX_ZERO = "genex_zero"


class StopUnlearning(Exception):
    """Raised from the evaluation callback when the enabled criteria say stop (caught by the runner)."""


@dataclass
class UnlearningCriteria:
    """Tracks when each criterion that applies to a group is first met, and whether the enabled ones say stop.

    ``exposure_baseline`` applies to groups with references only (mean exposure <= ``baseline + tolerance``);
    ``genex_zero`` to every group (mean generalized exposure <= 0).
    """

    kind: GroupKind
    enabled: Sequence[Criterion]
    baseline: float
    mode: Literal["all", "any"] = "all"
    tolerance: float = 0.0
    first: dict[Criterion, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.first = {criterion: None for criterion in self.applicable()}

    def applicable(self) -> list[Criterion]:
        """The criteria that apply to the group: exposure needs references to rank against."""
        if self.kind.has_references:
            return [Criterion.EXPOSURE_BASELINE, Criterion.GENEX_ZERO]
        return [Criterion.GENEX_ZERO]

    @property
    def primary(self) -> Criterion:
        """The criterion behind "steps until unlearned": exposure for canaries, GenEx otherwise."""
        return self.applicable()[0]

    def met(self, criterion: Criterion, values: dict[str, float]) -> bool:
        """Whether one evaluation's group values meet ``criterion``."""
        metric, bound = {
            Criterion.EXPOSURE_BASELINE: ("exposure_mean", self.baseline + self.tolerance),
            Criterion.GENEX_ZERO: ("genex_mean", 0.0),
        }[criterion]
        return values[metric] <= bound

    def update(self, step: int, values: dict[str, float]) -> list[Criterion]:
        """Record the criteria first met at ``step``; returns them."""
        newly = [c for c in self.applicable() if self.first[c] is None and self.met(c, values)]
        for criterion in newly:
            self.first[criterion] = step
        return newly

    @property
    def should_stop(self) -> bool:
        active = [self.first[criterion] is not None for criterion in self.enabled if criterion in self.first]
        if not active:
            return False
        return all(active) if self.mode == "all" else any(active)


def unseen_exposure(scores: dict[str, Any], convention: Convention) -> float | None:
    """Mean exposure of the never-inserted control canaries under one model's baseline ``scores`` (None without any)."""
    unseen = np.asarray(scores["unseen"][0])
    if not unseen.size:
        return None
    return float(exposure_rank(-unseen, -np.asarray(scores["references"][0]), convention).mean())


def _measured_unseen(scores: dict[str, Any], n_references: int, convention: Convention) -> float:
    measured = unseen_exposure(scores, convention)
    if measured is None:
        raise ValueError("unlearn.stop.exposure_baseline 'unseen' needs canaries.n_unseen > 0")
    return measured


BASELINES: dict[str, Callable[[dict[str, Any], int, Convention], float]] = {
    "theory": lambda scores, n_references, convention: LOG2_E,
    "expected": lambda scores, n_references, convention: expected_unseen_exposure(n_references, convention),
    "unseen": _measured_unseen,
}


def exposure_baseline(choice: float | str, original_scores: dict[str, Any], n_references: int, convention: Convention) -> float:
    """The exposure an unlearned canary should come down to (``unlearn.stop.exposure_baseline``): a number,
    ``theory`` (log2 e), ``expected`` (the exact mean for ``n_references``) or ``unseen`` (measured on the
    unseen canaries under the original model, ``original_scores``)."""
    if isinstance(choice, (int, float)):
        return float(choice)
    return BASELINES[choice](original_scores, n_references, convention)
