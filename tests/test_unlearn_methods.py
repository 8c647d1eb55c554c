"""Unlearning losses against values computed by hand from unpadded single-row forward passes.

Every method's loss is recomputed here with plain Python floats from per-row log-probabilities (or
hidden states) of separate, unpadded forward passes, so padding, masking, reductions and signs are
all checked; sign tests take one gradient step and look at what moved.
"""

import copy
import math
import re

import pytest
import torch

from forgetlab.data.types import MCDoc
from forgetlab.methods import METHODS, Batch
from forgetlab.methods.base import sequence_logprobs
from forgetlab.methods.rmu import control_vector, layer_activations
from forgetlab.methods.simnpo import simnpo_loss
from forgetlab.models import LoraSpec, ModelSpec, load_model

PAIRWISE = {"idk_dpo": {"loss": "choice"}}  # constructor options a method needs


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models():
    model, _ = load_model("tiny-llama")
    reference, _ = load_model(ModelSpec(name="tiny-llama", tiny={"seed": 1}))
    return model.eval(), reference.eval()


def forget_batch(gold=(1,), n_choices=2):
    # two rows, right-padded (pad id 0); answers start at position 3 (row 0) and 2 (row 1)
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 13, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    labels = torch.tensor([[-100, -100, -100, 8, 9], [-100, -100, 12, 13, -100]])
    return Batch(ids, mask, labels, torch.tensor(gold), n_choices=n_choices)


