"""One self-contained HTML report per finished run (``forgetlab report``).

:func:`write_report` reads a run directory (``config.yaml`` + ``summary.json``, and whatever else its sections
read: ``metrics.jsonl``, ``examples.jsonl``, other finished runs), writes the figures of the sections to
``<run>/report/*.png`` (removing those of an earlier report that this one no longer draws) and the report to
``<run>/report.html``, all atomically.

The page, in order: the header (run, experiment, model, when, command, fingerprint, seed, world size); the
sections of the run's experiment (``Experiment.report_sections``: each shows its tables and figures when the
run has their data); every value of the summary as a key/value table; the resolved config; the package
versions. How values carry their exact number and place, and why the page loads nothing: :mod:`.page`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any, Sequence

from forgetlab.report.context import ReportContext, Section
from forgetlab.report.page import Page, document, esc, fmt
from forgetlab.store import atomic_write_text, attack_runs

LONG_LIST = 12
MAX_FLAT_ROWS = 5000


def write_report(run_dir: Path, sections: Sequence[Section] = ()) -> Path:
    """Write ``run_dir/report/*.png`` and ``run_dir/report.html`` (atomically); returns the HTML's path.

    ``sections``: what the run's experiment adds between the header and the summary values. Needs
    ``config.yaml`` and ``summary.json`` (a finished run); raises FileNotFoundError otherwise.
    """
    return render_report(ReportContext.load(run_dir), sections)


def render_report(context: ReportContext, sections: Sequence[Section] = ()) -> Path:
    """:func:`write_report` of an already loaded run."""
    page = Page(context.summary)
    _header(page, context)
    for section in sections:
        section(page, context)
    _attack_runs(page, context)
    _all_values(page, context.summary, shown_open=not page.sections)
    _config(page, context)
    context.remove_stale_figures()
    path = context.run_dir / "report.html"
    title = f"forgetlab: {context.summary.get('run') or context.run_dir.name}"
    atomic_write_text(path, document(page, title), mode=0o644)
    return path


# --- the sections every report has ------------------------------------------------------------------


def _header(page: Page, context: ReportContext) -> None:
    summary, resolved, run_dir = context.summary, context.resolved, context.run_dir
    run_id = summary.get("run") or run_dir.name
    page.add(f"<h1>forgetlab report: {esc(run_id)}</h1>")
    finished = dt.datetime.fromtimestamp((run_dir / "summary.json").stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
    model = summary.get("model") or ((resolved.get("config") or {}).get("model") or {}).get("name")
    rows = [
        ["run", page.value(["run"]) if "run" in summary else esc(run_id)],
        ["experiment", page.value(["experiment"]) if "experiment" in summary else esc(context.experiment or "?")],
        ["model", page.value(["model"]) if "model" in summary else esc(model if model is not None else "—")],
        ["finished", esc(finished)],
        ["report written", esc(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))],
        ["command", f"<code>{esc(resolved.get('command') or '—')}</code>"],
        ["fingerprint", esc(resolved.get("fingerprint", "—"))],
        ["seed", esc(resolved.get("seed", "—"))],
        ["world size", esc(resolved.get("world_size", "—"))],
    ]
    page.table([], [[f"<b>{label}</b>", cell] for label, cell in rows], numeric_from=99)


def _attack_runs(page: Page, context: ReportContext) -> None:
    """Links to the run's attack runs (``forgetlab attack RUN``), each with its own Robustness section."""
    children = attack_runs(context.run_dir)
    if children:
        page.section("attack-runs", "Attack runs of this run")
        page.add("<ul>" + "".join(f'<li><a href="../{esc(c.name)}/report.html#robustness">{esc(c.name)}</a></li>' for c in children) + "</ul>")


def _all_values(page: Page, summary: dict[str, Any], *, shown_open: bool) -> None:
    """Every value of the summary, one row each (folded away when the experiment's sections show the run)."""
    page.section("values", "All summary values")  # not "summary": that is the embedded JSON's id
    page.add(f"<details{' open' if shown_open else ''}><summary>Every value of summary.json</summary>")
    _flat_table(page, summary, [])
    page.add("</details>")


def _config(page: Page, context: ReportContext) -> None:
    page.section("config", "Resolved config")
    page.add(f"<pre>{esc(context.config_text)}</pre>")
    versions = context.resolved.get("versions")
    if isinstance(versions, dict) and versions:
        page.section("versions", "Package versions")
        page.table(["package", "version"], [[esc(k), esc(v)] for k, v in versions.items()], numeric_from=99)


# --- the summary as a flat table --------------------------------------------------------------------


def _flatten(obj: Any, parts: list[str | int], out: list[tuple[list[str | int], Any, bool]]) -> None:
    """Leaves as (parts, value, summarised); long lists become one summarised row."""
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            _flatten(v, [*parts, str(k)], out)
    elif isinstance(obj, list) and len(obj) > LONG_LIST:
        out.append((parts, obj, True))
    elif isinstance(obj, list) and obj:
        for i, v in enumerate(obj):
            _flatten(v, [*parts, i], out)
    else:
        out.append((parts, obj, False))


def _list_summary(values: list[Any]) -> str:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    text = f"list of {len(values)}"
    if numbers and len(numbers) == len(values):
        text += f": min {fmt(min(numbers))}, mean {fmt(sum(numbers) / len(numbers))}, max {fmt(max(numbers))}"
    else:
        text += f" ({esc(type(values[0]).__name__)}), first: {esc(json.dumps(values[0], ensure_ascii=False)[:80])}"
    return text


def _flat_table(page: Page, obj: Any, root: list[str | int]) -> None:
    leaves: list[tuple[list[str | int], Any, bool]] = []
    _flatten(obj, root, leaves)
    rows = []
    for parts, value, summarised in leaves[:MAX_FLAT_ROWS]:
        label = esc(".".join(str(p) for p in parts[len(root):]) or "(value)")
        if summarised:
            rows.append([label, f'<span class="muted">{_list_summary(value)}</span>'])
        elif isinstance(value, (dict, list)):
            rows.append([label, '<span class="muted">(empty)</span>'])
        elif isinstance(value, str) and len(value) > 300:
            rows.append([label, esc(value[:300]) + '<span class="muted"> …</span>'])
        else:
            rows.append([label, page.value(parts)])
    page.table(["key", "value"], rows)
    if len(leaves) > MAX_FLAT_ROWS:
        page.add(f'<p class="muted">{len(leaves) - MAX_FLAT_ROWS} more values: see the embedded summary.</p>')
