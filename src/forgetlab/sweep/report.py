"""A sweep's HTML report (the run report's style, self-contained): the groups with means and intervals, every
cell, each shown metric against each varied axis (with intervals over seeds), a heat-map when two axes vary, the
forgetting-vs-utility trade-off with its front, what the cells say together (``combined``, drawn by the
experiment's own report sections, its figures saved under ``<sweep>/report/``), and links to the cells' own
reports."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from forgetlab.experiments import EXPERIMENTS
from forgetlab.report.markdown import DASH, with_interval
from forgetlab.report.markdown import table as markdown_table
from forgetlab.report.context import FIGURES, ReportContext
from forgetlab.report.page import Page, document, esc
from forgetlab.report.plots import legend, number, plt, png_bytes, text
from forgetlab.store import atomic_write_text
from forgetlab.sweep.aggregate import condition_axes, group_metrics
from forgetlab.sweep.plan import shown

MAX_PLOTTED_METRICS = 6
MAX_COST_COLUMNS = 6


def write_sweep_markdown(folder: Path, results: dict[str, Any], figures: dict[str, str] | None = None) -> Path:
    """``<sweep folder>/results.md``: the tables of what the cells say together (the experiment's, with the
    ``figures`` its report drew, file name -> caption, linked from ``report/``), the groups' means with their
    intervals (unless nothing varies and the combined view says it all) and what each cell and each run it started
    cost, in Markdown; returns its path."""
    counts = ", ".join(f"{n} {status}" for status, n in results["counts"].items() if n)
    started = f" and the {len(results['parts'])} runs they start" if results.get("parts") else ""
    parts = [f"# Sweep {results['sweep']}\n", f"experiment {results['experiment'] or 'mixed'}, {len(results['cells'])} cells{started}: {counts}\n"]
    if results.get("combined"):
        parts.append(EXPERIMENTS.get(results["experiment"]).markdown(results["combined"]))
    if figures:
        parts += ["\n## Figures\n", *(f"![{markdown_cell(caption)}]({FIGURES}/{name})\n\n*{caption}*\n"
                                       for name, caption in figures.items())]
    conditions, metrics = condition_axes(results["axes"]), group_metrics(results["groups"])
    if groups_shown(results):
        rows = [[DASH if g["axes"][a] is None else markdown_cell(g["axes"][a]) for a in conditions] + [str(len(g["runs"]))]
                + [with_interval(g["metrics"][m]["mean"], g["metrics"][m]["ci"]) if m in g["metrics"] else DASH for m in metrics]
                for g in results["groups"]]
        parts += ["\n## Mean over seeds [bootstrap 95 % interval]\n", markdown_table([*conditions, "seeds", *metrics], rows)]
    costs = cost_table(results["cells"] + results.get("parts", []))
    if costs:
        parts += ["\n## What each cell cost\n", "Wall-clock minutes of each run's stages, each from the attempt that "
                  "computed it, grouped by stage name.\n", costs]
    path = folder / "results.md"
    atomic_write_text(path, "\n".join(parts), mode=0o644)
    return path


def groups_shown(results: dict[str, Any]) -> bool:
    """Whether the groups' means get a table: there are metrics, and something varies or no combined view (one
    cross-task matrix, say) already shows them — one row of every flattened value would only repeat it."""
    conditions, metrics = condition_axes(results["axes"]), group_metrics(results["groups"])
    return bool(results["groups"] and metrics and (conditions or not results.get("combined")))


def cost_table(cells: list[dict[str, Any]], *, columns: int = MAX_COST_COLUMNS) -> str:
    """Per cell with a cost: its torch threads, minutes per stage name (a stage key's last part, summed over its
    tasks or groups; the names beyond ``columns`` - 1 largest as "other") and in total. Empty when no cell has one."""
    costed = [c for c in cells if c.get("cost") and c["cost"]["stages"]]
    if not costed:
        return ""
    per_cell = [_by_stage_name(c["cost"]["stages"]) for c in costed]
    totals: dict[str, float] = {}
    for stages in per_cell:
        for name, seconds in stages.items():
            totals[name] = totals.get(name, 0.0) + seconds
    names = list(totals)
    if len(names) > columns:
        largest = set(sorted(names, key=lambda n: -totals[n])[: columns - 1])
        names = [n for n in names if n in largest]
    shown = set(names)
    rows = []
    for cell, stages in zip(costed, per_cell):
        other = sum(seconds for name, seconds in stages.items() if name not in shown)
        minutes = [_minutes(stages.get(name)) for name in names] + ([_minutes(other)] if len(shown) < len(totals) else [])
        rows.append([markdown_cell(cell["label"]), str(cell["cost"]["cpu_threads"] or DASH), *minutes,
                     _minutes(cell["cost"]["seconds"])])
    headers = ["cell", "threads", *names, *(["other"] if len(shown) < len(totals) else []), "total"]
    total = sum(c["cost"]["seconds"] for c in costed)
    return markdown_table(headers, rows) + f"\n{len(costed)} cells, {total / 3600:.2f} hours of stage time in all.\n"


def _by_stage_name(stages: dict[str, float]) -> dict[str, float]:
    """Seconds per stage name (the last part of each key), in first-seen order."""
    named: dict[str, float] = {}
    for key, seconds in stages.items():
        name = key.rsplit("/", 1)[-1]
        named[name] = named.get(name, 0.0) + seconds
    return named


def _minutes(seconds: float | None) -> str:
    return DASH if seconds is None else f"{seconds / 60:.1f}"


def markdown_cell(value: Any) -> str:
    """An axis value (as :func:`shown`) or a caption in a Markdown cell, its pipes escaped."""
    return shown(value).replace("|", "\\|")


def write_sweep_report(folder: Path, results: dict[str, Any]) -> Path:
    """``<sweep folder>/report.html`` from ``results.json``'s content, and ``results.md`` beside it (linking the
    figures the report saved under ``report/``); returns the report's path."""
    page = Page(results)
    page.add(f"<h1>forgetlab sweep: {esc(results['sweep'])}</h1>")
    counts = ", ".join(f"{n} {status}" for status, n in results["counts"].items() if n)
    page.add(f'<p class="muted">experiment {esc(results["experiment"] or "mixed")} · {len(results["cells"])} cells: '
             f'{esc(counts)} · axes: {esc(", ".join(results["axes"]) or "none")}</p>')
    _search(page, results)
    figures = _combined(page, results, folder)
    _groups(page, results)
    _plots(page, results)
    _tradeoff(page, results)
    _cells(page, results)
    path = folder / "report.html"
    atomic_write_text(path, document(page, f"forgetlab sweep: {results['sweep']}"), mode=0o644)
    write_sweep_markdown(folder, results, figures)
    return path


