"""Sweep files: the cells their axes make (grid × zip × cells × random), and one clear error per bad file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from forgetlab.config import ConfigError
from forgetlab.sweep.spec import Distribution, SweepSpec, load_sweep
from tests.conftest import unlearn_raw_config


def spec(**fields) -> SweepSpec:
    return SweepSpec.model_validate({"name": "s", "base": {}, **fields})


def test_grid_is_every_combination_in_file_order():
    cells = spec(grid={"forget.method": ["a", "b"], "seed": [0, 1, 2]}).assignments()
    assert cells == [{"forget.method": m, "seed": s} for m in ("a", "b") for s in (0, 1, 2)]


def test_zip_walks_together_and_crosses_the_grid():
    cells = spec(grid={"seed": [0, 1]}, zip={"forget.lr": [0.1, 0.2, 0.3], "forget.max_steps": [1, 2, 3]}).assignments()
    assert len(cells) == 6
    assert cells[:3] == [{"seed": 0, "forget.lr": lr, "forget.max_steps": n} for lr, n in ((0.1, 1), (0.2, 2), (0.3, 3))]


def test_explicit_cells_may_set_the_same_keys_and_cross_the_grid():
    cells = spec(grid={"seed": [0, 1]}, cells=[{"forget.method": "npo", "forget.options.beta": 0.5}, {"forget.method": "rmu"}]).assignments()
    assert cells == [{"seed": s, **c} for s in (0, 1) for c in ({"forget.method": "npo", "forget.options.beta": 0.5}, {"forget.method": "rmu"})]


def test_random_samples_are_seeded_and_inside_their_bounds():
    random = {"samples": 50, "seed": 3, "space": {"lr": {"log_uniform": [1e-5, 1e-3]}, "bs": {"choice": [4, 8]},
                                                  "n": {"int_uniform": [1, 3]}, "w": {"uniform": [0.0, 1.0]}}}
    first, again = spec(random=random).assignments(), spec(random=random).assignments()
    assert first == again and len(first) == 50
    assert all(1e-5 <= c["lr"] <= 1e-3 and c["bs"] in (4, 8) and c["n"] in (1, 2, 3) and 0 <= c["w"] <= 1 for c in first)
    assert {c["n"] for c in first} == {1, 2, 3}  # both ends of int_uniform are reachable
    logs = [math.log10(c["lr"]) for c in first]
    assert min(logs) < -4.3 and max(logs) > -3.7  # spread over the decades, not bunched at the top as uniform would be


def test_log_uniform_draws_exp_of_a_uniform_log():
    rng, expected = np.random.default_rng(0), np.random.default_rng(0)
    value = Distribution(log_uniform=(1e-4, 1e-2)).draw(rng)
    assert value == pytest.approx(math.exp(expected.uniform(math.log(1e-4), math.log(1e-2))), rel=1e-12)


def test_axes_lists_every_varied_key_once():
    s = spec(grid={"seed": [0]}, zip={"a": [1]}, cells=[{"b": 1}, {"b": 2, "c": 3}])
    assert s.axes() == ["seed", "a", "b", "c"]


@pytest.mark.parametrize("fields, fragment", [
    ({"grid": {"forget.lr": []}}, "empty axis: forget.lr"),
    ({"zip": {"a": [1, 2], "b": [1]}}, "zip: the lists must be equally long, got a: 2, b: 1"),
    ({"grid": {"a": [1]}, "zip": {"a": [2]}}, "a is set by both grid and zip"),
    ({"grid": {"a": [1]}, "cells": [{"a": 2}]}, "a is set by both grid and cells[0]"),
    ({"random": {"samples": 2, "space": {"lr": {"log_uniform": [0, 1]}}}}, "log_uniform bounds must be positive"),
    ({"random": {"samples": 2, "space": {"lr": {"uniform": [0, 1], "choice": [1]}}}}, "exactly one of"),
    ({"backend": "kubernetes"}, "backend"),
    ({"gird": {"a": [1]}}, "gird"),
])
def test_bad_sweep_files_get_one_error_naming_the_key(fields, fragment, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"base": unlearn_raw_config(), **fields}))
    with pytest.raises(ConfigError) as error:
        load_sweep(path)
    assert str(error.value).startswith(f"{path}: ") and fragment in str(error.value)


def test_a_plain_recipe_is_a_sweep_of_one_cell_named_after_it(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(unlearn_raw_config()))
    loaded, base, _ = load_sweep(path)
    assert loaded.name == "tiny" and loaded.assignments() == [{}] and base["experiment"] == "unlearn"


def test_the_base_may_be_a_path_relative_to_the_sweep_file_and_command_line_choices_win(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(unlearn_raw_config()))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "set": ["forget.lr=0.5"], "grid": {"seed": [0]}, "workers": 4}))
    loaded, base, origin = load_sweep(path, backend="ray", workers=2, address="auto")
    assert base["forget"]["lr"] == 0.5 and base["forget"]["method"] == "gradient_ascent"
    assert (loaded.name, loaded.backend, loaded.workers, loaded.ray.address) == ("sweep", "ray", 2, "auto")
    assert "base.yaml" in origin
