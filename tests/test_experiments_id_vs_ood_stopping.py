"""id_vs_ood's stopping criteria: which apply to a group, when each is first met, all/any, the exposure baseline."""

import math

import pytest

from forgetlab.data.canaries import GroupKind
from forgetlab.experiments.id_vs_ood.stopping import UnlearningCriteria, exposure_baseline
from forgetlab.metrics.exposure import LOG2_E, expected_unseen_exposure

OOD, ID = GroupKind.OOD, GroupKind.ID


def test_stop_rules_all_any_and_kinds():
    tolerant = UnlearningCriteria(OOD, ["exposure_baseline"], baseline=1.44, tolerance=0.25)
    tolerant.update(3, {"exposure_mean": 1.65, "genex_mean": 5.0})
    assert tolerant.first == {"exposure_baseline": 3, "genex_zero": None} and tolerant.should_stop
    rules = UnlearningCriteria(OOD, ["exposure_baseline", "genex_zero"], baseline=1.44)
    assert rules.update(0, {"exposure_mean": 3.0, "genex_mean": 2.0}) == [] and not rules.should_stop
    assert rules.update(2, {"exposure_mean": 1.0, "genex_mean": 0.5}) == ["exposure_baseline"] and not rules.should_stop
    assert rules.update(4, {"exposure_mean": 1.6, "genex_mean": -0.1}) == ["genex_zero"] and rules.should_stop
    assert rules.first == {"exposure_baseline": 2, "genex_zero": 4} and rules.primary == "exposure_baseline"
    anyone = UnlearningCriteria(OOD, ["exposure_baseline", "genex_zero"], baseline=1.44, mode="any")
    anyone.update(2, {"exposure_mean": 1.0, "genex_mean": 0.5})
    assert anyone.should_stop
    in_dist = UnlearningCriteria(ID, ["exposure_baseline"], baseline=1.44)  # exposure does not apply to ID items
    in_dist.update(0, {"genex_mean": -1.0})
    assert in_dist.first == {"genex_zero": 0} and not in_dist.should_stop and in_dist.primary == "genex_zero"
    never = UnlearningCriteria(OOD, [], baseline=1.44)
    never.update(0, {"exposure_mean": 0.0, "genex_mean": -5.0})
    assert not never.should_stop


def test_exposure_baseline_a_number_theory_expected_or_measured_on_the_unseen_canaries():
    refs = [-3.0, -4.0, -12.0, -20.0]  # log-likelihoods; 4 references
    scores = {"references": [refs, [1] * 4], "unseen": [[-3.5, -25.0], [1, 1]]}
    assert exposure_baseline(2.5, scores, 4, "forgetlab") == 2.5
    assert exposure_baseline("theory", scores, 4, "forgetlab") == LOG2_E
    assert exposure_baseline("expected", scores, 4, "tf_privacy") == expected_unseen_exposure(4, "tf_privacy")
    # -3.5 beaten by one reference -> rank 2; -25.0 by all four -> rank 5; space 5
    assert exposure_baseline("unseen", scores, 4, "forgetlab") == pytest.approx((2 * math.log2(5) - 1 - math.log2(5)) / 2)
    with pytest.raises(ValueError, match="n_unseen"):
        exposure_baseline("unseen", dict(scores, unseen=[[], []]), 4, "forgetlab")