def _combined(page: Page, results: dict[str, Any], folder: Path) -> dict[str, str]:
    """The cells together, as the experiment's report shows one run (values keyed ``combined.…``); the figures
    saved under ``report/`` (file name -> caption), earlier ones not drawn again removed."""
    context = ReportContext(folder, results.get("combined") or {}, "", {}, runs_dir=folder.parent.parent)  # <runs>/sweeps/<id>
    if context.summary:
        for section in EXPERIMENTS.get(results["experiment"]).report_sections:
            section(page.within("combined"), context)
    context.remove_stale_figures()
    return context.captions


def _groups(page: Page, results: dict[str, Any]) -> None:
    if not groups_shown(results):
        return
    page.section("groups", "Mean over seeds [bootstrap 95 % interval]")
    conditions, metrics = condition_axes(results["axes"]), group_metrics(results["groups"])
    rows = []
    for i, group in enumerate(results["groups"]):
        cells = [_axis_value(page, group["axes"][a], ["groups", i, "axes", a]) for a in conditions] + [esc(len(group["runs"]))]
        cells += [page.value(["groups", i, "metrics", m, "mean"]) + page.interval(["groups", i, "metrics", m, "ci"])
                  if m in group["metrics"] else "—" for m in metrics]
        rows.append(cells)
    page.table([*conditions, "seeds", *metrics], rows, numeric_from=len(conditions))


def _axis_value(page: Page, value: Any, parts: list[Any]) -> str:
    """A number or string with its exact value; a list or mapping (a task reference) as :func:`shown`."""
    return esc(shown(value)) if isinstance(value, (list, dict)) else page.value(parts)


