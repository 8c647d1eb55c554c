"""The scoring engine against brute force: log-likelihoods, greedy flags, batching, padding, hidden states."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from forgetlab.data.types import MCDoc
from forgetlab.models import ModelSpec, load_model
from forgetlab.scoring import MCScore, ScoredRequest, Scorer, encode_pair, resolve_max_length, score_mc
from forgetlab.scoring.rows import tree_row

LONG = "The quick brown fox jumps over the lazy dog. " * 7  # ~300 byte tokens


@pytest.fixture(scope="module")
def tiny():
    return load_model(ModelSpec(name="tiny-llama", tiny={"seed": 1, "initializer_range": 0.2}))


def brute_force(model, tokenizer, context: str, continuation: str) -> tuple[float, bool]:
    """One unbatched forward pass over ctx + cont[:-1]; log_softmax; sum over the continuation."""
    ctx, cont = encode_pair(tokenizer, context, continuation)
    with torch.no_grad():
        logits = model(torch.tensor([ctx + cont[:-1]])).logits[0]
    logprobs = torch.log_softmax(logits[len(ctx) - 1 :], dim=-1)
    target = torch.tensor(cont)
    return float(logprobs.gather(1, target[:, None]).sum()), bool((logprobs.argmax(-1) == target).all())


def greedy_request(model, tokenizer, n_tokens: int = 2) -> tuple[str, str]:
    """A (context, continuation) whose continuation is the model's greedy decode (and re-tokenises to it)."""
    for i in range(200):
        context = f"Item {i}: the answer is"
        ids = tokenizer(context).input_ids
        with torch.no_grad():
            for _ in range(n_tokens):
                ids = ids + [int(model(torch.tensor([ids])).logits[0, -1].argmax())]
        continuation = tokenizer.decode(ids[-n_tokens:])
        if continuation.strip() == continuation and encode_pair(tokenizer, context, continuation)[1] == ids[-n_tokens:]:
            return context, continuation
    raise AssertionError("no greedy continuation found")


def mixed_requests() -> list[tuple[str, str]]:
    return [
        ("Question: is the sky blue?\nAnswer:", " yes"),
        ("Question: is the sky blue?\nAnswer:", " no"),
        (LONG + "So", " the fox was quick"),
        (LONG + "So", " the dog was lazy"),
        ("Hi", "!"),
        ("", "Once upon a time"),
        ("Trailing spaces   ", "and more"),
        ("Café naïve – 🙂", " déjà vu 東京"),
        ("Question: is the sky blue?\nAnswer:", " yes"),  # duplicate
        ("short", " a much longer continuation than its context, to mix shapes"),
    ]


@pytest.mark.parametrize("prefix_sharing", [True, False])
@pytest.mark.parametrize("batch_size,max_tokens", [(1, 4096), (3, 64), (64, 4096)])
def test_loglikelihood_equals_brute_force(tiny, prefix_sharing, batch_size, max_tokens):
    model, tokenizer = tiny
    requests = mixed_requests()
    scorer = Scorer(
        model, tokenizer, batch_size=batch_size, max_tokens_per_batch=max_tokens, progress=False,
        prefix_sharing=prefix_sharing,
    )
    results = scorer.loglikelihood(requests)
    assert len(results) == len(requests)
    for (context, continuation), result in zip(requests, results):
        expected, greedy = brute_force(model, tokenizer, context, continuation)
        assert isinstance(result, ScoredRequest)
        assert result.logprob == pytest.approx(expected, abs=1e-4)
        assert result.is_greedy == greedy
        assert result.n_tokens == len(encode_pair(tokenizer, context, continuation)[1])
    assert results[0] == results[8]


def test_is_greedy_true_and_order(tiny):
    model, tokenizer = tiny
    greedy = greedy_request(model, tokenizer)
    requests = [("Hi", " there"), greedy, (LONG, " end"), (greedy[0], greedy[1] + "x")]
    results = Scorer(model, tokenizer, batch_size=2, progress=False).loglikelihood(requests)
    assert [r.is_greedy for r in results[1:2]] == [True]
    assert results[3].is_greedy is False
    # order of results follows the requests, whatever the batching order
    reversed_results = Scorer(model, tokenizer, batch_size=2, progress=False).loglikelihood(requests[::-1])
    for a, b in zip(results, reversed_results[::-1]):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-5) and a.is_greedy == b.is_greedy


def test_padding_does_not_change_results(tiny):
    model, tokenizer = tiny
    requests = [("Hello there", " friend"), ("Hello there", " enemy of old")]
    alone = Scorer(model, tokenizer, progress=False).loglikelihood(requests)
    padded = Scorer(model, tokenizer, batch_size=64, max_tokens_per_batch=100_000, progress=False).loglikelihood(
        requests + [(LONG * 2, " padding maker"), (LONG, " other")]
    )
    for a, b in zip(alone, padded):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-5)


