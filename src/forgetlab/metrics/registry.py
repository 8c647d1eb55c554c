"""The metric registry: every number forgetlab selects on or reports, with which way is better and where it
comes from.

A :class:`Metric` is named as recorded without its set (``loss``, ``verbatim``, ``min_k_pp_auc`` ...).
``better`` says which way is better **on the data being forgotten**: ``higher``, ``lower``, ``closer`` (to
``target``, e.g. a membership AUC of 0.5 = indistinguishable) or None for a descriptive number (a count, an
interval bound). On data that must be kept (retain, utility) ``higher``/``lower`` swap: a forget loss should
rise, a utility loss should not. Best-step selection and the report read directions from here, never from a
recipe. Each metric module registers its own metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from forgetlab.registry import Registry

Better = Literal["higher", "lower", "closer"]
Role = Literal["forget", "keep", "observe"]


@dataclass(frozen=True)
class Metric:
    """One metric: its name, which way is better when forgetting, its source and what it measures."""

    name: str
    better: Better | None
    source: str
    description: str
    target: float | None = None

    def __post_init__(self) -> None:
        if (self.better == "closer") != (self.target is not None):
            raise ValueError(f"metric {self.name}: a target goes with better='closer' and only with it")

    def direction(self, role: Role) -> Better | None:
        """Which way is better for data in ``role``: forget (as declared), keep (higher/lower swapped), observe (none)."""
        if role == "observe" or self.better is None:
            return None
        if role == "keep" and self.better != "closer":
            return "lower" if self.better == "higher" else "higher"
        return self.better

    def badness(self, value: float, role: Role = "forget") -> float:
        """A number to minimise: lower is better (the value, its negation, or the distance to ``target``)."""
        direction = self.direction(role)
        if direction is None:
            raise ValueError(f"metric {self.name} has no better direction for {role} data; choose another objective")
        if direction == "closer":
            return abs(value - self.target)
        return value if direction == "lower" else -value


METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, better: Better | None, source: str, description: str, target: float | None = None) -> Metric:
    """Add a metric to :data:`METRICS` (ValueError if the name is taken)."""
    return METRICS.register(name)(Metric(name, better, source, description, target))


register_metric("loss", "higher", "token cross-entropy", "mean negative log-likelihood of the target tokens (nats)")
register_metric("n", None, "-", "items in the set")
