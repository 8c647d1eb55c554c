"""oneDNN linears: bit for bit PyTorch's own results, only where they may be, and everything restored after."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from forgetlab import onednn
from forgetlab.models import ModelSpec, load_model
from forgetlab.onednn import OneDnnLinears, block_bounds, blockwise_linear, matching_block, pack
from forgetlab.scoring import Scorer

needs_onednn = pytest.mark.skipif(
    not onednn.enabled() or matching_block(1536, 576, False) is None,
    reason="oneDNN linears are used only on non-Intel x86 CPUs whose MKL sums in blocks oneDNN can reproduce",
)


@needs_onednn
@pytest.mark.parametrize("out_features,in_features,bias", [(1536, 576, False), (576, 1536, False), (640, 640, True), (13, 100, False)])
def test_blockwise_products_equal_pytorch_bit_for_bit(out_features, in_features, bias):
    block = matching_block(out_features, in_features, bias)
    assert block is not None
    generator = torch.Generator().manual_seed(7)
    weight = torch.randn(out_features, in_features, generator=generator)
    offset = torch.randn(out_features, generator=generator) if bias else None
    bounds = block_bounds(in_features, block)
    packed = pack(weight, bounds)
    for rows in (12, 50, 300, 1000):  # none of them a calibration row count
        x = torch.randn(rows, in_features, generator=generator)
        assert torch.equal(blockwise_linear(x, packed, bounds, offset), F.linear(x, weight, offset))
    x3 = torch.randn(3, 40, in_features, generator=generator)  # the [lines, width, hidden] of a forward pass
    assert torch.equal(blockwise_linear(x3, packed, bounds, offset), F.linear(x3, weight, offset))


@needs_onednn
def test_one_unsplit_product_is_not_pytorch_s_result():
    """Why the blocks: oneDNN summing all of K in one run differs in the last bits (so the test above can fail)."""
    block = matching_block(1536, 576, False)
    if block >= 576:
        pytest.skip("PyTorch's path sums K in one run on this CPU")
    generator = torch.Generator().manual_seed(7)
    weight, x = torch.randn(1536, 576, generator=generator), torch.randn(300, 576, generator=generator)
    whole = (0, 576)
    assert not torch.equal(blockwise_linear(x, pack(weight, whole), whole, None), F.linear(x, weight))


def test_block_bounds():
    assert block_bounds(576, 192) == (0, 192, 384, 576)
    assert block_bounds(640, 192) == (0, 192, 384, 576, 640)
    assert block_bounds(64, 192) == (0, 64)


def test_calibration_leaves_the_global_random_state_alone():
    onednn._matching_block.cache_clear()
    before = torch.get_rng_state()
    matching_block(48, 80, True)
    assert torch.equal(torch.get_rng_state(), before)


def test_cpu_vendor_is_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\n")
    assert onednn.cpu_vendor(cpuinfo) == "AuthenticAMD"
    assert onednn.cpu_vendor(tmp_path / "missing") == ""


def wide_tiny():
    """A tiny Llama whose hidden width (256) and MLP width (448) span several 192-wide blocks."""
    tiny = {"seed": 3, "hidden_size": 256, "intermediate_size": 448, "num_attention_heads": 4, "num_key_value_heads": 2}
    return load_model(ModelSpec(name="tiny-llama", tiny=tiny))


REQUESTS = [  # about 500 byte tokens: a call worth packing weights for
    ("The quick brown fox jumps over the lazy dog. " * 8, " It ran away."),
    ("The quick brown fox jumps over the lazy dog. " * 8, " It slept."),
    ("A short one:", " yes"),
    ("A short one:", " no"),
    ("Numbers: 1 2 3 4 5 6 7 8", " 9 10 11 12"),
]


@needs_onednn
def test_scores_are_identical_with_and_without_onednn(monkeypatch):
    model, tokenizer = wide_tiny()
    options = {"batch_size": 8, "max_tokens_per_batch": 512, "progress": False}
    routed = []
    enter = OneDnnLinears.__enter__

    def spy(self):
        found = enter(self)
        routed.append(found.routed)
        return found

    monkeypatch.setattr(OneDnnLinears, "__enter__", spy)
    plain = Scorer(model, tokenizer, onednn_linears=False, **options).loglikelihood(REQUESTS)
    scorer = Scorer(model, tokenizer, **options)
    fast = scorer.loglikelihood(REQUESTS)
    matched = sum(matching_block(m.out_features, m.in_features, m.bias is not None) is not None
                  for m in model.modules() if type(m) is torch.nn.Linear)
    assert routed == [0, matched] and matched > 0  # here all 15: 2 layers x (q, k, v, o, gate, up, down) + the head
    assert [r.logprob for r in fast] == [r.logprob for r in plain]
    assert [r.is_greedy for r in fast] == [r.is_greedy for r in plain]
    assert all("forward" not in vars(m) for m in model.modules())
    scorer.loglikelihood(REQUESTS[2:4])  # a few tokens: not worth packing the weights for
    assert routed == [0, matched, 0]


@needs_onednn
def test_only_plain_fp32_linears_are_routed():
    class Hooked(torch.nn.Linear):
        pass

    own = torch.nn.Linear(64, 64)
    own.forward = lambda x: x  # as accelerate's hooks set it
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), Hooked(64, 64), own, torch.nn.Linear(64, 64).double())
    with OneDnnLinears(model) as linears:
        assert linears.routed == 1
    with OneDnnLinears(model, wanted=False) as linears:
        assert linears.routed == 0 and "forward" not in vars(model[0])
    with OneDnnLinears(model) as linears:
        assert "forward" in vars(model[0]) and "forward" not in vars(model[1]) and "forward" not in vars(model[3])
    assert "forward" not in vars(model[0]) and vars(own)["forward"] is not None


@needs_onednn
def test_small_inputs_gradients_and_autocast_take_pytorch_s_path(monkeypatch):
    linear = torch.nn.Linear(64, 32)

    def refuse(*args):
        raise AssertionError("oneDNN used")

    x = torch.randn(20, 64, requires_grad=True)
    with OneDnnLinears(linear) as linears:
        assert linears.routed == 1
        monkeypatch.setattr(onednn, "blockwise_linear", refuse)  # after the shape's calibration, which uses it
        out = linear(x)  # gradients needed
        out.sum().backward()
        assert x.grad is not None
        with torch.inference_mode():
            assert torch.equal(linear(x[:11].detach()), F.linear(x[:11].detach(), linear.weight, linear.bias))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert linear(x.detach()).dtype == torch.bfloat16
            with pytest.raises(AssertionError, match="oneDNN used"):
                linear(x[:12].detach())


@needs_onednn
def test_weights_changed_between_contexts_are_packed_again():
    linear = torch.nn.Linear(256, 64)
    x = torch.randn(16, 256)
    with torch.inference_mode():
        with OneDnnLinears(linear):
            first = linear(x)
        linear.weight.mul_(2)
        with OneDnnLinears(linear):
            second = linear(x)
        assert torch.equal(first, F.linear(x, linear.weight / 2, linear.bias))
        assert torch.equal(second, F.linear(x, linear.weight, linear.bias))


@needs_onednn
def test_a_failed_entry_leaves_no_module_routed(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 48))
    real = onednn.matching_block

    def fail_on_the_second(out_features, in_features, bias):
        if out_features == 48:
            raise KeyboardInterrupt
        return real(out_features, in_features, bias)

    monkeypatch.setattr(onednn, "matching_block", fail_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        with OneDnnLinears(model):
            pass
    assert all("forward" not in vars(m) for m in model)
