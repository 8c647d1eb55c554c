"""One self-contained HTML report per finished run (``forgetlab report``).

:func:`write_report` reads a run directory (``config.yaml`` + ``summary.json``, optionally ``plots/*.png``),
writes its plots to ``<run>/report/*.png`` and the report to ``<run>/report.html``, all atomically.
The HTML loads nothing: images are ``data:`` URIs, styles are inline, fonts are the reader's own, and the
only script is a few inline lines that mark, after load, how many images decoded
(``<body data-rendered="decoded/total">``; ``scripts/check_report_render.py`` checks it in headless Chromium).

Contents: for Study A (``forget_generalization``) and cross-task sweeps (``cross_task``) the behaviour table
and plot, the predictor correlations and scatters, item-level AUCs, probes, learn/forget order and the
cross-task matrix — each section only when the summary has its data; for any other experiment the summary
as a key/value table. Then, for every run: the trajectory plots of ``plots/``, all summary values, the
resolved config and the package versions.

Every number taken from the summary is shown rounded but carries its exact value and place:
``data-key="tasks.boolq.forget_ratio" data-value="0.8125"`` (``data-value`` is the JSON of the value; in a
key, list indices are plain numbers and a ``.`` or ``\\`` inside a name is escaped with ``\\``). The
whole summary is embedded as ``<script type="application/json" id="summary">``.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from forgetlab.report.study_a_plots import crosstask_axes, plot_study_a, predictor_names, probe_models
from forgetlab.store import atomic_write_text

STUDY_A_EXPERIMENTS = ("forget_generalization", "cross_task")
LONG_LIST = 12
MAX_FLAT_ROWS = 5000

CATEGORY_LABELS = {
    "not_generalized": "not generalized",
    "partial": "partial",
    "full": "full",
    "forget_set_not_fit": "forget set not fit",
    "not_learned": "not learned",
}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1em 2em 4em; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.0em; margin-top: 1.4em; }
nav a { margin-right: 1em; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; vertical-align: top; }
th { background: #f4f4f6; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ci { color: #666; font-size: 0.85em; }
.muted { color: #777; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f7f7f9; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.cat-not_generalized { background: #fde8e8; } .cat-partial { background: #fff4d6; } .cat-full { background: #e3f5e1; }
.cat-forget_set_not_fit { background: #eee; } .cat-not_learned { background: #e6ecf7; }
"""

RENDER_MARK = """
window.addEventListener("load", function () {
  var images = document.images, decoded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { decoded++; }
  }
  document.body.setAttribute("data-rendered", decoded + "/" + images.length);
});
"""


# --- keys and values ----------------------------------------------------------------------------------


def key_of(parts: Sequence[str | int]) -> str:
    """The ``data-key`` of a place in the summary: parts joined by ``.``; ``.`` and ``\\`` in a name escaped."""
    return ".".join(str(p) if isinstance(p, int) else p.replace("\\", "\\\\").replace(".", "\\.") for p in parts)


def split_key(key: str) -> list[str]:
    """The parts of a ``data-key`` (inverse of :func:`key_of`, indices left as strings)."""
    parts, current, escaped = [], [], False
    for char in key:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


_MISSING = object()


