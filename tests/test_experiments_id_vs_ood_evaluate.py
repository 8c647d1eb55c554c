"""id_vs_ood's evaluation: the values of one evaluation of an unlearning run, pooled by group kind."""

import math

import numpy as np
import pytest

from forgetlab.data.canaries import GroupKind
from forgetlab.data.types import Pair
from forgetlab.experiments.id_vs_ood.evaluate import forget_values
from forgetlab.experiments.id_vs_ood.jobs import Job


def _job(kind: GroupKind) -> Job:
    items = [Pair("a", "p", " x"), Pair("b", "p", " y")]
    return Job("g", "g", kind, 1, 2, items, ll_original=np.array([-1.0, -8.0]), ll_reference=np.array([-5.0, -6.0]))


LL, N = np.array([-2.0, -9.0]), np.array([2.0, 3.0])  # per-token log-perplexities 1.0, 3.0; summed 2.0, 9.0
REFS = (np.array([-3.0, -4.0, -12.0, -20.0]), np.array([3.0, 2.0, 4.0, 5.0]))  # per token 1, 2, 3, 4; summed 3, 4, 12, 20
TEST = (np.array([-1.0, -6.0, -2.0]), np.array([2.0, 2.0, 1.0]))  # per token 0.5, 3.0, 2.0


def test_forget_values_pool_canaries_with_the_references_and_id_items_with_the_test_pairs():
    values, items = forget_values(_job(GroupKind.OOD), LL, N, REFS, TEST, per_token=True)
    # relative (a), per token, among the 4 references (space 5): 1.0 ties one -> rank 2; 3.0 -> rank 4
    assert items["relexp_rank"].tolist() == pytest.approx([math.log2(5) - 1, math.log2(5) - 2])
    # exposure, summed log-perplexity, among the references: 2.0 -> rank 1; 9.0 beaten by 3 and 4 -> rank 3
    assert items["exposure"].tolist() == pytest.approx([math.log2(5), math.log2(5) - math.log2(3)])
    assert values["exposure_mean"] == pytest.approx(math.log2(5) - math.log2(3) / 2)
    assert items["genex"].tolist() == [3.0, -3.0] and items["relexp_change"].tolist() == [-1.0, -1.0]
    assert values["loss"] == 5.5 and values["relexp_change_mean"] == -1.0
    summed, _ = forget_values(_job(GroupKind.OOD), LL, N, REFS, TEST, per_token=False)
    assert summed["relexp_rank_mean"] == pytest.approx(values["exposure_mean"])  # summed: ranked like exposure
    id_values, id_items = forget_values(_job(GroupKind.ID), LL, N, None, TEST, per_token=True)
    # ID: among the 3 test pairs (space 4): 1.0 beaten by 0.5 -> rank 2 -> 1 bit; 3.0 by all three -> rank 4 -> 0
    assert id_items["relexp_rank"].tolist() == [1.0, 0.0] and "exposure" not in id_items and "exposure_mean" not in id_values
    tf_values, tf_items = forget_values(_job(GroupKind.OOD), LL, N, REFS, TEST, per_token=True, convention="tf_privacy")
    assert tf_items["exposure"].tolist() == pytest.approx([2.0, 2.0 - math.log2(3)])  # log2 |R| = 2
    assert tf_items["relexp_rank"].tolist() == pytest.approx([1.0, 0.0])
