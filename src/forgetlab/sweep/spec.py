"""A sweep file: a base recipe and the axes that vary it, read into one checked :class:`SweepSpec`.

::

    name: methods                 # default: the file's name
    base: unlearn_tiny            # a recipe: built-in name, path (also relative to this file), or a mapping
    set: [forget.max_steps=4]     # overrides of the base, as with ``forgetlab run --set``
    grid:                         # every combination of these (seeds are an axis like any other)
      forget.method: [grad_ascent, npo, grad_diff]
      seed: [0, 1, 2]
    zip:                          # these walk together (equally long), crossed with the grid
      forget.lr: [1.0e-3, 1.0e-4]
      forget.max_steps: [4, 8]
    cells:                        # an explicit list of assignments, crossed with the rest
      - {forget.method: npo, forget.options.beta: 0.5}
    random:                       # samples from distributions, crossed with the rest
      samples: 4
      seed: 0
      space: {forget.lr: {log_uniform: [1.0e-5, 1.0e-3]}, forget.batch_size: {choice: [4, 8]}}
    cpu_threads: 1                # torch threads of every cell, pinned in its recipe (default: the base's, else 1)
    backend: local                # local | ray | slurm (or --backend)

A plain recipe (a file with ``experiment:`` and no ``base:``) is a sweep of one cell: ``forgetlab sweep`` fans
out its parts (e.g. a cross-task matrix's cells). Unknown keys, empty axes, zip lists of unequal length and a key
set by two parts are errors naming the file and the key.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, field_validator, model_validator

from forgetlab.config import ConfigError, Spec, apply_overrides, check_run_name, read_recipe, validation_problems
from forgetlab.experiments.recipes import resolve_recipe

#: One cell's assignment: dotted key → value, in the sweep file's order.
Assignment = dict[str, Any]


class Distribution(Spec):
    """Where a random axis draws from: exactly one of the four."""

    uniform: tuple[float, float] | None = None
    log_uniform: tuple[float, float] | None = None
    int_uniform: tuple[int, int] | None = None
    choice: list[Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> "Distribution":
        given = [name for name in ("uniform", "log_uniform", "int_uniform", "choice") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of uniform, log_uniform, int_uniform, choice (got {', '.join(given) or 'none'})")
        low_high = self.uniform or self.log_uniform or self.int_uniform
        if low_high is not None and not low_high[0] <= low_high[1]:
            raise ValueError(f"the low bound {low_high[0]} is above the high bound {low_high[1]}")
        if self.log_uniform is not None and self.log_uniform[0] <= 0:
            raise ValueError("log_uniform bounds must be positive")
        if self.choice is not None and not self.choice:
            raise ValueError("choice: empty list")
        return self

    def draw(self, rng: np.random.Generator) -> Any:
        if self.uniform is not None:
            return float(rng.uniform(*self.uniform))
        if self.log_uniform is not None:
            return float(math.exp(rng.uniform(math.log(self.log_uniform[0]), math.log(self.log_uniform[1]))))
        if self.int_uniform is not None:
            return int(rng.integers(self.int_uniform[0], self.int_uniform[1] + 1))
        return self.choice[int(rng.integers(len(self.choice)))]


class RandomSpec(Spec):
    """``samples`` draws of every key in ``space`` (seeded: the same file gives the same cells)."""

    samples: int = Field(ge=1)
    seed: int = Field(0, ge=0)
    space: dict[str, Distribution] = Field(min_length=1)

    def assignments(self) -> list[Assignment]:
        rng = np.random.default_rng(self.seed)
        return [{key: dist.draw(rng) for key, dist in self.space.items()} for _ in range(self.samples)]


class Bound(Spec):
    """A constraint on a summary number of each trial's run: at most ``max`` and/or at least ``min``."""

    key: str
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> "Bound":
        if self.max is None and self.min is None:
            raise ValueError(f"{self.key}: give max, min or both")
        return self

    def violation(self, value: float | None) -> float:
        """How far ``value`` is outside the bounds (0 inside; a missing value violates by 1)."""
        if value is None:
            return 1.0
        return max(0.0, value - self.max if self.max is not None else 0.0, self.min - value if self.min is not None else 0.0)


class SearchSpec(Spec):
    """An Optuna search: ``trials`` runs, ``parallel`` at a time, each a point of ``space`` chosen from the results
    so far (TPE, or random), minimising the objective's badness (its direction from the metric registry unless
    ``direction`` says). Trials that break a constraint are infeasible for the sampler. Seeded: a rerun asks the
    same points again, finds their runs finished, and goes on where it stopped."""

    objective: str = Field(description="a summary key of each trial's run, e.g. selected.forget_loss")
    direction: Literal["minimize", "maximize"] | None = Field(None, description="default: from the metric registry")
    trials: int = Field(ge=1)
    parallel: int = Field(1, ge=1, description="trials run at once (each batch is chosen before it runs)")
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = Field(0, ge=0)
    space: dict[str, Distribution] = Field(min_length=1)
    constraints: list[Bound] = Field(default_factory=list)