def lookup(obj: Any, parts: Sequence[str | int]) -> Any:
    """The value at ``parts`` in a JSON-like object, or ``_MISSING``."""
    for part in parts:
        if isinstance(obj, dict) and str(part) in obj:
            obj = obj[str(part)]
        elif isinstance(obj, list) and str(part).isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return _MISSING
    return obj


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _json_value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def fmt(value: Any, *, p: bool = False) -> str:
    """A number for reading: 3 decimals (p-values below 0.001 in scientific notation); None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if p and value != 0 and abs(value) < 0.001:
            return f"{value:.1e}"
        return f"{value:.3f}"
    return str(value)


class _Page:
    """The report's HTML, built from the summary; every shown value carries its key and exact value."""

    def __init__(self, summary: dict[str, Any]) -> None:
        self.summary = summary
        self.parts: list[str] = []
        self.sections: list[tuple[str, str]] = []

    # values

    def value(self, parts: Sequence[str | int], *, p: bool = False) -> str:
        """A span with the rounded value at ``parts`` and its exact JSON; a dash if absent."""
        value = lookup(self.summary, parts)
        if value is _MISSING:
            return '<span class="muted">—</span>'
        shown = _esc(value) if isinstance(value, str) else fmt(value, p=p)
        return f'<span data-key="{_esc(key_of(parts))}" data-value="{_esc(_json_value(value))}">{shown}</span>'

    def interval(self, parts: Sequence[str | int]) -> str:
        """``[low, high]`` of a 2-list at ``parts``, each bound with its key; empty if absent or null."""
        value = lookup(self.summary, parts)
        if not isinstance(value, list) or len(value) != 2:
            return ""
        return f' <span class="ci">[{self.value([*parts, 0])}, {self.value([*parts, 1])}]</span>'

    def with_ci(self, parts: Sequence[str | int], ci: Sequence[str | int] | None = None) -> str:
        if ci is None:
            ci = [*parts[:-1], f"{parts[-1]}_ci"]
        return self.value(parts) + self.interval(ci)

    # structure

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def section(self, anchor: str, title: str) -> None:
        self.sections.append((anchor, title))
        self.add(f'<h2 id="{_esc(anchor)}">{_esc(title)}</h2>')

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 1,
              row_class: Sequence[str] | None = None, text_columns: Sequence[int] = ()) -> None:
        """A table whose cells are HTML already (values from :meth:`value`); headers are text.

        Columns from ``numeric_from`` on are right-aligned numbers, except ``text_columns``.
        """
        out = ["<table>"] + (["<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in headers) + "</tr>"] if headers else [])
        for i, row in enumerate(rows):
            cls = f' class="{_esc(row_class[i])}"' if row_class and row_class[i] else ""
            cells = "".join(f'<td class="num">{c}</td>' if j >= numeric_from and j not in text_columns else f"<td>{c}</td>"
                            for j, c in enumerate(row))
            out.append(f"<tr{cls}>{cells}</tr>")
        out.append("</table>")
        self.add("\n".join(out))

    def figure(self, png: bytes, caption: str) -> None:
        data = base64.b64encode(png).decode("ascii")
        self.add(f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(caption)}"><figcaption>{_esc(caption)}</figcaption></figure>')


# --- Study A sections ---------------------------------------------------------------------------------


def _behaviour(page: _Page, tasks: dict[str, Any], images: dict[str, dict[str, bytes]]) -> None:
    if not tasks:
        return
    page.section("behaviour", "Behaviour per task")
    page.add('<p class="muted">Accuracy on the held-out test set unless noted, with 95 % bootstrap CIs. '
             "forget gap = acc_F − 0.5; forget ratio = (acc_FT − acc_F) / (acc_FT − 0.5), 1 = fully forgotten. "
             "not learned: the fine-tuned accuracy's CI is not above chance and pre-trained, so there is no ratio "
             "and no category.</p>")
    rows, classes = [], []
    for task, row in tasks.items():
        category = row.get("category")
        rows.append([
            _esc(task),
            page.with_ci(["tasks", task, "acc_pretrained"]),
            page.with_ci(["tasks", task, "acc_finetuned"]),
            page.with_ci(["tasks", task, "acc_forget_test"]),
            page.with_ci(["tasks", task, "acc_forget_train"]),
            page.value(["tasks", task, "forget_gap"]),
            page.value(["tasks", task, "forget_ratio"]),
            page.value(["tasks", task, "category"]),
        ])
        classes.append(f"cat-{category}" if isinstance(category, str) and category in CATEGORY_LABELS else "")
    page.table(["task", "pre-trained", "fine-tuned", "forgotten: test", "forgotten: forget set", "forget gap", "forget ratio", "category"],
               rows, numeric_from=1, row_class=classes, text_columns=(7,))
    for png in images.get("behaviour", {}).values():
        page.figure(png, "Accuracy per task (bars: 95 % CI; dashed: chance)")


def _predictors(page: _Page, summary: dict[str, Any], images: dict[str, dict[str, bytes]]) -> None:
    analysis = summary.get("analysis") or {}
    correlations = analysis.get("correlations") or {}
    scatters = images.get("predictors", {})
    tasks = summary.get("tasks") or {}
    with_values = [t for t, row in tasks.items() if isinstance(row.get("predictors"), dict) and row["predictors"]]
    if not correlations and not scatters and not with_values:
        return
    target = analysis.get("target") or "forget_ratio"
    page.section("predictors", "Predictors of the forget ratio")
    if correlations:
        page.add(f"<p>Across tasks, correlation of each predictor with <code>{_esc(target)}</code> "
                 "(p-values two-sided; CIs: bootstrap over tasks, 95 %).</p>")
        rows = []
        for name in correlations:
            base = ["analysis", "correlations", name]
            rows.append([
                _esc(name),
                page.value([*base, "n"]),
                page.value([*base, "pearson_r"]),
                page.value([*base, "pearson_p"], p=True),
                page.interval([*base, "pearson_ci"]),
                page.value([*base, "spearman_rho"]),
                page.value([*base, "spearman_p"], p=True),
                page.interval([*base, "spearman_ci"]),
            ])
        page.table(["predictor", "n", "Pearson r", "p", "95 % CI", "Spearman ρ", "p", "95 % CI"], rows)
    _listed(page, ["analysis", "excluded"], "Left out of the correlations, not learned")
    if with_values:
        names = predictor_names(summary)
        extra = sorted({k for t in with_values for k in tasks[t]["predictors"]} - set(names))
        columns = names + extra
        rows = [[_esc(t)] + [page.value(["tasks", t, "predictors", c]) for c in columns] + [page.value(["tasks", t, target])] for t in with_values]
        page.add("<h3>Predictor values per task</h3>")
        page.table(["task", *columns, target], rows)
    for name, png in scatters.items():
        page.figure(png, f"{name} vs {target}")


def _listed(page: _Page, parts: list[str], label: str) -> None:
    """A muted line naming the entries of the list at ``parts`` (nothing when it is absent or empty)."""
    names = lookup(page.summary, parts)
    if not isinstance(names, list) or not names:
        return
    shown = ", ".join(page.value([*parts, i]) for i in range(len(names)))
    page.add(f'<p class="muted">{_esc(label)}: {shown}.</p>')


def _item_predictors(page: _Page, tasks: dict[str, Any]) -> None:
    rows = []
    for task, row in tasks.items():
        for name in (row.get("item_predictors") or {}):
            base = ["tasks", task, "item_predictors", name]
            rows.append([_esc(task), _esc(name), page.value([*base, "auc"]), page.interval([*base, "ci"]),
                         page.value([*base, "n_pos"]), page.value([*base, "n_neg"])])
    if not rows:
        return
    page.section("items", "Item-level predictors")
    page.add("<p>Within each task, ROC-AUC of each predictor for whether an item is forgotten (0.5 = no signal).</p>")
    page.table(["task", "predictor", "AUC", "95 % CI", "forgotten (n_pos)", "kept (n_neg)"], rows, numeric_from=2)


def _best_layer(layers: dict[str, Any]) -> str | None:
    def score(layer: str) -> tuple[float, float]:
        entry = layers[layer] or {}
        val = entry.get("val_acc")
        pair = entry.get("pair_acc")
        return (val if isinstance(val, (int, float)) else -1.0, pair if isinstance(pair, (int, float)) else -1.0)

    candidates = [k for k, v in layers.items() if isinstance(v, dict)]
    if not candidates:
        return None
    best = max(score(k) for k in candidates)
    return min((k for k in candidates if score(k) == best), key=lambda s: (0, int(s)) if s.lstrip("-").isdigit() else (1, 0))


def _probes(page: _Page, tasks: dict[str, Any], images: dict[str, dict[str, bytes]]) -> None:
    rows = []
    for task, row in tasks.items():
        probes = row.get("probes")
        if not isinstance(probes, dict):
            continue
        for model in probe_models(probes):
            layer = _best_layer(probes[model])
            if layer is None:
                continue
            base = ["tasks", task, "probes", model, layer]
            rows.append([_esc(task), _esc(model), _esc(layer), page.value([*base, "pair_acc"]), page.value([*base, "question_acc"]),
                         page.value([*base, "val_acc"]), page.value([*base, "c"]), page.value([*base, "n_pairs"]), page.value([*base, "n_questions"])])
    plots = images.get("probes", {})
    if not rows and not plots:
        return
    page.section("probes", "Linear probes")
    page.add("<p>L2 logistic-regression probes on hidden states of (prompt + answer) pairs, correct vs incorrect. "
             "Best layer = highest validation accuracy; pair/question accuracy on held-out items (chance 0.5).</p>")
    if rows:
        page.table(["task", "model", "best layer", "pair acc", "question acc", "val acc", "C", "pairs", "questions"], rows, numeric_from=2)
    for task, png in plots.items():
        page.figure(png, f"{task}: probe accuracy by layer")


def _order(page: _Page, tasks: dict[str, Any], images: dict[str, dict[str, bytes]]) -> None:
    rows = []
    for task, row in tasks.items():
        for split, entry in (row.get("order") or {}).items():
            if not isinstance(entry, dict):
                continue
            base = ["tasks", task, "order", split]
            rows.append([_esc(task), _esc(split), page.value([*base, "n"]), page.value([*base, "spearman_rho"]),
                         page.value([*base, "spearman_p"], p=True), page.interval([*base, "spearman_ci"]),
                         page.value([*base, "n_never_learned"]), page.value([*base, "n_never_forgotten"]), page.value([*base, "threshold"])])
    plots = images.get("order", {})
    if not rows and not plots:
        return
    page.section("order", "Learn order vs forget order")
    page.add("<p>Per item: the fine-tuning step at which its confidence first reaches the threshold (learned) and the "
             "forgetting step at which it first falls below (forgotten; never-forgotten items censored at the last step + 1). "
             "“Learned first, forgotten last” shows as a negative Spearman ρ.</p>")
    if rows:
        page.table(["task", "split", "n", "Spearman ρ", "p", "95 % CI", "never learned", "never forgotten", "threshold"], rows, numeric_from=2)
    for task, png in plots.items():
        page.figure(png, f"{task}: learn step vs forget step")


def _crosstask(page: _Page, summary: dict[str, Any], images: dict[str, dict[str, bytes]]) -> None:
    crosstask = summary.get("crosstask")
    if not isinstance(crosstask, dict):
        return
    rows_order, cols_order = crosstask_axes(crosstask)
    page.section("crosstask", "Cross-task forgetting")
    page.add("<p>Row A: the task forgotten (random labels); column B: the task evaluated. Cell: forget ratio of B "
             "relative to the model fine-tuned on B (its accuracy is the reference); the diagonal is the Study A forget ratio. "
             "Rows and columns in UPGMA order.</p>")
    for png in images.get("crosstask", {}).values():
        page.figure(png, "Cross-task forget ratio (red: forgotten, blue: improved, white: unchanged)")
    if rows_order and cols_order:
        header = ["forgotten A \\ evaluated B", *cols_order]
        rows = [["reference acc (FT on B)"] + [page.value(["crosstask", "reference", b]) for b in cols_order]]
        rows += [[_esc(a)] + [page.value(["crosstask", "forget_ratio", a, b]) for b in cols_order] for a in rows_order]
        page.add("<h3>Forget ratio</h3>")
        page.table(header, rows)
        for name, label in (("accuracy", "Accuracy of B after forgetting A"),
                            ("forget_fit", "Forget-set fit: accuracy of A's forget set against the labels trained on")):
            if isinstance(crosstask.get(name), dict):
                matrix_rows = [[_esc(a)] + [page.value(["crosstask", name, a, b]) for b in cols_order] for a in rows_order]
                page.add(f"<details><summary>{_esc(label)}</summary>")
                page.table(header, matrix_rows)
                page.add("</details>")
    _listed(page, ["crosstask", "not_learned"], "No ratio in the columns of tasks not learned")
    variance = crosstask.get("variance_explained")
    if isinstance(variance, dict) and variance:
        page.add("<h3>Variance explained</h3>")
        page.table(["part", "share of variance"], [[_esc(k), page.value(["crosstask", "variance_explained", k])] for k in variance])
    if summary.get("study_a_run"):
        page.add(f'<p class="muted">Diagonal and per-task numbers from Study A run {page.value(["study_a_run"])}.</p>')


# --- generic ------------------------------------------------------------------------------------------


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
        text += f" ({_esc(type(values[0]).__name__)}), first: {_esc(json.dumps(values[0], ensure_ascii=False)[:80])}"
    return text


def _flat_table(page: _Page, obj: Any, root: list[str | int]) -> None:
    leaves: list[tuple[list[str | int], Any, bool]] = []
    _flatten(obj, root, leaves)
    rows = []
    for parts, value, summarised in leaves[:MAX_FLAT_ROWS]:
        label = _esc(".".join(str(p) for p in parts[len(root):]) or "(value)")
        if summarised:
            rows.append([label, f'<span class="muted">{_list_summary(value)}</span>'])
        elif isinstance(value, (dict, list)):
            rows.append([label, '<span class="muted">(empty)</span>'])
        elif isinstance(value, str) and len(value) > 300:
            rows.append([label, _esc(value[:300]) + '<span class="muted"> …</span>'])
        else:
            rows.append([label, page.value(parts)])
    page.table(["key", "value"], rows)
    if len(leaves) > MAX_FLAT_ROWS:
        page.add(f'<p class="muted">{len(leaves) - MAX_FLAT_ROWS} more values: see the embedded summary.</p>')


# --- page ---------------------------------------------------------------------------------------------


def _header(page: _Page, summary: dict[str, Any], resolved: dict[str, Any], run_dir: Path) -> None:
    experiment = summary.get("experiment") or (resolved.get("config") or {}).get("experiment") or "?"
    run_id = summary.get("run") or run_dir.name
    page.add(f"<h1>forgetlab report: {_esc(run_id)}</h1>")
    finished = dt.datetime.fromtimestamp((run_dir / "summary.json").stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
    model = summary.get("model") or ((resolved.get("config") or {}).get("model") or {}).get("name")
    rows = [
        ["run", page.value(["run"]) if "run" in summary else _esc(run_id)],
        ["experiment", page.value(["experiment"]) if "experiment" in summary else _esc(experiment)],
        ["model", page.value(["model"]) if "model" in summary else _esc(model if model is not None else "—")],
        ["finished", _esc(finished)],
        ["report written", _esc(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))],
        ["command", f"<code>{_esc(resolved.get('command') or '—')}</code>"],
        ["fingerprint", _esc(resolved.get("fingerprint", "—"))],
        ["seed", _esc(resolved.get("seed", "—"))],
        ["world size", _esc(resolved.get("world_size", "—"))],
    ]
    page.table([], [[f"<b>{label}</b>", cell] for label, cell in rows], numeric_from=99)


def _trajectories(page: _Page, pngs: list[tuple[str, bytes]]) -> None:
    if not pngs:
        return
    page.section("trajectories", "Training trajectories")
    for name, png in pngs:
        page.figure(png, name)


def _config(page: _Page, config_text: str, resolved: dict[str, Any]) -> None:
    page.section("config", "Resolved config")
    page.add(f"<pre>{_esc(config_text)}</pre>")
    versions = resolved.get("versions")
    if isinstance(versions, dict) and versions:
        page.section("versions", "Package versions")
        page.table(["package", "version"], [[_esc(k), _esc(v)] for k, v in versions.items()], numeric_from=99)


def _summary_json(summary: dict[str, Any]) -> str:
    """The summary as JSON that cannot end the script element it is embedded in."""
    text = json.dumps(summary, indent=1, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def build_html(run_dir: Path, summary: dict[str, Any], config_text: str, images: dict[str, dict[str, bytes]], trajectories: list[tuple[str, bytes]]) -> str:
    """The report's HTML text (see the module docstring)."""
    resolved = yaml.safe_load(config_text) or {}
    if not isinstance(resolved, dict):
        resolved = {}
    page = _Page(summary)
    _header(page, summary, resolved, run_dir)
    raw_tasks = summary.get("tasks") if isinstance(summary.get("tasks"), dict) else {}
    tasks = {name: row for name, row in raw_tasks.items() if isinstance(row, dict)}
    if summary.get("experiment") in STUDY_A_EXPERIMENTS:
        _behaviour(page, tasks, images)
        _predictors(page, summary, images)
        _item_predictors(page, tasks)
        _probes(page, tasks, images)
        _order(page, tasks, images)
        _crosstask(page, summary, images)
        _trajectories(page, trajectories)
        page.section("summary", "All summary values")
        page.add("<details><summary>Every value of summary.json</summary>")
        _flat_table(page, summary, [])
        page.add("</details>")
    else:
        page.section("summary", "Summary")
        _flat_table(page, summary, [])
        _trajectories(page, trajectories)
    _config(page, config_text, resolved)

    title = f"forgetlab: {summary.get('run') or run_dir.name}"
    nav = " ".join(f'<a href="#{_esc(a)}">{_esc(t)}</a>' for a, t in page.sections)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing may be fetched: images are data: URIs, and the only script is inline.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
        f"<title>{_esc(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<nav>{nav}</nav>",
        *page.parts,
        f'<script type="application/json" id="summary">{_summary_json(summary)}</script>',
        f"<script>{RENDER_MARK}</script>",
        "</body>",
        "</html>",
        "",
    ])


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report/*.png`` and ``run_dir/report.html`` (atomically); returns the HTML's path.

    Needs ``config.yaml`` and ``summary.json`` (a finished run); raises FileNotFoundError otherwise.
    """
    run_dir = Path(run_dir)
    for name in ("config.yaml", "summary.json"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir}: no {name}; only a finished run has a report")
    summary = json.loads((run_dir / "summary.json").read_text())
    if not isinstance(summary, dict):
        raise ValueError(f"{run_dir / 'summary.json'}: expected a JSON object")
    config_text = (run_dir / "config.yaml").read_text()

    out_dir = run_dir / "report"
    written: dict[str, dict[str, Path]] = {}
    if summary.get("experiment") in STUDY_A_EXPERIMENTS:
        written = plot_study_a(summary, out_dir)
    fresh = {path.name for items in written.values() for path in items.values()}
    if out_dir.is_dir():
        for stale in out_dir.glob("*.png"):
            if stale.name not in fresh:
                stale.unlink()
    images = {section: {item: path.read_bytes() for item, path in items.items()} for section, items in written.items()}
    trajectories = [(p.name, p.read_bytes()) for p in sorted((run_dir / "plots").glob("*.png"))] if (run_dir / "plots").is_dir() else []

    path = run_dir / "report.html"
    atomic_write_text(path, build_html(run_dir, summary, config_text, images, trajectories), mode=0o644)
    return path