def retain_batch():
    ids = torch.tensor([[40, 41, 42, 43, 44, 45], [50, 51, 52, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    labels = torch.tensor([[-100, 41, 42, 43, 44, 45], [-100, -100, 52, -100, -100, -100]])
    return Batch(ids, mask, labels, torch.tensor([0, 0]), n_choices=1)


def rows(model, batch):
    """Per row: (unpadded ids, labelled positions, log-softmax of each position's logits)."""
    out = []
    for r in range(batch.input_ids.shape[0]):
        length = int(batch.attention_mask[r].sum())
        ids = batch.input_ids[r, :length]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids[None]).logits[0].double(), -1)
        positions = [p for p in range(1, length) if batch.labels[r, p] != -100]
        out.append((ids, positions, logp))
    return out


def hand_logprobs(model, batch):
    """Summed log-prob of each row's labelled tokens, and their count."""
    sums, counts = [], []
    for ids, positions, logp in rows(model, batch):
        sums.append(sum(logp[p - 1, ids[p]].item() for p in positions))
        counts.append(len(positions))
    return sums, counts


def hand_nll(model, batch, reduction="mean"):
    sums, counts = hand_logprobs(model, batch)
    return -sum(sums) / len(sums) if reduction == "sum" else -sum(sums) / sum(counts)


def hand_kl(model, reference, batch):
    """Mean over labelled positions of KL(p_ref || p_model)."""
    terms = []
    for (ids, positions, logp), (_, _, ref_logp) in zip(rows(model, batch), rows(reference, batch)):
        for p in positions:
            q, r = logp[p - 1], ref_logp[p - 1]
            terms.append(sum(math.exp(rv) * (rv - qv) for rv, qv in zip(r.tolist(), q.tolist())))
    return sum(terms) / len(terms)


def log_sigmoid(x):
    return -math.log1p(math.exp(-x))


def make(name, reference=None, **options):
    method = METHODS.get(name)(**options)
    if reference is not None:
        method.attach_reference(copy.deepcopy(reference))
    return method


def value(method, model, batch, retain=None):
    with torch.no_grad():
        return method.loss(model, batch, retain).item()


# --------------------------------------------------------------------------- hand-computed values


def test_grad_diff_nll_and_kl(models):
    model, reference = models
    forget, retain = forget_batch(), retain_batch()
    expected = -hand_nll(model, forget) + 0.5 * hand_nll(model, retain)
    assert value(make("grad_diff", retain_weight=0.5), model, forget, retain) == pytest.approx(expected, abs=1e-5)
    summed = -hand_nll(model, forget, "sum") + 2.0 * hand_nll(model, retain, "sum")
    assert value(make("grad_diff", reduction="sum", retain_weight=2.0), model, forget, retain) == pytest.approx(summed, abs=1e-4)
    kl = make("grad_diff", reference, retain_loss="kl", retain_weight=1.5)
    expected_kl = -hand_nll(model, forget) + 1.5 * hand_kl(model, reference, retain)
    assert hand_kl(model, reference, retain) > 0.01  # the two models differ: the term is not trivially 0
    assert value(kl, model, forget, retain) == pytest.approx(expected_kl, abs=1e-5)
    # KL to itself is 0: gradient difference with KL against an unchanged copy is gradient ascent
    self_kl = make("grad_diff", model, retain_loss="kl")
    assert value(self_kl, model, forget, retain) == pytest.approx(-hand_nll(model, forget), abs=1e-5)


def test_npo_matches_its_formula(models):
    model, reference = models
    forget = forget_batch()
    lp, _ = hand_logprobs(model, forget)
    ref, _ = hand_logprobs(reference, forget)
    for beta in (0.1, 1.0):
        expected = -(2 / beta) * sum(log_sigmoid(-beta * (a - b)) for a, b in zip(lp, ref)) / len(lp)
        assert value(make("npo", reference, beta=beta), model, forget) == pytest.approx(expected, abs=1e-5)
    # at θ = ref the loss is (2/β)·log 2, whatever the data
    assert value(make("npo", model, beta=0.5), model, forget) == pytest.approx(4 * math.log(2), abs=1e-5)
    with_retain = make("npo", reference, beta=0.1, retain_weight=0.3)
    assert with_retain.needs_retain and with_retain.needs_reference
    expected = -(20) * sum(log_sigmoid(-0.1 * (a - b)) for a, b in zip(lp, ref)) / 2 + 0.3 * hand_nll(model, retain_batch())
    assert value(with_retain, model, forget, retain_batch()) == pytest.approx(expected, abs=1e-4)


def uneven_batch():
    # answers of 3 tokens (row 0) and 1 token (row 1): a per-token average differs from a per-row one
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 13, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    labels = torch.tensor([[-100, -100, 7, 8, 9], [-100, -100, -100, 13, -100]])
    return Batch(ids, mask, labels, torch.tensor([0]), n_choices=1)


def hand_simnpo(lp, n, beta, gamma):
    return -(2 / beta) * sum(log_sigmoid(-(beta / k) * a - gamma) for a, k in zip(lp, n)) / len(lp)


def test_simnpo_loss_by_hand():
    """log π = (−2, −6) over (2, 3) tokens, β = 2, γ = 1: σ arguments 1 and 3, so
    L = (log(1 + e^−1) + log(1 + e^−3)) / 2."""
    expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(-3))) / 2
    assert expected == pytest.approx(0.18092452, abs=1e-8)
    got = simnpo_loss(torch.tensor([-2.0, -6.0]), torch.tensor([2, 3]), beta=2.0, gamma=1.0).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_simnpo_matches_its_formula(models):
    """On the tiny model at β = 0.3, γ = 1 the σ arguments are near 0, so the loss is O(1) and
    γ's sign, the length normalisation and the 2/β factor each move it by far more than the tolerance."""
    model, _ = models
    forget = uneven_batch()
    lp, n = hand_logprobs(model, forget)
    assert n == [3, 1]
    beta, gamma = 0.3, 1.0
    expected = hand_simnpo(lp, n, beta, gamma)
    assert 1.0 < expected < 10.0
    assert abs(hand_simnpo(lp, n, beta, -gamma) - expected) > 1.0  # γ with the wrong sign
    assert abs(hand_simnpo(lp, [1, 1], beta, gamma) - expected) > 1.0  # no length normalisation
    method = make("simnpo", beta=beta, gamma=gamma)
    assert not method.needs_reference and not method.needs_retain
    assert value(method, model, forget) == pytest.approx(expected, rel=1e-5)
    retained = make("simnpo", beta=beta, gamma=gamma, retain_weight=1.0)
    assert value(retained, model, forget, retain_batch()) == pytest.approx(expected + hand_nll(model, retain_batch()), rel=1e-5)