def test_shared_continuation_prefixes_and_one_token_conts(tiny):
    """Continuations of one context that branch at several depths of the prefix tree (the tree holds all
    but each one's last token), share whole paths, or are one token long, all against brute force."""
    model, tokenizer = tiny
    conts = [" abc d", " abx y", " abc e", " abc", " ab", " q r s", " qz w", "x", "q"]
    requests = [("Pick one:", c) for c in conts]
    ctx = encode_pair(tokenizer, *requests[0])[0]
    row = tree_row(ctx, [(tuple(encode_pair(tokenizer, *r)[1]), j) for j, r in enumerate(requests)])
    children = Counter(row.parents[len(ctx):])
    assert sorted(n for n in children.values() if n > 1) == [2, 2, 2]  # after " ", " ab" and " q": a tree, not one chain
    assert row.positions != list(range(len(row.tokens)))  # siblings share a depth
    scorer = Scorer(model, tokenizer, batch_size=2, progress=False)
    assert scorer.prefix_sharing
    for request, result in zip(requests, scorer.loglikelihood(requests)):
        assert result.logprob == pytest.approx(brute_force(model, tokenizer, *request)[0], abs=1e-4)


def test_names_length_checked(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="names"):
        Scorer(model, tokenizer, progress=False).loglikelihood([("a", " b")], names=["x", "y"])


def test_empty_input_and_bad_options(tiny):
    model, tokenizer = tiny
    assert Scorer(model, tokenizer, progress=False).loglikelihood([]) == []
    with pytest.raises(ValueError, match="on_overlong"):
        Scorer(model, tokenizer, on_overlong="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no tokens"):
        Scorer(model, tokenizer, progress=False).loglikelihood([("   ", "x")])


# ------------------------------------------------------------------------------- length limits


def test_overlong_error_names_the_item(tiny):
    model, tokenizer = tiny
    scorer = Scorer(model, tokenizer, max_length=40, progress=False)
    requests = [("short", " ok"), ("x" * 60, " too long"), ("y" * 100, " also")]
    with pytest.raises(ValueError) as info:
        scorer.loglikelihood(requests, names=["boolq item 1", "boolq item 7", "piqa item 3"])
    message = str(info.value)
    assert "boolq item 7 has 69 tokens" in message and "piqa item 3 has 105 tokens" in message
    assert "limit of 41" in message and "boolq item 1" not in message
    assert message.count("\n") == 0 and "2 request(s)" in message


def test_overlong_truncate_keeps_the_last_tokens(tiny):
    model, tokenizer = tiny
    scorer = Scorer(model, tokenizer, max_length=40, on_overlong="truncate", progress=False)
    context, continuation = "y" * 50 + " the end of it", " all"
    result = scorer.loglikelihood([(context, continuation)])[0]
    ctx, cont = encode_pair(tokenizer, context, continuation)
    window = (ctx + cont)[-41:]
    with torch.no_grad():
        logits = model(torch.tensor([window[:-1]])).logits[0]
    logprobs = torch.log_softmax(logits[-len(cont) :], -1)
    assert result.logprob == pytest.approx(float(logprobs.gather(1, torch.tensor(cont)[:, None]).sum()), abs=1e-4)


def test_max_length_from_config(tiny):
    model, tokenizer = tiny
    assert Scorer(model, tokenizer).max_length == model.config.max_position_embeddings == 1024
    assert resolve_max_length(object(), None) == 2048


# ------------------------------------------------------------------------------- hidden states


@pytest.mark.parametrize("batch_size", [1, 4])
def test_hidden_states_equal_unpadded_forward(tiny, batch_size):
    model, tokenizer = tiny
    texts = ["a", "Hello world, how are you?", LONG, "Café 🙂"]
    layers = [0, 1, -1, -2]
    hidden = Scorer(model, tokenizer, batch_size=batch_size, progress=False).hidden_states(texts, layers)
    assert sorted(hidden) == sorted(layers)
    n_layers = model.config.num_hidden_layers
    for i, text in enumerate(texts):
        with torch.no_grad():
            states = model(torch.tensor([tokenizer(text).input_ids]), output_hidden_states=True).hidden_states
        assert len(states) == n_layers + 1
        for layer in layers:
            assert hidden[layer].shape == (len(texts), model.config.hidden_size)
            assert hidden[layer].dtype == np.float32
            np.testing.assert_allclose(hidden[layer][i], states[layer][0, -1].numpy(), atol=1e-5, rtol=1e-4)
    both = Scorer(model, tokenizer, progress=False).hidden_states(texts[:2], [-1, n_layers])
    np.testing.assert_array_equal(both[-1], both[n_layers])
    with pytest.raises(ValueError, match="out of range"):
        Scorer(model, tokenizer, progress=False).hidden_states(["x"], [n_layers + 1])


