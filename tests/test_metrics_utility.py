"""Utility metrics: held-out loss, BLEU and exact match, greedy generation."""

import math

import pytest

from forgetlab.metrics.utility import bleu, exact_match, greedy_translations, heldout_loss, translation_quality
from forgetlab.scoring import ScoredRequest


def test_heldout_loss_is_per_token():
    scores = [ScoredRequest(-2.0, False, 2), ScoredRequest(-4.0, True, 2)]
    out = heldout_loss(scores)
    assert out["loss"] == pytest.approx(1.5) and out["perplexity"] == pytest.approx(math.exp(1.5))
    with pytest.raises(ValueError):
        heldout_loss([])


def test_bleu_and_exact_match():
    refs = ["A man rides a red bicycle in the park.", "Two dogs play in the snow."]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert exact_match([" A man rides a red  bicycle in the park.", "Dogs."], refs) == 0.5
    assert bleu(["the the the", "a"], refs) < 5
    quality = translation_quality(list(refs), [" " + r for r in refs])
    assert quality == {"bleu": pytest.approx(100.0), "exact_match": 1.0}
    with pytest.raises(ValueError):
        bleu(["x"], refs)


def test_greedy_generation_is_deterministic_and_one_line(tiny):
    model, tokenizer = tiny
    model.train()
    prompts = ["translate German to English: Ein Hund.\nEnglish:", "My secret is"]
    first = greedy_translations(model, tokenizer, prompts, max_new_tokens=8, batch_size=2)
    assert first == greedy_translations(model, tokenizer, prompts, max_new_tokens=8, batch_size=1)  # padding does not matter
    assert len(first) == 2 and all("\n" not in text for text in first)
    assert all(len(text) <= 8 for text in first)  # byte tokenizer: at most one character per new token
    assert model.training  # the caller's mode is restored
