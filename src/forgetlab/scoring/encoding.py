"""Tokenising (context, continuation) requests exactly as lm-evaluation-harness does, and the one
max-length rule."""

from __future__ import annotations

from typing import Any, Literal


TOKENIZER_INFINITY = 1000000000000000019884624838656  # transformers' "no limit" model_max_length
DEFAULT_MAX_LENGTH = 2048  # lm-eval's fallback when neither config nor tokenizer gives a length
_SEQLEN_ATTRS = ("n_positions", "max_position_embeddings", "n_ctx")


# --------------------------------------------------------------------------------------- tokenisation


def prefix_token_id(tokenizer: Any) -> int:
    """lm-eval's ``prefix_token_id``: the token that stands in for an empty context (BOS, else EOS)."""
    token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token_id is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token: cannot score an empty context")
    return int(token_id)


#: Where a request's continuation starts. ``lm_eval``: lm-eval's ``_encode_pair`` (the context's trailing whitespace
#: moves to the continuation); ``prompt``: after the tokens of the context as written, whitespace included
#: (OpenUnlearning's ``preprocess_chat_instance``: labels are ``encode(prompt + answer)[len(encode(prompt)):]``).
Boundary = Literal["lm_eval", "prompt"]


class RequestEncoder:
    """lm-eval's ``HFLM.tok_encode`` and ``loglikelihood`` tokenisation with default arguments (or, with
    ``boundary="prompt"``, the continuation starting where the context's own tokens end)."""

    def __init__(self, tokenizer: Any, add_bos_token: bool | None = None, boundary: Boundary = "lm_eval") -> None:
        if boundary not in ("lm_eval", "prompt"):
            raise ValueError(f"boundary must be 'lm_eval' or 'prompt', got {boundary!r}")
        self.tokenizer = tokenizer
        self.add_bos_token = add_bos_token
        self.boundary = boundary
        self.prefix_id = prefix_token_id(tokenizer)
        self.prefix_str = tokenizer.decode(self.prefix_id)

    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        """``tok_encode``: special tokens as the tokenizer adds them, unless the text starts with BOS."""
        kwargs: dict[str, bool] = {}
        if add_special_tokens is not None:
            kwargs["add_special_tokens"] = add_special_tokens
        elif self.add_bos_token is not None:
            kwargs["add_special_tokens"] = self.add_bos_token
        if add_special_tokens is None and text.startswith(self.prefix_str):
            kwargs["add_special_tokens"] = False
        return list(self.tokenizer.encode(text, **kwargs))

    def pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """``loglikelihood`` + ``_encode_pair`` for a causal model."""
        if context == "":
            cont = self.encode(continuation, add_special_tokens=False)
            if cont and cont[0] == self.prefix_id:
                return cont[:1], cont[1:]
            return [self.prefix_id], cont
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0 and self.boundary == "lm_eval":
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return ctx, whole[len(ctx) :]


def encode_pair(
    tokenizer: Any, context: str, continuation: str, add_bos_token: bool | None = None, boundary: Boundary = "lm_eval"
) -> tuple[list[int], list[int]]:
    """Tokenise one loglikelihood request exactly like lm-eval 0.4.13's ``hf`` model.

    Trailing whitespace of the context moves to the continuation; ``whole = encode(context +
    continuation)``, ``ctx = encode(context)``, ``cont = whole[len(ctx):]``. An empty context becomes
    ``[prefix_token_id]`` (BOS, else EOS), unless the continuation already starts with that token.
    ``add_bos_token`` is HFLM's argument of the same name (``None``: the tokenizer's default); ``boundary="prompt"``
    keeps the context's trailing whitespace in the context (see :data:`Boundary`).
    """
    return RequestEncoder(tokenizer, add_bos_token, boundary).pair(context, continuation)


def resolve_max_length(model_config: Any, tokenizer: Any = None, default: int = DEFAULT_MAX_LENGTH) -> int:
    """lm-eval's ``resolve_max_length``: config (text config first), then tokenizer, then ``default``."""
    cfg = getattr(model_config, "text_config", None) or model_config
    for attr in _SEQLEN_ATTRS:
        value = getattr(cfg, attr, None)
        if value is not None:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and limit != TOKENIZER_INFINITY:
        return int(limit)
    return default