# ------------------------------------------------------------------------------- modes and progress


def test_eval_and_inference_mode_then_restored(tiny):
    model, tokenizer = tiny
    model.train()
    model.model.layers[0].eval()  # a submodule deliberately in eval mode must stay so
    seen = []
    hook = model.model.register_forward_hook(
        lambda module, args, out: seen.append((module.training, torch.is_inference_mode_enabled()))
    )
    try:
        Scorer(model, tokenizer, progress=False).loglikelihood([("a", " b")])
        Scorer(model, tokenizer, progress=False).hidden_states(["a"], [0])
    finally:
        hook.remove()
    assert seen == [(False, True), (False, True)]
    assert model.training and model.model.training and not model.model.layers[0].training
    assert model.model.layers[1].training
    model.eval()


def test_progress_bar(tiny, capsys):
    model, tokenizer = tiny
    Scorer(model, tokenizer, progress=False).loglikelihood([("a", " b")])
    assert capsys.readouterr().err == ""
    Scorer(model, tokenizer, progress=True).loglikelihood([("a", " b")], desc="my task")
    err = capsys.readouterr().err
    assert "my task" in err and "tok/s" in err


# ------------------------------------------------------------------------------- MC scores


def test_mcscore_properties_hand_computed():
    score = MCScore(doc_id="d1", gold=0, logprobs=(-1.0, -2.5), cont_chars=(3, 4))
    assert score.pred == 0 and score.correct
    assert score.confidence == pytest.approx(1 / (1 + math.exp(-2.5 - -1.0)))
    # acc_norm disagrees with acc: -4/2 = -2 < -6/6 = -1
    crafted = MCScore(doc_id="d2", gold=1, logprobs=(-4.0, -6.0), cont_chars=(2, 6))
    assert crafted.pred == 0 and crafted.pred_norm == 1
    assert not crafted.correct and crafted.correct_norm
    assert crafted.confidence == pytest.approx(1 / (1 + math.exp(-4.0 - -6.0)))
    # ties: first index, like numpy argmax; extreme values stay finite
    assert MCScore("d3", 1, (-1.0, -1.0), (1, 1)).pred == 0
    assert MCScore("d4", 0, (-1000.0, -1001.0), (1, 1)).confidence == pytest.approx(1 / (1 + math.exp(-1)))
    three = MCScore("d5", 2, (-1.0, -2.0, -3.0), (1, 1, 1))
    assert three.confidence == pytest.approx(math.exp(-3) / (math.exp(-1) + math.exp(-2) + math.exp(-3)))
    record = crafted.to_dict()
    assert record["pred"] == 0 and record["pred_norm"] == 1 and record["logprobs"] == [-4.0, -6.0]
    assert record["correct_norm"] is True and record["confidence"] == pytest.approx(crafted.confidence)


def test_score_mc_matches_loglikelihood(tiny):
    model, tokenizer = tiny
    docs = [
        MCDoc("toy", "1", ("2+2=",) * 2, (" 4", " 5"), 0),
        MCDoc("toy", "2", ("Is it?",) * 3, (" yes", " no", " maybe so"), 2),
        MCDoc("copa", "3", ("It rained, so",) * 2, ("  we stayed in.", "  we went out."), 1),  # COPA: 2 spaces
        MCDoc("wino", "4", ("Tom gave Ann", "Ann gave Tom"), (" a book.",) * 2, 0),  # multiple input
        MCDoc("toy", "1", ("2+2=",) * 2, (" 4", " 5"), 1),  # same requests, other gold
    ]
    scorer = Scorer(model, tokenizer, progress=False)
    scores = score_mc(scorer, docs)
    assert [s.doc_id for s in scores] == ["1", "2", "3", "4", "1"]
    for doc, score in zip(docs, scores):
        expected = [r.logprob for r in scorer.loglikelihood([doc.request(i) for i in range(doc.n_choices)])]
        assert score.logprobs == pytest.approx(tuple(expected), abs=1e-5)
        assert score.gold == doc.gold and score.task == doc.task
    assert scores[0].cont_chars == (1, 1)  # lm-eval acc_norm divides by len(choice), delimiter excluded
    assert scores[1].cont_chars == (3, 2, 8)
    assert scores[2].cont_chars == (len(" we stayed in."), len(" we went out."))
    assert scores[3].cont_chars == (len("Tom gave Ann"), len("Ann gave Tom"))  # multiple input: the choices
    assert scores[0].logprobs == scores[4].logprobs and scores[4].correct == (scores[4].pred == 1)


