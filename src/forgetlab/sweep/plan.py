"""A sweep's cells: one ordinary run per assignment, plus the runs they start (their experiment's parts), each
with the runs it needs, in an order that respects those needs; the sweep's own id and folder.

A cell is identified by its run id (computed up front, exactly as ``forgetlab run`` would), so cells shared by
several assignments (e.g. one fine-tuning read by many forgetting cells) are run once, and a rerun of the sweep
finds the finished ones in the catalog.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgetlab.config import ConfigError, ExperimentConfig, set_key
from forgetlab.experiments import EXPERIMENTS, build_config, run_id
from forgetlab.sweep.spec import Assignment, SweepSpec

BASE_LABEL = "base"  # the label of the one cell of a sweep without axes

#: Cells of a sweep keep their one-process identity: a cell is one process (one GPU at most).
CELL_WORLD_SIZE = 1


@dataclass
class Cell:
    """One run of the sweep: its id, a readable label, the sweep's assignment (empty for a part), its config and
    the ids of the cells it needs finished first."""

    key: str
    label: str
    config: ExperimentConfig
    axes: Assignment = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    top: bool = True  # one of the sweep's assignments (False: a part another cell starts)

    def recipe(self) -> dict[str, Any]:
        """The cell's resolved recipe (what a worker runs)."""
        return self.config.model_dump(mode="json")


@dataclass
class Plan:
    """A sweep's cells in an order that respects their needs, and its id (name + hash of its cells' ids)."""

    spec: SweepSpec
    cells: list[Cell]
    identity: str | None = None  # what names the sweep when its cells are not known up front (a search)
    base: dict[str, Any] = field(default_factory=dict)  # the base recipe (a search plans its cells from it)
    origin: str = ""  # where the base comes from, for error messages

    @property
    def id(self) -> str:
        digest = self.identity or hashlib.sha256("\n".join(sorted(c.key for c in self.top_cells)).encode()).hexdigest()
        return f"{self.spec.name}-{digest[:12]}"

    @property
    def top_cells(self) -> list[Cell]:
        return [c for c in self.cells if c.top]

    def folder(self, runs_dir: Path) -> Path:
        """Where the sweep keeps its plan, logs, results and report: ``<runs dir>/sweeps/<sweep id>``."""
        return Path(runs_dir) / "sweeps" / self.id


def label_of(assignment: Assignment) -> str:
    """``forget.method=npo seed=1``, ``tasks=boolq`` (a mapping shown by its ``name``), or ``base`` for the one cell
    of a sweep without axes."""
    return " ".join(f"{key}={shown(value)}" for key, value in assignment.items()) or BASE_LABEL


def shown(value: Any) -> str:
    """An axis value as people read it: a list joined by commas, a mapping with a ``name`` by that name (a task
    reference), anything else as ``str``."""
    if isinstance(value, (list, tuple)):
        return ",".join(shown(v) for v in value)
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return value["name"]
    return str(value)


def cell_config(spec: SweepSpec, base: dict[str, Any], assignment: Assignment, origin: str) -> ExperimentConfig:
    """The config of one assignment: the base with the assignment set and the thread count pinned, checked."""
    raw = copy.deepcopy(base)
    for key, value in assignment.items():
        set_key(raw, key.split("."), value, f"{key}={value}")
    if "cpu_threads" not in assignment:  # pinned: an axis's value, else the sweep's, else the base's, else 1
        raw["cpu_threads"] = spec.cpu_threads or raw.get("cpu_threads") or 1
    where = f"{origin}: cell [{label_of(assignment)}]"
    config = build_config(raw, origin=where)
    try:
        EXPERIMENTS.get(config.experiment).validate(config)
    except (KeyError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        raise ConfigError(f"{where}: {message}") from None
    return config


def plan(spec: SweepSpec, base: dict[str, Any], origin: str, assignments: list[Assignment] | None = None,
         *, repeats: bool = False) -> Plan:
    """Every cell of the sweep (or of ``assignments``), parts first; two assignments that give the same run are an
    error unless ``repeats`` (a search may ask the same point twice: it is one run)."""
    cells: dict[str, Cell] = {}
    for assignment in spec.assignments() if assignments is None else assignments:
        config = cell_config(spec, base, assignment, origin)
        key = _add(cells, config, label_of(assignment), assignment, top=True)
        if cells[key].axes is not assignment and not repeats:
            raise ConfigError(f"{origin}: cells [{label_of(cells[key].axes)}] and [{label_of(assignment)}] are the same run {key}")
    return Plan(spec, list(cells.values()), base=base, origin=origin)


def _add(cells: dict[str, Cell], config: ExperimentConfig, label: str, axes: Assignment, *, top: bool) -> str:
    """Add the cell of ``config`` after the cells of its parts (recursively); returns its key."""
    experiment = EXPERIMENTS.get(config.experiment)
    part_keys: list[str] = []
    for part in experiment.parts(config):
        needs = tuple(part_keys[i] for i in part.needs)
        name = part.label or part.config.name
        key = _add(cells, part.config, name if label == BASE_LABEL else f"{label} / {name}", {}, top=False)
        cells[key].needs = tuple(dict.fromkeys(cells[key].needs + needs))
        part_keys.append(key)
    key = run_id(config, experiment, CELL_WORLD_SIZE)
    found = cells.get(key)
    if found is None:
        cells[key] = Cell(key, label, config, axes, tuple(part_keys), top)
    elif top and not found.top:  # an assignment that is also another assignment's part
        found.label, found.axes, found.top = label, axes, True
    return key