def test_idk_refusals_and_loss(models):
    model, _ = models
    idk = make("idk")
    (first,), gold = idk.pair_targets("item-3", " Paris", seed=0)
    assert gold == 0 and first.startswith(" ") and first.strip() in idk.refusals
    assert idk.pair_targets("item-3", " Paris", seed=0)[0] == [first]  # stable
    picks = {idk.pair_targets(f"item-{i}", "x", seed=0)[0][0] for i in range(40)}
    assert len(picks) > 2  # a seeded choice among the variants, not always the first
    custom = make("idk", refusals=["No comment."])
    assert custom.pair_targets("a", "\n42", 1) == (["\nNo comment."], 0)
    expected = hand_nll(model, forget_batch()) + 0.7 * hand_nll(model, retain_batch())
    assert value(make("idk", retain_weight=0.7), model, forget_batch(), retain_batch()) == pytest.approx(expected, abs=1e-5)
    doc = MCDoc("t", "d1", ("Q:", "Q:"), (" yes", " no"), 1)
    relabelled = custom.relabel([doc], seed=0)[0]
    assert relabelled.continuations == (" yes", " No comment.") and relabelled.gold == 1


def test_idk_dpo_matches_its_formula(models):
    model, reference = models
    batch = forget_batch(gold=(1,), n_choices=2)  # row 0: original answer, row 1: refusal (preferred)
    lp, _ = hand_logprobs(model, batch)
    ref, _ = hand_logprobs(reference, batch)
    beta = 0.5
    expected = -log_sigmoid(beta * ((lp[1] - ref[1]) - (lp[0] - ref[0]))) + hand_nll(model, retain_batch())
    method = make("idk_dpo", reference, beta=beta)
    assert value(method, model, batch, retain_batch()) == pytest.approx(expected, abs=1e-5)
    swapped = forget_batch(gold=(0,), n_choices=2)  # gold marks the preferred row
    expected = -log_sigmoid(beta * ((lp[0] - ref[0]) - (lp[1] - ref[1]))) + hand_nll(model, retain_batch())
    assert value(method, model, swapped, retain_batch()) == pytest.approx(expected, abs=1e-5)
    # at θ = ref the preference term is log 2
    assert value(make("idk_dpo", model, retain_weight=0.0), model, batch) == pytest.approx(math.log(2), abs=1e-6)
    assert method.pair_targets("x", " Rome", 0)[0][0] == " Rome" and method.pair_targets("x", " Rome", 0)[1] == 1


def layer_outputs(model, batch, layer):
    """Decoder layer ``layer``'s own output at each row's labelled positions, from a hook of this test on
    unpadded single-row passes (WMDP's ``forward_with_cache``), and the model's ``hidden_states[layer + 1]``."""
    outputs, states = [], []
    for r in range(batch.input_ids.shape[0]):
        length = int(batch.attention_mask[r].sum())
        seen = []
        handle = model.model.layers[layer].register_forward_hook(lambda m, i, o: seen.append(o[0] if isinstance(o, tuple) else o))
        with torch.no_grad():
            hidden = model(input_ids=batch.input_ids[r, :length][None], output_hidden_states=True).hidden_states
        handle.remove()
        positions = [p for p in range(length) if batch.labels[r, p] != -100]
        outputs += [seen[0][0, p] for p in positions]
        states += [hidden[layer + 1][0, p] for p in positions]
    return torch.stack(outputs).double(), torch.stack(states).double()


