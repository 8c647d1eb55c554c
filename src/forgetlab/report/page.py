"""The report page: values that carry their place in the summary, tables, figures, and the HTML document.

Every number taken from the summary is shown rounded but carries its exact value and place:
``data-key="tasks.boolq.forget_ratio" data-value="0.8125"`` (``data-value`` is the JSON of the value; in a
key, list indices are plain numbers and a ``.`` or ``\\`` inside a name is escaped with ``\\``).

The document loads nothing: images are ``data:`` URIs, styles are inline, fonts are the reader's own, and the
only script is a few inline lines that mark, after load, how many images decoded
(``<body data-rendered="decoded/total">``; ``scripts/check_report_render.py`` checks it in headless Chromium).
The whole summary is embedded as ``<script type="application/json" id="summary">``.
"""

from __future__ import annotations

import base64
import copy
import html
import json
import math
from typing import Any, Iterable, Sequence

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

# Nothing may be fetched: images are data: URIs, and the only script is inline.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


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


MISSING = object()


def lookup(obj: Any, parts: Sequence[str | int]) -> Any:
    """The value at ``parts`` in a JSON-like object, or :data:`MISSING`."""
    for part in parts:
        if isinstance(obj, dict) and str(part) in obj:
            obj = obj[str(part)]
        elif isinstance(obj, list) and str(part).isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return MISSING
    return obj


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML, attributes included."""
    return html.escape(str(value), quote=True)


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


# --- the page -----------------------------------------------------------------------------------------


class Page:
    """The report's HTML, built from the summary; every shown value carries its key and exact value."""

    def __init__(self, summary: dict[str, Any]) -> None:
        self.summary = summary
        self.parts: list[str] = []
        self.sections: list[tuple[str, str]] = []
        self.styles: list[str] = []
        self.prefix: tuple[str | int, ...] = ()

    def within(self, *prefix: str | int) -> "Page":
        """The same page (its HTML, sections and styles are shared) reading values under ``prefix`` of the
        summary: ``within("combined").value(["tasks", "rte"])`` shows ``combined.tasks.rte``, keyed so."""
        view = copy.copy(self)
        view.prefix = (*self.prefix, *prefix)
        return view

    # values

    def value(self, parts: Sequence[str | int], *, p: bool = False) -> str:
        """A span with the rounded value at ``parts`` (under the page's prefix) and its exact JSON; a dash if absent."""
        parts = [*self.prefix, *parts]
        value = lookup(self.summary, parts)
        if value is MISSING:
            return '<span class="muted">—</span>'
        shown = esc(value) if isinstance(value, str) else fmt(value, p=p)
        exact = json.dumps(value, ensure_ascii=False)
        return f'<span data-key="{esc(key_of(parts))}" data-value="{esc(exact)}">{shown}</span>'

    def interval(self, parts: Sequence[str | int]) -> str:
        """``[low, high]`` of a 2-list at ``parts``, each bound with its key; empty if absent or null."""
        value = lookup(self.summary, [*self.prefix, *parts])
        if not isinstance(value, list) or len(value) != 2:
            return ""
        return f' <span class="ci">[{self.value([*parts, 0])}, {self.value([*parts, 1])}]</span>'

    def with_ci(self, parts: Sequence[str | int], ci: Sequence[str | int] | None = None) -> str:
        """The value at ``parts`` and its interval (by default at ``<last part>_ci`` beside it)."""
        if ci is None:
            ci = [*parts[:-1], f"{parts[-1]}_ci"]
        return self.value(parts) + self.interval(ci)

    # structure

    def add(self, fragment: str) -> None:
        """Append HTML as it is."""
        self.parts.append(fragment)

    def style(self, css: str) -> None:
        """Add CSS rules to the document's style (once, however often a section asks)."""
        if css not in self.styles:
            self.styles.append(css)

    def section(self, anchor: str, title: str) -> None:
        """Start a section: a heading with ``id=anchor``, listed in the page's navigation."""
        self.sections.append((anchor, title))
        self.add(f'<h2 id="{esc(anchor)}">{esc(title)}</h2>')

    def note(self, text: str) -> None:
        """A muted paragraph of plain text."""
        self.add(f'<p class="muted">{esc(text)}</p>')

    def listed(self, parts: Sequence[str | int], label: str) -> None:
        """A muted line naming the entries of the list at ``parts`` (nothing when it is absent or empty)."""
        names = lookup(self.summary, [*self.prefix, *parts])
        if not isinstance(names, list) or not names:
            return
        shown = ", ".join(self.value([*parts, i]) for i in range(len(names)))
        self.add(f'<p class="muted">{esc(label)}: {shown}.</p>')

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[str]], numeric_from: int = 1,
              row_class: Sequence[str] | None = None, text_columns: Sequence[int] = ()) -> None:
        """A table whose cells are HTML already (values from :meth:`value`); headers are text.

        Columns from ``numeric_from`` on are right-aligned numbers, except ``text_columns``.
        """
        out = ["<table>"] + (["<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"] if headers else [])
        for i, row in enumerate(rows):
            cls = f' class="{esc(row_class[i])}"' if row_class and row_class[i] else ""
            cells = "".join(f'<td class="num">{c}</td>' if j >= numeric_from and j not in text_columns else f"<td>{c}</td>"
                            for j, c in enumerate(row))
            out.append(f"<tr{cls}>{cells}</tr>")
        out.append("</table>")
        self.add("\n".join(out))

    def figure(self, png: bytes, caption: str) -> None:
        """An embedded PNG (a ``data:`` URI) with its caption."""
        data = base64.b64encode(png).decode("ascii")
        self.add(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>')


def _summary_json(summary: dict[str, Any]) -> str:
    """The summary as JSON that cannot end the script element it is embedded in."""
    text = json.dumps(summary, indent=1, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def document(page: Page, title: str) -> str:
    """The self-contained HTML document of ``page``: navigation, its parts, the summary JSON, the render mark."""
    nav = " ".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in page.sections)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        f"<title>{esc(title)}</title>",
        f"<style>{STYLE}{''.join(page.styles)}</style>",
        "</head>",
        "<body>",
        f"<nav>{nav}</nav>",
        *page.parts,
        f'<script type="application/json" id="summary">{_summary_json(page.summary)}</script>',
        f"<script>{RENDER_MARK}</script>",
        "</body>",
        "</html>",
        "",
    ])
