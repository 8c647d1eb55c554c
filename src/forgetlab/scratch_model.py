"""A small decoder-only LM trained from scratch: a byte-level BPE tokenizer learnt on the corpus, and a Llama.

The tokenizer is trained with ``tokenizers`` (byte-level BPE, so any text, random secrets included,
is encodable) on the base training corpus only, never on the forget sets, so the original and the
reference model share it. It prepends ``<bos>`` to every text and has ``<eos>``/``<pad>``.
The model is a ``transformers`` ``LlamaForCausalLM`` (RoPE, RMSNorm, SwiGLU) initialised from a seed:
``(model, tokenizer)`` behave like any Hugging Face pair, so the scoring engine, the training loop and
``generate`` work unchanged. Sized for a CPU: the defaults are about 1.4M parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
from pydantic import Field
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from forgetlab.config import Spec

SPECIAL_TOKENS = ("<bos>", "<eos>", "<pad>")


class ScratchSpec(Spec):
    """Size of the from-scratch tokenizer and model (used when ``model.name`` is ``scratch``)."""

    vocab_size: int = Field(2000, ge=len(SPECIAL_TOKENS) + 256 + 1, description="BPE vocabulary incl. 256 byte tokens")
    min_frequency: int = Field(2, ge=1)
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(384, ge=8)
    max_length: int = Field(256, ge=16, description="maximum sequence length (position limit)")
    init_seed: int = Field(0, description="weight initialisation seed (the same for original and reference)")


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer learnt on ``texts``; encodings start with ``<bos>``."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    bos = core.token_to_id("<bos>")
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    return wrap_tokenizer(core)


def wrap_tokenizer(core: Tokenizer) -> PreTrainedTokenizerFast:
    """A ``tokenizers`` object as a transformers tokenizer with the special tokens named."""
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: Path) -> None:
    """Write the tokenizer as one ``tokenizer.json`` file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.backend_tokenizer.save(str(path))


def load_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    """Read a tokenizer written by :func:`save_tokenizer`."""
    return wrap_tokenizer(Tokenizer.from_file(str(path)))


def build_scratch_model(spec: ScratchSpec, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A randomly initialised Llama sized by ``spec``; the same spec and tokenizer give the same weights."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.init_seed)
        model = LlamaForCausalLM(config)
    return model.eval()


def parameter_count(model: torch.nn.Module) -> int:
    """Number of parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())