@pytest.mark.parametrize("layer", [0, 1])  # the tiny model has 2 layers: 1 is the last
def test_rmu_matches_its_formula(models, layer):
    model, reference = models
    forget, retain = forget_batch(), retain_batch()
    c, alpha = 3.0, 10.0
    method = make("rmu", reference, layer=layer, steering_coeff=c, alpha=alpha, seed=4)
    u = control_vector(model.config.hidden_size, 4, 1.0).double()
    assert u.norm().item() == pytest.approx(1.0) and (u >= 0).all()
    forget_mse = ((layer_outputs(model, forget, layer)[0] - c * u) ** 2).mean().item()
    retain_mse = ((layer_outputs(model, retain, layer)[0] - layer_outputs(reference, retain, layer)[0]) ** 2).mean().item()
    assert value(method, model, forget, retain) == pytest.approx(forget_mse + alpha * retain_mse, rel=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        value(make("rmu", reference, layer=5), model, forget, retain)


def test_rmu_reads_the_last_layer_before_the_final_norm(models):
    """For the last layer, Hugging Face's ``hidden_states[-1]`` is ``norm(layer output)``; RMU reads the
    layer's own output (as WMDP's forward hook does). Earlier layers' outputs are ``hidden_states[ℓ + 1]``."""
    model, _ = models
    batch = forget_batch()
    with torch.no_grad():
        last = layer_activations(model, batch, 1).double()
        first = layer_activations(model, batch, 0).double()
    output, normed = layer_outputs(model, batch, 1)
    assert torch.allclose(last, output, atol=1e-5)
    assert torch.allclose(model.model.norm(last.float()).double(), normed, atol=1e-5)
    assert (last - normed).abs().max().item() > 0.1  # the normed state is a different tensor
    assert torch.allclose(first, layer_outputs(model, batch, 0)[1], atol=1e-5)


def test_rmu_trains_only_the_published_parameters_by_default():
    """WMDP / OpenUnlearning: the ``mlp.down_proj`` weights of layers ℓ−2..ℓ (their LoRA adapters under LoRA)."""
    model, _ = load_model(ModelSpec(name="tiny-llama", tiny={"num_hidden_layers": 4}))
    lora, _ = load_model(ModelSpec(name="tiny-llama", tiny={"num_hidden_layers": 4}, lora=LoraSpec(r=2, alpha=4)))

    def matched(method, m):
        pattern = re.compile(method.default_trainable(m))
        return {n for n, p in m.named_parameters() if p.requires_grad and pattern.search(n)}

    assert matched(make("rmu", layer=3), model) == {f"model.layers.{i}.mlp.down_proj.weight" for i in (1, 2, 3)}
    assert matched(make("rmu", layer=1), model) == {f"model.layers.{i}.mlp.down_proj.weight" for i in (0, 1)}
    assert matched(make("rmu", layer=2), lora) == {
        f"base_model.model.model.layers.{i}.mlp.down_proj.lora_{ab}.default.weight" for i in (0, 1, 2) for ab in "AB"
    }
    with pytest.raises(ValueError, match="out of range"):
        make("rmu", layer=4).default_trainable(model)
    others = [name for name in METHODS.names() if name != "rmu"]
    assert others and all(METHODS.get(name)(**PAIRWISE.get(name, {})).default_trainable(model) is None for name in others)


# --------------------------------------------------------------------------- masking, signs, options


def test_padding_and_masked_positions_do_not_count(models):
    model, reference = models
    batch, other = forget_batch(), forget_batch()
    other.input_ids[1, 4] = 99  # a padding token
    for name, options in [("grad_diff", {}), ("npo", {}), ("simnpo", {}), ("rmu", {"layer": 1})]:
        method = make(name, reference, **options)
        assert value(method, model, batch, retain_batch()) == pytest.approx(value(method, model, other, retain_batch()), abs=1e-5)


def _step(method, model, batch, retain=None, lr=1e-2):
    trained = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(trained.parameters(), lr=lr)
    method.loss(trained, batch, retain).backward()
    optimizer.step()
    return trained.eval()


# SimNPO saturates on items the model finds very unlikely (σ(−(β/|y|)·log π) → 1 for a random model
# at β = 2.5), so its sign is checked at a small β where the gradient is not vanishing.
@pytest.mark.parametrize("name, options", [("gradient_ascent", {}), ("grad_diff", {}), ("npo", {}), ("simnpo", {"beta": 0.1})])
def test_ascent_methods_lower_forget_likelihood(models, name, options):
    model, reference = models
    method = make(name, reference, **options)
    assert method.ascent
    trained = _step(method, model, forget_batch(), retain_batch())
    with torch.no_grad():
        assert sequence_logprobs(trained, forget_batch())[0].sum() < sequence_logprobs(model, forget_batch())[0].sum()


def test_idk_and_dpo_raise_the_refusal(models):
    model, _ = models
    batch = forget_batch(gold=(1,), n_choices=2)
    for method in (make("idk", retain_weight=0.0), make("idk_dpo", model, beta=1.0, retain_weight=0.0)):
        trained = _step(method, model, batch, lr=0.05)
        with torch.no_grad():
            before, after = sequence_logprobs(model, batch)[0], sequence_logprobs(trained, batch)[0]
        assert after[1] > before[1]  # the preferred / trained-on row gains
    dpo = _step(make("idk_dpo", model, beta=1.0, retain_weight=0.0), model, batch, lr=0.05)
    with torch.no_grad():
        assert sequence_logprobs(dpo, batch)[0][0] < sequence_logprobs(model, batch)[0][0]  # the original answer loses


def test_npo_gradient_at_reference_is_gradient_ascent(models):
    """∂L_NPO/∂log π = 2σ(βΔ) = 1 at θ = ref: NPO's first step is ascent on the summed NLL."""
    model, _ = models
    trained = copy.deepcopy(model)
    grads = []
    for method in (make("npo", model, beta=0.3), make("gradient_ascent", reduction="sum")):
        trained.zero_grad()
        method.loss(trained, forget_batch()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in trained.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_rmu_step_moves_forget_activations_toward_control(models):
    model, _ = models
    method = make("rmu", model, layer=0, steering_coeff=20.0, alpha=1.0)
    before = value(method, model, forget_batch(), retain_batch())
    trained = _step(method, model, forget_batch(), retain_batch(), lr=1e-3)
    assert method.forget_term(trained, forget_batch()).item() < method.forget_term(model, forget_batch()).item()
    assert value(method, trained, forget_batch(), retain_batch()) < before


def test_options_and_flags(models):
    with pytest.raises(ValueError, match="unknown options"):
        METHODS.get("npo")(betta=0.1)
    with pytest.raises(ValueError, match="beta"):
        METHODS.get("simnpo")(beta=0)
    with pytest.raises(ValueError, match="loss: choice"):
        METHODS.get("idk_dpo")(loss="answer")
    with pytest.raises(ValueError, match="retain_loss"):
        METHODS.get("grad_diff")(retain_loss="mse")
    assert not METHODS.get("grad_diff")().needs_reference
    assert METHODS.get("grad_diff")(retain_loss="kl").needs_reference
    assert not METHODS.get("grad_diff")(retain_weight=0).needs_retain
    assert not METHODS.get("npo")().needs_retain and METHODS.get("npo")().needs_reference
    assert METHODS.get("idk")().needs_retain and not METHODS.get("idk")().needs_reference
    assert METHODS.get("rmu")().needs_retain and METHODS.get("rmu")().needs_reference
    with pytest.raises(ValueError, match="no retain batch"):
        METHODS.get("grad_diff")().loss(models[0], forget_batch(), None)
    with pytest.raises(ValueError, match="reference"):
        METHODS.get("npo")().loss(models[0], forget_batch(), None)
