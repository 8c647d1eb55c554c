"""Markdown tables of numbers (for a README, a paper draft, an issue): values rounded to three decimals (p-values
small enough in scientific notation), intervals in brackets, a dash for anything missing."""

from __future__ import annotations

from typing import Any, Sequence

DASH = "—"


def number(value: Any, *, p: bool = False) -> str:
    """``0.745``; a p-value as ``0.031`` or ``2.4e-05``; anything not a finite number a dash."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        return DASH
    if p and 0 < abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.3f}"


def with_interval(value: Any, interval: Any) -> str:
    """``0.745 [0.685, 0.805]`` (the value alone when there is no interval)."""
    shown = number(value)
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and shown != DASH:
        return f"{shown} [{number(interval[0])}, {number(interval[1])}]"
    return shown


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, text columns left and the rest right aligned (the first column is text)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"
