"""id_vs_ood's summary: GenEx offsets with their intervals, exposure baselines and groups under each convention."""

import math

import numpy as np
import pytest

from forgetlab.config import ConfigError
from forgetlab.data.canaries import ForgetGroup, GroupKind
from forgetlab.data.types import Pair
from forgetlab.experiments import build_config
from forgetlab.experiments.id_vs_ood.summary import exposure_baselines, genex_offsets, group_before


def test_genex_offsets_are_original_minus_reference_with_a_bootstrap_interval():
    original = [-1.0, -2.0, -4.0, -3.0]
    reference = [-2.0, -2.0, -7.0, -3.5]  # differences 1, 0, 3, 0.5
    scores = {"original": {"test": [original, [1] * 4], "unseen": [[-1.0] * 3, [1] * 3]},
              "reference": {"test": [reference, [1] * 4], "unseen": [[-1.5] * 3, [1] * 3]}}
    out = genex_offsets(scores, seed=5)
    diff = np.array([1.0, 0.0, 3.0, 0.5])
    rng = np.random.default_rng(5)  # percentile bootstrap, by hand
    means = diff[rng.integers(0, 4, size=(10_000, 4))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    assert out["test_pairs"] == {"mean": 1.125, "ci_low": pytest.approx(low), "ci_high": pytest.approx(high), "n": 4}
    assert low < 1.125 < high and 0.0 <= low and high <= 3.0
    assert out["unseen_canaries"] == {"mean": 0.5, "ci_low": 0.5, "ci_high": 0.5, "n": 3}
    assert genex_offsets({r: {"test": [[], []], "unseen": [[], []]} for r in ("original", "reference")}) == {
        "test_pairs": None, "unseen_canaries": None}


def test_the_config_selects_the_convention_for_the_baselines_and_groups():
    raw = {"experiment": "id_vs_ood", "model": "scratch", "eval": {"exposure": "tf_privacy"}}
    assert build_config(raw).eval.exposure == "tf_privacy" and build_config({**raw, "eval": {}}).eval.exposure == "forgetlab"
    with pytest.raises(ConfigError, match="exposure"):
        build_config({**raw, "eval": {"exposure": "tensorflow"}})
    refs = [-3.0, -4.0, -12.0, -20.0]  # log-likelihoods; 4 references
    role = {"references": [refs, [1] * 4], "unseen": [[-3.5, -25.0], [1, 1]], "groups": {"ood_x1": [[-2.0, -9.0], [1, 1]]}}
    scores = {"original": role, "reference": role}
    # unseen canaries: -3.5 beaten by one reference -> rank 2; -25.0 by all four -> rank 5
    for convention, space in (("forgetlab", 5), ("tf_privacy", 4)):
        out = exposure_baselines(scores, 4, convention)
        assert out["unseen_original"] == pytest.approx((2 * math.log2(space) - 1 - math.log2(5)) / 2)
        assert out["expected_finite_n"] == pytest.approx(sum(math.log2(space / r) for r in range(1, 6)) / 5)
        group = ForgetGroup("ood_x1", GroupKind.OOD, 1, [Pair("a", "p", " x"), Pair("b", "p", " y")])
        before = group_before(group, scores, convention)  # -2.0 -> rank 1; -9.0 -> rank 3
        assert before["exposure_original"] == pytest.approx(math.log2(space) - math.log2(3) / 2)