def _cells(page: Page, results: dict[str, Any]) -> None:
    page.section("cells", "Every cell")
    metrics = group_metrics(results["groups"]) if groups_shown(results) else []
    rows = []
    for i, cell in enumerate(results["cells"]):
        link = f'<a href="../../{esc(cell["run"])}/report.html">{esc(cell["run"])}</a>'
        status = esc(cell["status"]) + (f' <span class="muted">{esc(cell["message"])}</span>' if cell.get("message") else "")
        cost = cell.get("cost")
        minutes = esc(_minutes(cost["seconds"])) if cost and cost["stages"] else "—"
        rows.append([esc(cell["label"]), status, link, minutes, *(page.value(["cells", i, "values", m]) for m in metrics)])
    page.table(["cell", "status", "run", "minutes", *metrics], rows, numeric_from=3)


def _plots(page: Page, results: dict[str, Any]) -> None:
    conditions, metrics = condition_axes(results["axes"]), group_metrics(results["groups"])[:MAX_PLOTTED_METRICS]
    varied = [a for a in conditions if len({repr(g["axes"][a]) for g in results["groups"]}) > 1]
    if not varied or not metrics:
        return
    page.section("plots", "Metrics against the axes")
    for axis in varied:
        for metric in metrics:
            page.figure(png_bytes(plot_against(results["groups"], axis, metric, conditions)), f"{metric} against {axis}")
    if len(varied) == 2:
        for metric in metrics[:3]:
            page.figure(png_bytes(heatmap(results["groups"], varied[0], varied[1], metric)), f"{metric}: {varied[0]} × {varied[1]}")


def plot_against(groups: list[dict[str, Any]], axis: str, metric: str, conditions: list[str]) -> Any:
    """Mean of ``metric`` against ``axis`` with its interval, one series per value of the other axes."""
    positions = _positions([g["axes"][axis] for g in groups])
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    series: dict[str, list[tuple[float, float, Any]]] = {}
    for group in groups:
        found = group["metrics"].get(metric)
        if found is None:
            continue
        rest = ", ".join(f"{a}={shown(group['axes'][a])}" for a in conditions if a != axis)
        series.setdefault(rest, []).append((positions[repr(group["axes"][axis])], found["mean"], found["ci"]))
    for name, points in sorted(series.items()):
        points.sort(key=lambda p: p[0])
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        low = [p[1] - p[2][0] if p[2] else 0.0 for p in points]
        high = [p[2][1] - p[1] if p[2] else 0.0 for p in points]
        ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=text(name) if name else None)
    if not all(number(v) is not None for v in [g["axes"][axis] for g in groups]):
        labels = {repr(g["axes"][axis]): shown(g["axes"][axis]) for g in groups}
        ticks = sorted(positions, key=positions.get)
        ax.set_xticks([positions[k] for k in ticks], [text(labels[k]) for k in ticks], rotation=20 if len(ticks) < 8 else 60, fontsize=7)
    ax.set_xlabel(text(axis))
    ax.set_ylabel(text(metric), fontsize=8)
    legend(ax, 6)
    return fig


def _positions(values: list[Any]) -> dict[str, float]:
    """Where each axis value sits on the x axis: itself when all are numbers (log-spaced values on a log
    scale are still plotted linearly), else 0, 1, 2 ... in first-seen order."""
    keys = list(dict.fromkeys(repr(v) for v in values))
    if all(number(v) is not None for v in values):
        return {repr(v): float(v) for v in values}
    return {k: float(i) for i, k in enumerate(keys)}


