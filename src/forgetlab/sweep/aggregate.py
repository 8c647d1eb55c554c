"""A sweep's numbers: per cell, the summary values it shows; per group of cells that differ only in their seed,
the mean over seeds with a percentile-bootstrap 95 % interval (resampling the seeds; none with one seed)."""

from __future__ import annotations

import fnmatch
import math
from typing import Any, Iterable

import numpy as np

from forgetlab.stats import bootstrap_ci

#: The axis whose values are repetitions, not conditions: groups pool over it.
SEED_AXIS = "seed"
BOOTSTRAP_RESAMPLES = 10_000


def flatten(summary: Any, prefix: str = "") -> dict[str, float]:
    """Every finite number in a summary, by dotted key (lists and booleans left out)."""
    found: dict[str, float] = {}
    if isinstance(summary, dict):
        for key, value in summary.items():
            found.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(summary, (int, float)) and not isinstance(summary, bool) and math.isfinite(summary):
        found[prefix[:-1]] = float(summary)
    return found


def chosen(values: dict[str, float], patterns: Iterable[str], single: Iterable[str] = ()) -> dict[str, float]:
    """The values whose keys match one of ``patterns`` (``*`` matches any run of characters), in pattern order; a
    pattern in ``single`` matches at most one key here, whose value is kept under the pattern itself."""
    picked: dict[str, float] = {}
    single = set(single)
    for pattern in patterns:
        for key in _matches(values, pattern):
            picked.setdefault(pattern if pattern in single else key, values[key])
    return picked


def single_matches(all_values: list[dict[str, float]], patterns: Iterable[str]) -> list[str]:
    """The wildcard patterns that match at most one key in every cell's values, once one of them matches different
    keys across the cells: a per-task metric of one-task cells (``tasks.*.forget_ratio``) is one column instead of
    one per task, also a metric only one task has. Cells that all match the same keys (seeds of one task) keep
    the keys' own names."""
    at_most_one = []
    differ = False
    for pattern in patterns:
        matched = [_matches(values, pattern) for values in all_values]
        if "*" in pattern and all(len(keys) <= 1 for keys in matched):
            at_most_one.append(pattern)
            differ = differ or len({k for keys in matched for k in keys}) > 1
    return at_most_one if differ else []


def _matches(values: dict[str, float], pattern: str) -> list[str]:
    return [key for key in values if fnmatch.fnmatchcase(key, pattern)]


def condition_axes(axes: list[str]) -> list[str]:
    """The axes that are conditions, not repetitions: all but the seed."""
    return [a for a in axes if a != SEED_AXIS]


def group_metrics(groups: list[dict[str, Any]]) -> list[str]:
    """The metrics any group has a mean of, in first-seen order."""
    return list(dict.fromkeys(key for group in groups for key in group["metrics"]))


def metric_keys(cells: list[dict[str, Any]]) -> list[str]:
    """The keys shown: those any cell has, in first-seen order."""
    return list(dict.fromkeys(key for cell in cells for key in cell["values"]))


def mean_with_ci(values: list[float], seed: int = 0) -> dict[str, Any]:
    """Mean, sample standard deviation and bootstrap 95 % interval of the mean (None below two values)."""
    data = np.asarray(values, dtype=float)
    interval = bootstrap_ci(data, n_resamples=BOOTSTRAP_RESAMPLES, seed=seed) if data.size >= 2 else None
    return {
        "mean": float(data.mean()),
        "std": float(data.std(ddof=1)) if data.size >= 2 else None,
        "ci": list(interval) if interval else None,
        "n": int(data.size),
        "values": [float(v) for v in data],
    }


def group_cells(cells: list[dict[str, Any]], axes: list[str]) -> list[dict[str, Any]]:
    """Cells grouped by every axis but the seed; per group and shown metric, :func:`mean_with_ci` over its cells."""
    names = condition_axes(axes)
    groups: dict[str, dict[str, Any]] = {}
    for cell in cells:
        condition = {a: cell["axes"].get(a) for a in names}
        key = repr(sorted(condition.items(), key=lambda kv: kv[0]))
        group = groups.setdefault(key, {"axes": condition, "runs": [], "seeds": [], "cells": []})
        group["runs"].append(cell["run"])
        group["seeds"].append(cell["axes"].get(SEED_AXIS, cell.get("seed")))
        group["cells"].append(cell)
    keys = metric_keys(cells)
    for group in groups.values():
        members = group.pop("cells")
        group["metrics"] = {
            key: mean_with_ci([c["values"][key] for c in members if key in c["values"]])
            for key in keys if any(key in c["values"] for c in members)
        }
    return list(groups.values())


def pareto_front(points: list[tuple[float, float]], better: tuple[str, str]) -> list[int]:
    """Indexes of the points no other point beats on both coordinates (``better``: ``higher``/``lower`` each)."""
    signs = [1.0 if b == "higher" else -1.0 for b in better]
    scored = [(p[0] * signs[0], p[1] * signs[1]) for p in points]
    return [i for i, (x, y) in enumerate(scored)
            if not any(ox >= x and oy >= y and (ox > x or oy > y) for ox, oy in scored)]
