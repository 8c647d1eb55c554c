"""Plots of a run's metrics (matplotlib, headless)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from forgetlab.store import read_jsonl  # noqa: E402


def plot_trajectories(metrics_path: Path, out_dir: Path) -> list[Path]:
    """One PNG per (task, training stage): accuracy of each scored split against the step, chance marked."""
    series: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in read_jsonl(metrics_path):
        if row["metric"] == "acc" and row["stage"] in ("finetune", "forget"):
            series[(row["task"], row["stage"])][row["split"]].append((row["step"], row["value"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (task, stage), splits in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for split, points in sorted(splits.items()):
            steps, values = zip(*sorted(points))
            ax.plot(steps, values, marker="o", label=split)
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
        ax.set(xlabel="optimizer step", ylabel="accuracy", ylim=(0, 1), title=f"{task}: {stage}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{task}_{stage}_accuracy.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