def heatmap(groups: list[dict[str, Any]], rows_axis: str, cols_axis: str, metric: str) -> Any:
    """The group means of ``metric`` over two axes."""
    rows = list(dict.fromkeys(repr(g["axes"][rows_axis]) for g in groups))
    cols = list(dict.fromkeys(repr(g["axes"][cols_axis]) for g in groups))
    labels = {repr(g["axes"][a]): shown(g["axes"][a]) for g in groups for a in (rows_axis, cols_axis)}
    grid = np.full((len(rows), len(cols)), math.nan)
    for group in groups:
        found = group["metrics"].get(metric)
        if found is not None:
            grid[rows.index(repr(group["axes"][rows_axis])), cols.index(repr(group["axes"][cols_axis]))] = found["mean"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(cols), 1.0 + 0.5 * len(rows)))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    for (r, c), value in np.ndenumerate(grid):
        if math.isfinite(value):
            ax.text(c, r, f"{value:.3g}", ha="center", va="center", fontsize=7, color="white")
    ax.set_xticks(range(len(cols)), [text(labels[c]) for c in cols], fontsize=7, rotation=20)
    ax.set_yticks(range(len(rows)), [text(labels[r]) for r in rows], fontsize=7)
    ax.set_xlabel(text(cols_axis))
    ax.set_ylabel(text(rows_axis))
    ax.set_title(text(metric), fontsize=8)
    fig.colorbar(image, ax=ax)
    return fig


def _search(page: Page, results: dict[str, Any]) -> None:
    search = results.get("search")
    if not search:
        return
    page.section("search", "Search")
    best = search["best"]
    page.note(f"objective {search['objective']} (which way is better: {search['direction']}), {search['sampler']} sampler, "
              f"{len(search['trials'])} trials; best: " + (f"trial {best['number']}, run {best['run']}" if best else "none feasible"))
    keys = list(dict.fromkeys(k for t in search["trials"] for k in t["params"]))
    rows = [[esc(t["number"]), *(page.value(["search", "trials", i, "params", k]) for k in keys),
             page.value(["search", "trials", i, "value"]), esc({True: "yes", False: "no"}.get(t["feasible"], t["status"])),
             "best" if best and t["number"] == best["number"] else "", f'<a href="../../{esc(t["run"])}/report.html">{esc(t["run"])}</a>']
            for i, t in enumerate(search["trials"])]
    page.table(["trial", *keys, search["objective"], "feasible", "", "run"], rows, text_columns=(len(keys) + 2, len(keys) + 3, len(keys) + 4))
    told = [(t["number"], t["value"], t["badness"], t["feasible"]) for t in search["trials"] if t["value"] is not None]
    if told:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.scatter([t[0] for t in told], [t[1] for t in told], c=["C0" if t[3] else "C7" for t in told], s=18, label="trial")
        best_so_far, running = [], None
        for number, value, badness, feasible in told:
            if feasible and (running is None or badness < running[1]):
                running = (value, badness)
            best_so_far.append((number, running[0] if running else None))
        shown = [(n, v) for n, v in best_so_far if v is not None]
        ax.step([n for n, _ in shown], [v for _, v in shown], where="post", color="C3", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(text(search["objective"]), fontsize=8)
        legend(ax)
        page.figure(png_bytes(fig), "The objective of each trial (grey: infeasible) and the best so far")


def _tradeoff(page: Page, results: dict[str, Any]) -> None:
    tradeoff = results.get("tradeoff")
    if not tradeoff:
        return
    page.section("tradeoff", "Forgetting against utility")
    x, y = tradeoff["x"], tradeoff["y"]
    page.note(f"Each point is a cell; ringed points are on the front (no other cell is better on both: "
              f"{x['key']} {x['better']} is better, {y['key']} {y['better']} is better).")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for point in tradeoff["points"]:
        ax.scatter(point["x"], point["y"], s=50 if point["front"] else 18, facecolors="none" if point["front"] else "C0",
                   edgecolors="C3" if point["front"] else "C0")
    front = sorted((p["x"], p["y"]) for p in tradeoff["points"] if p["front"])
    ax.plot([p[0] for p in front], [p[1] for p in front], color="C3", linewidth=1, label="front")
    ax.set_xlabel(text(x["key"]))
    ax.set_ylabel(text(y["key"]))
    legend(ax)
    page.figure(png_bytes(fig), "Forgetting against utility, one point per cell")
    rows = [[esc(p["label"]), page.value(["tradeoff", "points", i, "x"]), page.value(["tradeoff", "points", i, "y"]),
             "yes" if p["front"] else ""] for i, p in enumerate(tradeoff["points"])]
    page.table(["cell", x["key"], y["key"], "on the front"], rows, text_columns=(3,))
