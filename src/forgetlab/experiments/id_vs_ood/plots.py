"""The figures of a Study B (``id_vs_ood``) report, drawn from ``metrics.jsonl``, ``examples.jsonl`` and the
summary; each function returns a matplotlib figure.

* :func:`plot_exposure`: mean exposure of each canary group during gradient ascent, with the never-seen
  baseline (log2 e) and the stop threshold marked;
* :func:`plot_metric`: one forget-set metric (e.g. mean generalized exposure) of every group against the step;
* :func:`plot_utility`: held-out loss and BLEU during unlearning, per group;
* :func:`plot_tradeoff`: utility against unlearning quality, one curve per group (each point an evaluation);
* :func:`plot_exposure_before`: exposure per canary group under the original and the reference model;
* :func:`plot_memorization`: per-item memorization against difficulty, mean memorization per group, and
  (with buckets) utility lost per memorization and difficulty tercile.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from forgetlab.metrics.exposure import LOG2_E
from forgetlab.report.plots import Points, curves, legend, plt

#: ``{job key: {(split, metric): points}}`` of the unlearning stages.
Series = dict[str, dict[tuple[str, str], Points]]

STEP = "gradient-ascent step"


def unlearning_series(rows: list[dict[str, Any]]) -> Series:
    """The curves of every unlearning job in ``metrics.jsonl`` rows, by job key and (split, metric)."""
    def key(row: dict[str, Any]) -> tuple[str, str, str] | None:
        return (row["task"], row["split"], row["metric"]) if row.get("stage") == "unlearn" else None

    series: Series = defaultdict(dict)
    for (job, split, metric), points in curves(rows, key).items():
        series[job][(split, metric)] = points
    return series


def _style(kind: str) -> dict[str, Any]:
    return {"linestyle": "-" if kind == "ood" else "--", "marker": "o" if kind == "ood" else "s", "markersize": 3}


def _curve(ax: Any, points: Points, label: str, kind: str) -> None:
    if points:
        steps, values = zip(*points)
        ax.plot(steps, values, label=label, **_style(kind))


def plot_exposure(series: Series, jobs: dict[str, Any], threshold: float | None) -> Any:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for key, job in jobs.items():
        if job["kind"] == "ood":
            _curve(ax, series.get(key, {}).get(("forget", "exposure_mean"), []), key, "ood")
    ax.axhline(LOG2_E, color="grey", linestyle=":", label="never seen (log2 e)")
    if threshold is not None and abs(threshold - LOG2_E) > 1e-9:
        ax.axhline(threshold, color="black", linestyle="-.", linewidth=1, label="stop threshold")
    ax.set(xlabel=STEP, ylabel="mean exposure (bits)", title="Exposure of canary groups")
    legend(ax)
    return fig


def plot_metric(series: Series, jobs: dict[str, Any], split: str, metric: str, ylabel: str, zero: bool = False) -> Any:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for key, job in jobs.items():
        _curve(ax, series.get(key, {}).get((split, metric), []), key, job["kind"])
    if zero:
        ax.axhline(0, color="grey", linestyle=":", label="reference model")
    ax.set(xlabel=STEP, ylabel=ylabel, title=ylabel)
    legend(ax)
    return fig


def plot_utility(series: Series, jobs: dict[str, Any]) -> Any:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, job in jobs.items():
        _curve(axes[0], series.get(key, {}).get(("test", "loss"), []), key, job["kind"])
        _curve(axes[1], series.get(key, {}).get(("test", "bleu"), []), key, job["kind"])
    axes[0].set(xlabel=STEP, ylabel="held-out loss (nats/token)", title="Utility: loss")
    axes[1].set(xlabel=STEP, ylabel="BLEU", title="Utility: BLEU")
    legend(axes[0])
    return fig


def _paired(series: dict[tuple[str, str], Points], x: tuple[str, str], y: tuple[str, str]) -> list[tuple[float, float]]:
    ys = dict(series.get(y, []))
    return [(value, ys[step]) for step, value in series.get(x, []) if step in ys]


def plot_tradeoff(series: Series, jobs: dict[str, Any], title: str = "Utility vs unlearning quality") -> Any:
    """Utility (loss, BLEU) against mean GenEx; the x axis runs from memorized (left) to unlearned (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, job in jobs.items():
        for ax, metric in zip(axes, ("loss", "bleu")):
            points = _paired(series.get(key, {}), ("forget", "genex_mean"), ("test", metric))
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, label=key, **_style(job["kind"]))
    for ax, label in zip(axes, ("held-out loss (nats/token)", "BLEU")):
        ax.axvline(0, color="grey", linestyle=":")
        ax.invert_xaxis()
        ax.set(xlabel="mean generalized exposure (nats) → unlearned", ylabel=label)
    axes[0].set_title(title, fontsize=9)
    legend(axes[0])
    return fig


def plot_exposure_before(before: dict[str, Any]) -> Any:
    groups = {k: v for k, v in before.items() if v["kind"] == "ood"}
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    names = list(groups)
    width = 0.38
    for offset, role in ((-width / 2, "original"), (width / 2, "reference")):
        values = [groups[n][f"exposure_{role}"] for n in names]
        ax.bar([i + offset for i in range(len(names))], values, width, label=f"{role} model")
    ax.axhline(LOG2_E, color="grey", linestyle=":", label="never seen (log2 e)")
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="mean exposure (bits)", title="Exposure before unlearning")
    legend(ax)
    return fig


def plot_memorization(examples: list[dict[str, Any]], summary: dict[str, Any]) -> Any:
    """Items before unlearning (memorization against difficulty), memorization per group, utility lost per tercile."""
    buckets = summary.get("findings", {}).get("buckets", {})
    n_panels = 3 if buckets else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(4.5 * n_panels, 3.6))
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in examples:
        if row.get("stage") == "baseline":
            by_group[row["task"]].append(row)
    for name, items in by_group.items():
        axes[0].scatter([r["difficulty"] for r in items], [r["memorization"] for r in items], s=8, label=name,
                        marker="o" if items[0]["kind"] == "ood" else "s")
    axes[0].set(xlabel="difficulty (reference loss, nats/token)", ylabel="memorization (nats)", title="Items before unlearning")
    legend(axes[0], 6)
    names = list(summary["before"])
    axes[1].bar(range(len(names)), [summary["before"][n]["memorization_mean"] for n in names])
    axes[1].set_xticks(range(len(names)), names, rotation=45, fontsize=7)
    axes[1].set(ylabel="mean memorization (nats)", title="Memorization per group")
    if buckets:
        _bucket_bars(axes[2], buckets)
    return fig


def _bucket_bars(ax: Any, buckets: dict[str, Any]) -> None:
    labels, values = [], []
    for name, table in buckets.items():
        for label, entry in table.items():
            if isinstance(entry, dict):
                labels.append(f"{name}:{label}")
                values.append(entry["utility_lost_loss"])
    ax.bar(range(len(values)), values)
    ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=6, ha="right")
    ax.set(ylabel="held-out loss gained at unlearned", title="Utility lost per tercile")