# ------------------------------------------------------------------------------- other architectures


def test_sliding_window_model_stays_exact():
    """Items longer than the attention window run as plain rows; shorter ones share their context."""
    from transformers import MistralConfig, MistralForCausalLM

    from forgetlab.models import byte_tokenizer

    tokenizer = byte_tokenizer()
    config = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, sliding_window=24, max_position_embeddings=512,
        initializer_range=0.2, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = MistralForCausalLM(config).eval()
    requests = [("short:", " ab"), ("short:", " ac"), (LONG, " the fox"), (LONG, " the dog")]
    scorer = Scorer(model, tokenizer, batch_size=4, progress=False)
    rows = [row for group in scorer._plan(scorer._encode_jobs(requests, None)[0]) for row in group]
    assert sorted(row.tree for row in rows) == [False, False, True]
    for request, result in zip(requests, scorer.loglikelihood(requests)):
        assert result.logprob == pytest.approx(brute_force(model, tokenizer, *request)[0], abs=1e-4)


def test_lora_wrapped_model(tiny):
    from forgetlab.models import LoraSpec, add_lora

    base, tokenizer = load_model(ModelSpec(name="tiny-llama", tiny={"seed": 2}))
    model = add_lora(base, LoraSpec(r=4))
    with torch.no_grad():  # make the adapters matter
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    requests = [("Hello", " world"), ("Hello", " there you"), ("", "abc")]
    for request, result in zip(requests, Scorer(model, tokenizer, progress=False).loglikelihood(requests)):
        assert result.logprob == pytest.approx(brute_force(model, tokenizer, *request)[0], abs=1e-4)


def test_many_continuations_of_one_context_are_split_into_rows(tiny):
    """Canary-style scoring: one context, many continuations; tree rows stay within the row budget."""
    model, tokenizer = tiny
    rng = np.random.default_rng(0)
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789")
    secrets = ["".join(rng.choice(alphabet, 10)) for _ in range(40)]
    requests = [("My secret is ", s) for s in secrets] + [("My secret is ", secrets[0][:5] + "zzzzz")]
    scorer = Scorer(model, tokenizer, batch_size=3, max_tokens_per_batch=128, progress=False)
    rows = [row for group in scorer._plan(scorer._encode_jobs(requests, None)[0]) for row in group]
    n_ctx = len(encode_pair(tokenizer, "My secret is ", "x")[0])
    assert len(rows) > 3 and all(len(row.tokens) <= n_ctx + 128 for row in rows)
    results = scorer.loglikelihood(requests)
    for index in (0, 7, 39, 40):
        assert results[index].logprob == pytest.approx(brute_force(model, tokenizer, *requests[index])[0], abs=1e-4)


def test_short_rows_are_packed_into_shared_lines(tiny):
    from forgetlab.scoring.rows import PACK_WIDTH, batches

    model, tokenizer = tiny
    requests = [(f"Question {i}: why?", f" because {i}") for i in range(12)]
    scorer = Scorer(model, tokenizer, batch_size=4, max_tokens_per_batch=1024, progress=False)
    rows = [row for group in scorer._plan(scorer._encode_jobs(requests, None)[0]) for row in group]
    batches = list(batches(rows, 4, 1024, PACK_WIDTH))
    assert len(batches) == 1 and max(len(line) for line in batches[0]) > 1
    assert sum(len(line) for line in batches[0]) == len(rows) == 12
    for request, result in zip(requests, scorer.loglikelihood(requests)):
        assert result.logprob == pytest.approx(brute_force(model, tokenizer, *request)[0], abs=1e-4)


def test_logit_softcapping_eager_attention_model():
    """Gemma-2 style: eager attention, soft-capped attention and logits, sliding window layers."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from forgetlab.models import byte_tokenizer

    tokenizer = byte_tokenizer()
    config = Gemma2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=64,
        final_logit_softcapping=2.0, max_position_embeddings=512, initializer_range=0.5,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = Gemma2ForCausalLM(config).eval()
    requests = [("Pick:", " one"), ("Pick:", " two words"), (LONG, " end"), ("Hi", "!")]
    for request, result in zip(requests, Scorer(model, tokenizer, progress=False).loglikelihood(requests)):
        expected = brute_force(model, tokenizer, *request)[0]
        assert result.logprob == pytest.approx(expected, abs=1e-4)
    # the cap really acts: no logit above 2
    with torch.no_grad():
        assert model(torch.tensor([[1, 2, 3]])).logits.abs().max() <= 2.0
