"""Configuration: the pydantic base of every spec, the specs shared by experiments, YAML recipe files and
dotted ``key=value`` overrides.

Unknown keys are errors. Each experiment carries its own config class
(:mod:`forgetlab.experiments` turns a recipe into it); this module imports nothing above it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from forgetlab.models import ModelSpec


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the field."""


class Spec(BaseModel):
    """Base of every config section: unknown keys and non-finite numbers (nan, inf) are rejected."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class OptimSpec(Spec):
    """One training stage: method, loss, optimiser, schedule and how often to evaluate."""

    method: str
    loss: Literal["answer", "full", "choice"] = Field(
        "answer", description="answer: CE on answer tokens; full: CE on prompt+answer; choice: 2-way CE over choices"
    )
    reduction: Literal["mean", "sum"] = Field(
        "mean", description="token losses: mean over the batch's tokens, or summed per sequence and averaged over sequences"
    )
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    scheduler: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0, description="overrides epochs when set")
    batch_size: int = Field(8, ge=1, description="per process")
    grad_accum: int = Field(1, ge=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    eval_every: int = Field(0, ge=0, description="evaluate every N optimizer steps (0: only before and after)")
    checkpoint_every: int = Field(0, ge=0, description="save a resumable checkpoint every N steps (0: never)")
    pack: bool = Field(True, description="pack each batch's rows side by side (block-diagonal attention) instead of "
                       "padding them: the same losses up to float rounding, without the padding's compute")


#: Run names: they become directory names, so no separators, no leading dot, nothing outside this set.
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_SEED = 2**32 - 1


def check_run_name(value: str, field: str = "name") -> str:
    """``value`` if it is a safe run name or id (letters, digits, ``_ . -``; no ``..``), else ValueError."""
    if not isinstance(value, str) or not RUN_NAME.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{field} {value!r} is not a safe run name: use 1-100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit, without '..'"
        )
    return value


class ComputeSpec(Spec):
    """How a run computes on its device (:mod:`forgetlab.precision`); part of the identity when not the defaults."""

    mixed_precision: Literal["no", "bf16"] = Field(
        "no", description="bf16: forward passes under torch.autocast in bfloat16 (weights and optimizer state in fp32)"
    )
    tf32: bool = Field(False, description="CUDA matrix products in TensorFloat-32 (no effect on CPUs)")
    score_tokens: int = Field(2048, ge=16, description="at most this many tokens per scoring pass (a GPU fills with more)")

    @property
    def is_default(self) -> bool:
        """Whether nothing differs from the defaults (runs made before the block existed keep their ids)."""
        return self == ComputeSpec()


class ExperimentConfig(Spec):
    """Fields every experiment has."""

    experiment: str
    name: str = Field("run", description="the run's name: its id is <name>-<12 hex digits of its identity>")
    seed: int = Field(0, ge=0, le=MAX_SEED, description=f"seeds every random choice (0 to {MAX_SEED})")
    model: ModelSpec = Field(default_factory=ModelSpec)
    cpu_threads: int | None = Field(
        None, ge=1, description="torch CPU threads per process (None: this process's share of the CPUs it may use); "
        "the count actually used is part of the run's identity, as it changes the last bits of results",
    )
    compute: ComputeSpec = Field(default_factory=ComputeSpec, description="mixed precision, TF32, tokens per scoring pass")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_run_name(value, "run name")


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=1`` → (["a", "b"], 1); the value is read as YAML (numbers, booleans, lists)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as error:
        problem = " ".join(str(getattr(error, "problem", "") or error).split())
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({problem})") from None
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a copy); list items are addressed by index."""
    data = copy.deepcopy(raw)
    for item in overrides:
        path, value = parse_override(item)
        set_key(data, path, value, item)
    return data


def set_key(data: dict[str, Any], path: list[str], value: Any, item: str) -> None:
    """Set ``data[path[0]][path[1]]... = value`` in place, making missing sections; ``item`` names the
    override in errors (a list indexed by a name, an index out of range, a value where a section should be)."""
    node: Any = data
    for part in path[:-1]:
        if isinstance(node, list):
            node = node[_index(node, part, item)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
    if isinstance(node, list):
        node[_index(node, path[-1], item)] = value
    else:
        node[path[-1]] = value


def _index(node: list[Any], part: str, item: str) -> int:
    try:
        index = int(part)
    except ValueError:
        raise ConfigError(f"override {item!r}: {part!r} indexes a list and must be a number") from None
    if not -len(node) <= index < len(node):
        raise ConfigError(f"override {item!r}: index {index} is out of range: the list has {len(node)} item(s)")
    return index


def read_recipe(path: str | Path) -> dict[str, Any]:
    """A YAML recipe file as a dict; a missing file, bad encoding or bad YAML is a ConfigError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", "") or error).split())
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def validation_problems(error: ValidationError) -> str:
    """pydantic's errors as ``field 'a.b': message; ...`` (one line)."""
    return "; ".join(f"field '{'.'.join(str(p) for p in e['loc']) or '(top)'}': {e['msg']}" for e in error.errors())
