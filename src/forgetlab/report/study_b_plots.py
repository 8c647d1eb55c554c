"""Plots of a Study B run (matplotlib, headless), written to ``<run>/plots``.

* ``exposure_vs_step.png``: mean exposure of each canary group during gradient ascent, with the
  never-seen baseline (log2 e) marked;
* ``genex_vs_step.png``: mean generalized exposure of every group (0 = like the reference model);
* ``utility_vs_step.png``: held-out loss and BLEU during unlearning, per group;
* ``tradeoff.png``: utility against unlearning quality, one curve per group (each point an evaluation);
* ``exposure_before.png``: exposure per canary group under the original and the reference model;
* ``memorization_difficulty.png``: per-item memorization against difficulty, mean memorization per
  group, and (with buckets) utility lost / steps to unlearn per memorization and difficulty tercile.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from forgetlab.metrics.exposure import LOG2_E  # noqa: E402
from forgetlab.store import read_jsonl  # noqa: E402

Series = dict[str, dict[tuple[str, str], list[tuple[int, float]]]]


def load_series(metrics_path: Path) -> Series:
    """``{job key: {(split, metric): [(step, value), ...]}}`` of the unlearning stages, sorted by step."""
    series: Series = defaultdict(lambda: defaultdict(list))
    for row in read_jsonl(metrics_path):
        if row.get("stage") == "unlearn":
            series[row["task"]][(row["split"], row["metric"])].append((row["step"], row["value"]))
    for job in series.values():
        for points in job.values():
            points.sort()
    return series


def _style(kind: str) -> dict[str, Any]:
    return {"linestyle": "-" if kind == "ood" else "--", "marker": "o" if kind == "ood" else "s", "markersize": 3}


def _legend(ax: Any, size: int) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=size)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _curve(ax: Any, points: list[tuple[int, float]], label: str, kind: str) -> None:
    if points:
        steps, values = zip(*points)
        ax.plot(steps, values, label=label, **_style(kind))


def plot_exposure(series: Series, jobs: dict[str, Any], threshold: float | None, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for key, job in jobs.items():
        if job["kind"] == "ood":
            _curve(ax, series[key].get(("forget", "exposure_mean"), []), key, "ood")
    ax.axhline(LOG2_E, color="grey", linestyle=":", label="never seen (log2 e)")
    if threshold is not None and abs(threshold - LOG2_E) > 1e-9:
        ax.axhline(threshold, color="black", linestyle="-.", linewidth=1, label="stop threshold")
    ax.set(xlabel="gradient-ascent step", ylabel="mean exposure (bits)", title="Exposure of canary groups")
    _legend(ax, 7)
    return _save(fig, out)


def plot_metric(
    series: Series, jobs: dict[str, Any], split: str, metric: str, ylabel: str, out: Path, zero: bool = False
) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for key, job in jobs.items():
        _curve(ax, series[key].get((split, metric), []), key, job["kind"])
    if zero:
        ax.axhline(0, color="grey", linestyle=":", label="reference model")
    ax.set(xlabel="gradient-ascent step", ylabel=ylabel, title=ylabel)
    _legend(ax, 7)
    return _save(fig, out)


def plot_utility(series: Series, jobs: dict[str, Any], out: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, job in jobs.items():
        _curve(axes[0], series[key].get(("test", "loss"), []), key, job["kind"])
        _curve(axes[1], series[key].get(("test", "bleu"), []), key, job["kind"])
    axes[0].set(xlabel="gradient-ascent step", ylabel="held-out loss (nats/token)", title="Utility: loss")
    axes[1].set(xlabel="gradient-ascent step", ylabel="BLEU", title="Utility: BLEU")
    _legend(axes[0], 7)
    return _save(fig, out)


def _paired(
    series: dict[tuple[str, str], list[tuple[int, float]]], x: tuple[str, str], y: tuple[str, str]
) -> list[tuple[float, float]]:
    ys = dict(series.get(y, []))
    return [(value, ys[step]) for step, value in series.get(x, []) if step in ys]


def plot_tradeoff(series: Series, jobs: dict[str, Any], out: Path, title: str = "Utility vs unlearning quality") -> Path:
    """Utility (loss, BLEU) against mean GenEx; the x axis runs from memorized (left) to unlearned (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, job in jobs.items():
        for ax, metric in zip(axes, ("loss", "bleu")):
            points = _paired(series[key], ("forget", "genex_mean"), ("test", metric))
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, label=key, **_style(job["kind"]))
    for ax, label in zip(axes, ("held-out loss (nats/token)", "BLEU")):
        ax.axvline(0, color="grey", linestyle=":")
        ax.invert_xaxis()
        ax.set(xlabel="mean generalized exposure (nats) → unlearned", ylabel=label)
    axes[0].set_title(title, fontsize=9)
    _legend(axes[0], 7)
    return _save(fig, out)


