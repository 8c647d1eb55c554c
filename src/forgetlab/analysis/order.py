"""Are the items learned first during fine-tuning the ones forgotten last?

Per item, the confidence ``p(gold) / (p(gold) + p(distractor))`` is tracked over training steps:

* **learn step**: the first fine-tuning step at which confidence reaches the threshold (``≥ 0.6``);
* **forget step**: the first forgetting step at which it falls below the threshold (``< 0.6``).

An item that was learned but never falls below the threshold is **censored** at ``last step + 1`` of its
forgetting trajectory: it stays in the ranking as forgotten "latest" (after every item that did cross)
rather than being dropped, which would bias the sample towards easily forgotten items. An item never
learned during fine-tuning is **excluded**: it cannot be forgotten. Spearman's ρ between learn and forget
steps then tests the order; Study A's "learned first, forgotten last" shows as a *negative* ρ.
"""

from __future__ import annotations

from typing import Any, Hashable, Sequence

from forgetlab.stats import correlation

DEFAULT_THRESHOLD = 0.6
DIRECTIONS = ("up", "down")


def first_crossing(points: Sequence[tuple[int, float]], threshold: float, direction: str) -> int | None:
    """The first step (in step order) at which ``value ≥ threshold`` ("up") or ``value < threshold`` ("down").

    ``points`` are ``(step, value)`` pairs in any order; None when the trajectory never crosses.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    for step, value in sorted(points, key=lambda point: point[0]):
        crossed = value >= threshold if direction == "up" else value < threshold
        if crossed:
            return int(step)
    return None


def _forget_step(points: Sequence[tuple[int, float]], threshold: float, item: Hashable) -> tuple[int, bool]:
    """(forget step, whether it was censored at last step + 1)."""
    if not points:
        raise ValueError(f"item {item!r} has an empty forgetting trajectory")
    step = first_crossing(points, threshold, "down")
    if step is None:
        return int(max(point[0] for point in points)) + 1, True
    return step, False


def order_correlation(learn: dict[Hashable, Sequence[tuple[int, float]]],
                      forget: dict[Hashable, Sequence[tuple[int, float]]], *, threshold: float = DEFAULT_THRESHOLD,
                      n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Spearman's ρ between the step each item is learned and the step it is forgotten.

    ``learn`` / ``forget`` map an item to its ``(step, confidence)`` trajectory during fine-tuning /
    forgetting; only items present in both count. Returns ``{"n", "spearman_rho", "spearman_p",
    "spearman_ci", "n_never_learned", "n_never_forgotten", "threshold"}``: ``n`` items in the correlation
    (learned ones), ``n_never_learned`` excluded items, ``n_never_forgotten`` learned items censored at
    ``last step + 1``. A negative ρ: learned first, forgotten last.
    """
    learn_steps: list[int] = []
    forget_steps: list[int] = []
    never_learned = never_forgotten = 0
    for item, trajectory in learn.items():
        if item not in forget:
            continue
        learned_at = first_crossing(trajectory, threshold, "up")
        if learned_at is None:
            never_learned += 1
            continue
        forgotten_at, censored = _forget_step(forget[item], threshold, item)
        never_forgotten += censored
        learn_steps.append(learned_at)
        forget_steps.append(forgotten_at)
    stats = correlation(learn_steps, forget_steps, n_resamples=n_resamples, seed=seed)
    return {"n": stats["n"], "spearman_rho": stats["spearman_rho"], "spearman_p": stats["spearman_p"],
            "spearman_ci": stats["spearman_ci"], "n_never_learned": never_learned,
            "n_never_forgotten": int(never_forgotten), "threshold": float(threshold)}
