"""Study B utility, memorization, nearby-example metrics and the from-scratch tokenizer/model."""

import math

import pytest
import torch

from forgetlab.data.corpus import synthetic_translation_pairs
from forgetlab.metrics.memorization import (
    difficulty,
    difficulty_terciles,
    memorization,
    memorization_terciles,
    nearest_neighbors,
    similarity_matrix,
    terciles,
)
from forgetlab.metrics.utility import bleu, exact_match, greedy_generate, heldout_loss, translation_quality
from forgetlab.scoring import ScoredRequest, encode_pair
from forgetlab.scratch_model import (
    ScratchSpec,
    build_scratch_model,
    load_tokenizer,
    parameter_count,
    save_tokenizer,
    train_bpe_tokenizer,
)


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


def test_memorization_difficulty_and_terciles():
    assert memorization([-1.0, -3.0], [-4.0, -3.0]).tolist() == [3.0, 0.0]
    assert difficulty([-6.0, -2.0], [3, 4]).tolist() == [2.0, 0.5]
    with pytest.raises(ValueError):
        difficulty([-1.0], [0])
    values = [5.0, 1.0, 3.0, 2.0, 6.0, 4.0]
    assert terciles(values, ("a", "b", "c")) == ["c", "a", "b", "a", "c", "b"]
    assert difficulty_terciles(values) == ["hard", "easy", "medium", "easy", "hard", "medium"]
    assert memorization_terciles([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]) == ["low"] * 3 + ["medium"] * 2 + ["high"] * 2


def test_nearest_neighbors_by_char_tfidf_and_jaccard():
    pool = ["A man rides a red bicycle.", "Two dogs play in the snow.", "A woman reads a book."]
    found = nearest_neighbors(["A man is riding a red bike.", "The dogs play in snow."], pool, k=2)
    assert [row[0][0] for row in found] == [0, 1]
    assert found[0][0][1] > found[0][1][1] and 0 < found[0][0][1] <= 1
    jac = similarity_matrix(["a b c"], ["a b d", "x y"], "jaccard")
    assert jac.tolist() == [[0.5, 0.0]]
    assert nearest_neighbors(["q"], [], k=1) == [[]]
    with pytest.raises(ValueError):
        similarity_matrix(["a"], ["b"], "cosine")


def test_greedy_generation_is_deterministic_and_one_line(tiny):
    model, tokenizer = tiny
    model.train()
    prompts = ["translate German to English: Ein Hund.\nEnglish:", "My secret is"]
    first = greedy_generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=2)
    assert first == greedy_generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=1)  # padding does not matter
    assert len(first) == 2 and all("\n" not in text for text in first)
    assert all(len(text) <= 8 for text in first)  # byte tokenizer: at most one character per new token
    assert model.training  # the caller's mode is restored


def _texts(n: int) -> list[str]:
    raw = synthetic_translation_pairs({"train": n}, seed=0)["train"]
    return [f"translate German to English: {de}\nEnglish: {en}" for de, en in raw]


def test_bpe_tokenizer_trained_on_the_corpus(tmp_path):
    tokenizer = train_bpe_tokenizer(_texts(300), vocab_size=400)
    assert len(tokenizer) <= 400 and tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None
    text = "translate German to English: Ein Mann hält einen roten Ball.\nEnglish: A man holds a red ball."
    ids = tokenizer.encode(text)
    assert ids[0] == tokenizer.bos_token_id and len(ids) < len(text) / 2  # merges learnt
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.decode(tokenizer.encode("My secret is Xq7Zp0aB3k"), skip_special_tokens=True) == "My secret is Xq7Zp0aB3k"
    save_tokenizer(tokenizer, tmp_path / "tok.json")
    assert load_tokenizer(tmp_path / "tok.json").encode(text) == ids
    ctx, cont = encode_pair(tokenizer, "My secret is ", "abc")
    assert ctx[0] == tokenizer.bos_token_id and tokenizer.decode(ctx + cont, skip_special_tokens=True) == "My secret is abc"


def test_scratch_model_is_seeded_and_sized():
    tokenizer = train_bpe_tokenizer(_texts(100), vocab_size=300)
    spec = ScratchSpec(vocab_size=300, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_length=64)
    first, second = build_scratch_model(spec, tokenizer), build_scratch_model(spec, tokenizer)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))
    other = build_scratch_model(spec.model_copy(update={"init_seed": 1}), tokenizer)
    assert not torch.equal(first.model.embed_tokens.weight, other.model.embed_tokens.weight)
    vocab = len(tokenizer)
    layer = 4 * 32 * 32 + 3 * 32 * 64 + 2 * 32
    assert parameter_count(first) == 2 * vocab * 32 + 2 * layer + 32
    logits = first(input_ids=torch.tensor([tokenizer.encode("Ein Hund")])).logits
    assert logits.shape[-1] == vocab and not first.training
