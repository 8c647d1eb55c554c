"""Exposure metrics: hand-computed ranks, brute-force ranking, the log2(e) baseline, GenEx, the tf_privacy convention."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import skewnorm

from forgetlab.data.canaries import CanarySpec, canary_pair, make_canaries
from forgetlab.experiments.id_vs_ood.evaluate import score_pairs
from forgetlab.metrics.exposure import (
    LOG2_E,
    describe,
    expected_unseen_exposure,
    exposure_extrapolated,
    exposure_rank,
    fit_skewnorm,
    generalized_exposure,
    relative_exposure_change,
    relative_exposure_rank,
)
from forgetlab.scoring import Scorer


def test_rank_exposure_hand_computed():
    refs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]  # 7 references + the canary: N = 8, log2 N = 3
    got = exposure_rank([0.5, 3.5, 3.0, 7.0, 10.0], refs)
    # 0.5: likeliest, rank 1 -> 3 bits; 3.5: three refs likelier, rank 4 -> 3 - 2 = 1;
    # 3.0: the tied ref counts as at least as likely, rank 4 -> 1; 7.0 and 10.0: rank 8 -> 0
    assert got.tolist() == pytest.approx([3.0, 1.0, 1.0, 0.0, 0.0])
    assert exposure_rank(1.5, [1.0, 2.0, 3.0]).tolist() == pytest.approx([math.log2(4) - math.log2(2)])
    assert exposure_rank(2.5, [3.0, 1.0, 2.0]).tolist() == pytest.approx([math.log2(4) - math.log2(3)])  # order-free
    with pytest.raises(ValueError):
        exposure_rank(1.0, [])


def test_expected_unseen_exposure_exact_and_asymptotic():
    assert expected_unseen_exposure(1) == pytest.approx(0.5)  # ranks 1, 2 of N = 2: (1 + 0) / 2
    n4 = [math.log2(4) - math.log2(r) for r in range(1, 5)]
    assert expected_unseen_exposure(3) == pytest.approx(sum(n4) / 4)
    assert expected_unseen_exposure(10_000) == pytest.approx(LOG2_E, abs=2e-3)
    assert LOG2_E == pytest.approx(1.4427, abs=1e-4)


def _model_logprobs(model, tokenizer, context: str, continuations: list[str]) -> list[float]:
    """log p(continuation | context) by one plain batched forward pass (independent of the scoring engine)."""
    ctx = tokenizer.encode(context)
    rows = [tokenizer.encode(context + c) for c in continuations]
    assert all(row[: len(ctx)] == ctx for row in rows) and len({len(row) for row in rows}) == 1
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor(rows)).logits.double(), dim=-1)
    return [float(sum(logprobs[b, i - 1, row[i]] for i in range(len(ctx), len(row)))) for b, row in enumerate(rows)]


def test_exposure_matches_brute_force_ranking_over_the_whole_candidate_space(tiny):
    model, tokenizer = tiny
    spec = CanarySpec(alphabet="abc", length=3, n_references=1, n_unseen=0)
    space = [canary_pair(spec, f"c{i}", "".join(s)) for i, s in enumerate(itertools.product(spec.alphabet, repeat=spec.length))]
    ll, _ = score_pairs(Scorer(model, tokenizer, batch_size=8, progress=False), space)
    brute = _model_logprobs(model, tokenizer, "My secret is", [" " + p.target for p in space])
    assert ll == pytest.approx(brute, abs=1e-4)
    order = sorted(range(len(space)), key=lambda i: -brute[i])  # likeliest first
    for canary in range(len(space)):
        rank = 1 + sum(1 for j in order if j != canary and brute[j] >= brute[canary])
        others = [-ll[j] for j in range(len(space)) if j != canary]
        got = exposure_rank(-ll[canary], others)[0]
        assert got == pytest.approx(math.log2(len(space)) - math.log2(rank))
    top = order[0]
    assert exposure_rank(-ll[top], [-ll[j] for j in range(len(space)) if j != top])[0] == pytest.approx(math.log2(27))


def test_never_seen_exposure_averages_log2e_statistically():
    rng = np.random.default_rng(20240611)
    refs = rng.gamma(3.0, 2.0, size=10_000)
    canaries = rng.gamma(3.0, 2.0, size=4_000)  # exchangeable with the references: never "trained on"
    exposures = exposure_rank(canaries, refs)
    se = exposures.std(ddof=1) / math.sqrt(exposures.size)
    assert se < 0.03
    assert abs(exposures.mean() - expected_unseen_exposure(refs.size)) < 4 * se
    assert abs(exposures.mean() - LOG2_E) < 4 * se + 2e-3


def test_never_seen_canaries_on_a_model_average_log2e(tiny):
    model, tokenizer = tiny
    sets = make_canaries(CanarySpec(n_references=1000, n_unseen=300), [1], 1, seed=7)
    scorer = Scorer(model, tokenizer, batch_size=64, progress=False)
    refs, _ = score_pairs(scorer, sets.references)
    unseen, _ = score_pairs(scorer, sets.unseen)
    exposures = exposure_rank(-unseen, -refs)
    se = exposures.std(ddof=1) / math.sqrt(exposures.size)
    assert abs(exposures.mean() - LOG2_E) < 4 * se
    extrapolated = fit_skewnorm(-refs).exposure(-unseen)
    assert abs(extrapolated.mean() - LOG2_E) < 0.35


def test_extrapolated_exposure_recovers_a_known_skew_normal():
    a, loc, scale = 4.0, 20.0, 3.0
    refs = skewnorm.rvs(a, loc=loc, scale=scale, size=20_000, random_state=3)
    points = np.array([18.0, 20.0, 22.0, 26.0])
    want = -skewnorm.logcdf(points, a, loc=loc, scale=scale) / math.log(2)
    assert exposure_extrapolated(points, refs) == pytest.approx(want, rel=0.05, abs=0.05)
    deep = exposure_extrapolated([5.0], refs)[0]  # far beyond every reference: large but finite
    assert math.isfinite(deep) and deep > exposure_rank(5.0, refs)[0]
    with pytest.raises(ValueError):
        fit_skewnorm([1.0, 1.0, 1.0, 1.0])


def test_rank_and_extrapolated_agree_inside_the_distribution():
    rng = np.random.default_rng(5)
    refs = skewnorm.rvs(3.0, loc=30, scale=5, size=20_000, random_state=rng)
    points = np.quantile(refs, [0.02, 0.1, 0.5])
    assert exposure_extrapolated(points, refs) == pytest.approx(exposure_rank(points, refs), abs=0.1)


def test_generalized_and_relative_exposure():
    assert generalized_exposure([-1.0, -5.0, -9.0], [-2.0, -5.0, -3.0]).tolist() == [1.0, 0.0, -6.0]
    assert relative_exposure_change([-4.0], [-1.5]).tolist() == [-2.5]
    # reading (a), by hand: 4 candidates; 0.5 beats every held-out item (rank 1), 2.5 is beaten by two (rank 3)
    assert relative_exposure_rank([0.5, 2.5], [1.0, 2.0, 3.0]).tolist() == pytest.approx([2.0, 2.0 - math.log2(3)])
    with pytest.raises(ValueError):
        generalized_exposure([1.0, 2.0], [1.0])
    stats = describe(np.arange(11.0), "genex_")
    assert stats["genex_mean"] == 5.0 and stats["genex_q50"] == 5.0 and stats["genex_q10"] == pytest.approx(1.0)
    assert stats["genex_q90"] == pytest.approx(9.0) and describe([]) == {}


# --- the tensorflow_privacy convention --------------------------------------------------------------
# Re-typed from tensorflow_privacy/privacy/privacy_tests/secret_sharer/exposures.py (commit 40d73ed):
# references tagged -1 and secrets tagged with their set's index are sorted together as (value, tag)
# tuples, so a tied reference comes first; a secret's rank is 1 + the references sorted before it.


def tf_privacy_interpolation(perplexities: dict, references: list) -> dict:
    keys = list(perplexities)
    tagged = [(p, -1) for p in references] + [(p, i) for i, k in enumerate(keys) for p in perplexities[k]]
    tags = np.array([tag for _, tag in sorted(tagged)])
    references_before = np.cumsum(tags == -1)
    return {k: np.log2(len(references)) - np.log2(references_before[tags == i] + 1) for i, k in enumerate(keys)}


def tf_privacy_extrapolation(perplexities: dict, references: list) -> dict:
    params = skewnorm.fit(references)
    return {k: -np.log2(skewnorm.cdf(v, *params)) for k, v in perplexities.items()}


def test_tf_privacy_rank_exposure_matches_its_formula_on_fixed_inputs():
    references = [float(x) for x in range(1, 17)]  # tensorflow_privacy's own test case, plus ties and a gap
    secrets = {1: [0.0, 0.1], 2: [20.0], 5: [3.5], 8: [3.0], 9: [16.0, 7.25]}
    want = tf_privacy_interpolation(secrets, references)
    for key, values in secrets.items():
        got = exposure_rank(values, references, convention="tf_privacy")
        assert np.sort(got).tolist() == pytest.approx(np.sort(want[key]).tolist(), abs=1e-12), key
    # by hand, |R| = 16: likeliest -> log2 16 = 4; least likely -> log2(16/17) < 0; 3.0 ties reference 3.0 -> rank 4
    assert want[1].tolist() == [4.0, 4.0] and want[2][0] == pytest.approx(math.log2(16 / 17)) and want[8][0] == 2.0
    ours = exposure_rank([0.0, 3.0, 20.0], references)  # forgetlab: log2(|R| + 1), never negative
    assert ours.tolist() == pytest.approx([math.log2(17), math.log2(17) - 2.0, 0.0])
    with pytest.raises(ValueError, match="convention"):
        exposure_rank([1.0], references, convention="tf")


def test_tf_privacy_extrapolated_exposure_matches_its_formula_on_fixed_inputs():
    references = skewnorm.rvs(3.0, loc=40.0, scale=6.0, size=2000, random_state=11).tolist()
    secrets = {1: [30.0, 38.5, 52.0], 100: [12.0, 25.0], 0: [100.0]}
    want = tf_privacy_extrapolation(secrets, references)
    for key, values in secrets.items():
        got = exposure_extrapolated(values, references, convention="tf_privacy")
        assert got.tolist() == want[key].tolist(), key  # same scipy calls: bit for bit
        assert exposure_extrapolated(values, references).tolist() == pytest.approx(want[key].tolist(), rel=1e-9)
    # far in the tail tensorflow_privacy's CDF underflows to 0 (exposure inf); ours goes through logcdf
    deep = exposure_extrapolated([-500.0], references, convention="tf_privacy")[0]
    assert deep == math.inf and math.isfinite(exposure_extrapolated([-500.0], references)[0])


def test_expected_unseen_exposure_under_each_convention_by_enumeration():
    for n in (1, 3, 9):  # a never-seen canary's rank is uniform on 1..n+1
        ranks = range(1, n + 2)
        for convention, space in (("forgetlab", n + 1), ("tf_privacy", n)):
            want = sum(math.log2(space) - math.log2(r) for r in ranks) / (n + 1)
            assert expected_unseen_exposure(n, convention) == pytest.approx(want, abs=1e-12)
