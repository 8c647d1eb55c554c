"""What every report's plots share (matplotlib, headless): PNG bytes of a figure, safe file names and labels,
numbers read from a summary, curves read from ``metrics.jsonl`` rows, the chance line and the legend."""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections import defaultdict
from typing import Any, Callable, Hashable, Iterable, TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (re-exported: plot modules take pyplot from here, headless)

K = TypeVar("K", bound=Hashable)

CHANCE = 0.5
DPI = 110

#: Points of one curve: (step, value), sorted by step.
Points = list[tuple[int, float]]


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes (laid out tightly; no software stamp, so the same plot gives the same bytes); closed."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def slug(name: str) -> str:
    """A file-name-safe form of a task or predictor name (a short hash keeps distinct names distinct)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:48]
    if safe == name:
        return safe
    return f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def text(value: Any) -> str:
    """A label for matplotlib: ``$`` would otherwise start mathtext."""
    return str(value).replace("$", r"\$")


def number(value: Any) -> float | None:
    """A finite float, or None (missing, null, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def interval(value: Any) -> tuple[float, float] | None:
    """``(low, high)`` of a two-number list, or None."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = number(value[0]), number(value[1])
        if low is not None and high is not None:
            return low, high
    return None


def curves(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], K | None]) -> dict[K, Points]:
    """``metrics.jsonl`` rows grouped into curves: ``{key(row): [(step, value), ...]}`` sorted by step; rows
    whose key is None, or whose value is not a finite number, are left out."""
    found: dict[K, Points] = defaultdict(list)
    for row in rows:
        name, value = key(row), number(row.get("value"))
        if name is not None and value is not None:
            found[name].append((row["step"], value))
    return {name: sorted(points) for name, points in found.items()}


def chance_line(ax: Any, level: float = CHANCE, label: str = "chance") -> None:
    """A dashed grey horizontal line at ``level``."""
    ax.axhline(level, color="grey", linestyle="--", linewidth=1, label=label)


def legend(ax: Any, size: int = 7) -> None:
    """A legend, when anything drawn on ``ax`` has a label."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=size)

