"""The model trained from scratch: a BPE tokenizer learnt on the corpus and a seeded small Llama."""

import torch

from forgetlab.data.corpus import synthetic_translation_pairs
from forgetlab.scoring import encode_pair
from forgetlab.scratch_model import (
    ScratchSpec,
    build_scratch_model,
    load_tokenizer,
    parameter_count,
    save_tokenizer,
    train_bpe_tokenizer,
)


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