def plot_exposure_before(summary: dict[str, Any], out: Path) -> Path:
    groups = {k: v for k, v in summary["before"].items() if v["kind"] == "ood"}
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    names = list(groups)
    width = 0.38
    for offset, role in ((-width / 2, "original"), (width / 2, "reference")):
        values = [groups[n][f"exposure_{role}"] for n in names]
        ax.bar([i + offset for i in range(len(names))], values, width, label=f"{role} model")
    ax.axhline(LOG2_E, color="grey", linestyle=":", label="never seen (log2 e)")
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="mean exposure (bits)", title="Exposure before unlearning")
    _legend(ax, 7)
    return _save(fig, out)


def plot_memorization(examples_path: Path, summary: dict[str, Any], out: Path) -> Path:
    rows = [r for r in read_jsonl(examples_path) if r.get("stage") == "baseline"]
    buckets = summary.get("findings", {}).get("buckets", {})
    n_panels = 3 if buckets else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(4.5 * n_panels, 3.6))
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_group[row["task"]].append(row)
    for name, items in by_group.items():
        axes[0].scatter([r["difficulty"] for r in items], [r["memorization"] for r in items], s=8, label=name,
                        marker="o" if items[0]["kind"] == "ood" else "s")
    axes[0].set(xlabel="difficulty (reference loss, nats/token)", ylabel="memorization (nats)", title="Items before unlearning")
    _legend(axes[0], 6)
    names = list(summary["before"])
    axes[1].bar(range(len(names)), [summary["before"][n]["memorization_mean"] for n in names])
    axes[1].set_xticks(range(len(names)), names, rotation=45, fontsize=7)
    axes[1].set(ylabel="mean memorization (nats)", title="Memorization per group")
    if buckets:
        _bucket_bars(axes[2], buckets)
    return _save(fig, out)


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


def plot_study_b(run_dir: Path, summary: dict[str, Any]) -> list[Path]:
    """Write every Study B plot of a run; returns their paths."""
    out = run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    series = load_series(run_dir / "metrics.jsonl")
    main, buckets = summary["groups"], summary.get("buckets", {})
    ok = {k: v for k, v in main.items() if v["status"] == "ok"}
    threshold = next((v["exposure_baseline"] + v.get("exposure_tolerance", 0.0) for v in ok.values()), None)
    written = [
        plot_exposure(series, ok, threshold, out / "exposure_vs_step.png"),
        plot_metric(series, ok, "forget", "genex_mean", "mean generalized exposure (nats)", out / "genex_vs_step.png", zero=True),
        plot_utility(series, ok, out / "utility_vs_step.png"),
        plot_tradeoff(series, ok, out / "tradeoff.png"),
        plot_memorization(run_dir / "examples.jsonl", summary, out / "memorization_difficulty.png"),
    ]
    if any(v["kind"] == "ood" for v in summary["before"].values()):
        written.append(plot_exposure_before(summary, out / "exposure_before.png"))
    ok_buckets = {k: v for k, v in buckets.items() if v["status"] == "ok"}
    if ok_buckets:
        written.append(plot_tradeoff(series, ok_buckets, out / "buckets_tradeoff.png", "Trade-off per tercile"))
    return written