class RaySpec(Spec):
    """The Ray backend: an existing cluster's address (None: a local Ray instance) and GPUs per cell."""

    address: str | None = Field(None, description="auto, ray://host:port, or None for a local instance")
    gpus_per_cell: float = Field(0, ge=0)


class SlurmSpec(Spec):
    """The Slurm backend (submitit): where and how long each cell's job runs; cells of one wave go as one array."""

    partition: str | None = None
    account: str | None = None
    time_min: int = Field(60, ge=1, description="the time limit of each cell's job (minutes)")
    gpus_per_job: int = Field(0, ge=0)
    mem_gb: int | None = Field(None, ge=1)
    array_parallelism: int = Field(64, ge=1, description="at most this many jobs of an array run at once")
    folder: str | None = Field(None, description="submitit's logs and pickles (default: <sweep dir>/slurm)")
    cluster: Literal["slurm", "local", "debug"] | None = Field(
        None, description="None: Slurm when sbatch is present; local runs the same jobs as local processes (tests)")


BackendName = Literal["local", "ray", "slurm"]


class SweepSpec(Spec):
    """A checked sweep file (see the module docstring)."""

    name: str
    base: str | dict[str, Any]
    set: list[str] = Field(default_factory=list)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    cells: list[Assignment] = Field(default_factory=list)
    random: RandomSpec | None = None
    search: SearchSpec | None = None
    cpu_threads: int | None = Field(None, ge=1, description="torch threads of every cell (default: the base's, else 1)")
    metrics: list[str] = Field(default_factory=list, description="summary keys shown (default: the experiment's)")
    backend: BackendName = "local"
    workers: int | None = Field(None, ge=1, description="local backend: cells at once (default: CPUs // cpu_threads)")
    retries: int = Field(1, ge=0, description="a cell whose worker died (killed, node lost) is started again this often")
    ray: RaySpec = Field(default_factory=RaySpec)
    slurm: SlurmSpec = Field(default_factory=SlurmSpec)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_run_name(value, "sweep name")

    @field_validator("grid", "zip")
    @classmethod
    def _no_empty_axis(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [key for key, values in axes.items() if not values]
        if empty:
            raise ValueError(f"empty axis: {', '.join(empty)} (give at least one value)")
        return axes

    @model_validator(mode="after")
    def _consistent(self) -> "SweepSpec":
        if self.search is not None and (self.grid or self.zip or self.cells or self.random):
            raise ValueError("search: runs its own trials; it cannot be combined with grid, zip, cells or random")
        lengths = {key: len(values) for key, values in self.zip.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError("zip: the lists must be equally long, got " + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
        seen: dict[str, str] = {}
        for part, keys in (("grid", self.grid), ("zip", self.zip), ("random", self.random.space if self.random else {}),
                           *((f"cells[{i}]", cell) for i, cell in enumerate(self.cells))):
            for key in keys:
                other = seen.setdefault(key, part)
                if other != part and not (other.startswith("cells[") and part.startswith("cells[")):
                    raise ValueError(f"{key} is set by both {other} and {part}")
        return self

    def assignments(self) -> list[Assignment]:
        """Every cell's assignment: grid × zip × cells × random samples, in the file's order."""
        grid = [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]
        zipped = [dict(zip(self.zip, values)) for values in zip(*self.zip.values())] or [{}]
        samples = self.random.assignments() if self.random else [{}]
        return [{**g, **z, **c, **r} for g in grid for z in zipped for c in (self.cells or [{}]) for r in samples]

    def axes(self) -> list[str]:
        """The keys that vary, in order."""
        keys = [*self.grid, *self.zip, *(k for cell in self.cells for k in cell), *(self.random.space if self.random else {}),
                *(self.search.space if self.search else {})]
        return list(dict.fromkeys(keys))


def load_sweep(path: str | Path, *, backend: str | None = None, workers: int | None = None,
               address: str | None = None) -> tuple[SweepSpec, dict[str, Any], str]:
    """Read a sweep file (or a plain recipe: a sweep of one cell); command-line choices override the file's.

    Returns the spec, the base recipe as a dict (its ``set`` applied) and the base's origin for error messages.
    """
    path = Path(path)
    raw = read_recipe(path)
    if "experiment" in raw and "base" not in raw:
        raw = {"name": raw.get("name", path.stem), "base": raw}
    raw.setdefault("name", path.stem)
    overrides = {"backend": backend, "workers": workers}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if address is not None:
        raw["ray"] = dict(raw.get("ray") or {}, address=address)
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {validation_problems(error)}") from None
    if isinstance(spec.base, dict):
        base, origin = spec.base, str(path)
    else:
        recipe = resolve_recipe(spec.base, relative_to=path.parent)
        base, origin = read_recipe(recipe), f"{path} (base {recipe})"
    return spec, apply_overrides(base, spec.set), origin
