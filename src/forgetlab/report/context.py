"""What a report section is given: the finished run (summary, resolved config, its tables), a folder for its
figures, and read access to other finished runs of the same runs directory.

A section is a function ``section(page, context)`` that adds headings, tables and figures to the page
(:class:`~forgetlab.report.page.Page`) when the run has the data for them, and nothing otherwise. Each
experiment lists its sections (``Experiment.report_sections``); :func:`forgetlab.report.html.write_report`
puts them between the generic header and the generic summary, config and version sections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from forgetlab.report.page import Page
from forgetlab.report.plots import png_bytes
from forgetlab.store import Run, RunStore, atomic_write_bytes, read_jsonl

FIGURES = "report"  # <run>/report/*.png: the figures of the report, rewritten with it


def jsonl_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``.jsonl`` table (``metrics.jsonl``, ``examples.jsonl``); none when the file is absent."""
    return list(read_jsonl(path)) if path.is_file() else []


@dataclass
class ReportContext:
    """A finished run as its report sees it.

    ``resolved`` is ``config.yaml`` parsed (the run's record: ``config``, ``seed``, ``versions`` ...);
    :meth:`rows` reads the run's tables once, on demand; :meth:`figure` draws into ``<run>/report/``.
    """

    run_dir: Path
    summary: dict[str, Any]
    config_text: str
    resolved: dict[str, Any]
    written: list[str] = field(default_factory=list)  # the figures' file names, in the order drawn
    captions: dict[str, str] = field(default_factory=dict)  # file name -> caption
    runs_dir: Path | None = None  # where the other runs are (default: beside this run; a sweep's report says)
    _tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, run_dir: Path) -> ReportContext:
        """The context of the finished run in ``run_dir``; FileNotFoundError unless it has ``config.yaml`` and
        ``summary.json``, ValueError when the summary is not a JSON object."""
        run_dir = Path(run_dir)
        for name in ("config.yaml", "summary.json"):
            if not (run_dir / name).is_file():
                raise FileNotFoundError(f"{run_dir}: no {name}; only a finished run has a report")
        summary = json.loads((run_dir / "summary.json").read_text())
        if not isinstance(summary, dict):
            raise ValueError(f"{run_dir / 'summary.json'}: expected a JSON object")
        config_text = (run_dir / "config.yaml").read_text()
        resolved = yaml.safe_load(config_text)
        return cls(run_dir, summary, config_text, resolved if isinstance(resolved, dict) else {})

    @property
    def experiment(self) -> str | None:
        """The experiment the run ran: its config's ``experiment``, else the summary's."""
        config = self.resolved.get("config")
        name = config.get("experiment") if isinstance(config, dict) else None
        name = name or self.summary.get("experiment")
        return name if isinstance(name, str) else None

    @property
    def figures_dir(self) -> Path:
        return self.run_dir / FIGURES

    def rows(self, table: str = "metrics.jsonl") -> list[dict[str, Any]]:
        """The rows of one of the run's tables (read once); none when the run has no such file."""
        if table not in self._tables:
            self._tables[table] = jsonl_rows(self.run_dir / table)
        return self._tables[table]

    def finished_run(self, run_id: str) -> Run:
        """Another finished run of the same runs directory, through the store (StoreError when the folder has
        no catalog, the run is not in it or not finished; ValueError for a name that is not a run id)."""
        return RunStore(self.runs_dir or self.run_dir.parent, create=False).finished_run(run_id)

    def figure(self, page: Page, figure: Any, name: str, caption: str) -> None:
        """Save a matplotlib figure as ``<run>/report/<name>.png`` (atomically) and show it on the page;
        ``figure`` None (nothing to draw) adds nothing."""
        if figure is None:
            return
        png = png_bytes(figure)
        atomic_write_bytes(self.figures_dir / f"{name}.png", png, mode=0o644)  # a report is for reading
        self.written.append(f"{name}.png")
        self.captions[f"{name}.png"] = caption
        page.figure(png, caption)

    def remove_stale_figures(self) -> None:
        """PNGs of an earlier report that this one did not draw (their data is gone) are removed."""
        if self.figures_dir.is_dir():
            for stale in self.figures_dir.glob("*.png"):
                if stale.name not in self.captions:
                    stale.unlink()


#: A part of a report: adds headings, tables and figures to the page when the run has the data for them.
Section = Callable[[Page, ReportContext], None]
