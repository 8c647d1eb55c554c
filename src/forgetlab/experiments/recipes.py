"""A recipe (YAML file or dict, plus ``key=value`` overrides) → the config of its experiment.

The recipe's ``experiment`` key picks the registered experiment; its ``config`` class validates the rest.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from forgetlab.config import ConfigError, ExperimentConfig, apply_overrides, read_recipe, validation_problems
from forgetlab.experiments.base import EXPERIMENTS


def builtin_recipes() -> dict[str, Path]:
    """Recipes shipped inside the package (``forgetlab run quickstart``)."""
    folder = resources.files("forgetlab") / "configs"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def resolve_recipe(config: str | Path, relative_to: Path | None = None) -> Path:
    """A recipe file: ``config`` as a path relative to the folder ``relative_to`` (when given) or to the working
    directory, or a built-in recipe's name."""
    for path in (*([relative_to / config] if relative_to is not None else []), Path(config)):
        if path.is_file():
            return path
    recipes = builtin_recipes()
    if str(config) in recipes:
        return recipes[str(config)]
    raise FileNotFoundError(f"config {config!r}: no such file, and not a built-in recipe ({', '.join(sorted(recipes))})")


def build_config(raw: dict[str, Any], origin: str = "<config>") -> ExperimentConfig:
    """Validate a raw dict into its experiment's config class; errors name the origin and field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level")
    name = raw.get("experiment")
    if not isinstance(name, str) or name not in EXPERIMENTS:
        raise ConfigError(f"{origin}: field 'experiment': unknown experiment {name!r}; known: {', '.join(EXPERIMENTS.names())}")
    try:
        return EXPERIMENTS.get(name).config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{origin}: {validation_problems(error)}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML recipe, apply ``key=value`` overrides, validate."""
    return build_config(apply_overrides(read_recipe(path), overrides or []), origin=str(path))
