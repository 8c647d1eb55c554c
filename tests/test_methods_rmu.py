"""RMU (methods/rmu.py): the layer read, the formula computed by hand, the parameters trained, a step's direction."""

import re

import pytest
import torch

from forgetlab.methods import METHODS
from forgetlab.methods.rmu import control_vector, layer_activations
from forgetlab.models import LoraSpec, ModelSpec, load_model
from tests.conftest import forget_batch, loss_value, make_method, retain_batch, sgd_step

PAIRWISE = {"idk_dpo": {"loss": "choice"}}  # constructor options a method needs


pytestmark = pytest.mark.usefixtures("one_thread")


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
def test_rmu_matches_its_formula(tiny_pair, layer):
    model, reference = tiny_pair
    forget, retain = forget_batch(), retain_batch()
    c, alpha = 3.0, 10.0
    method = make_method("rmu", reference, layer=layer, steering_coeff=c, alpha=alpha, seed=4)
    u = control_vector(model.config.hidden_size, 4, 1.0).double()
    assert u.norm().item() == pytest.approx(1.0) and (u >= 0).all()
    forget_mse = ((layer_outputs(model, forget, layer)[0] - c * u) ** 2).mean().item()
    retain_mse = ((layer_outputs(model, retain, layer)[0] - layer_outputs(reference, retain, layer)[0]) ** 2).mean().item()
    assert loss_value(method, model, forget, retain) == pytest.approx(forget_mse + alpha * retain_mse, rel=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        loss_value(make_method("rmu", reference, layer=5), model, forget, retain)


def test_rmu_reads_the_last_layer_before_the_final_norm(tiny_pair):
    """For the last layer, Hugging Face's ``hidden_states[-1]`` is ``norm(layer output)``; RMU reads the
    layer's own output (as WMDP's forward hook does). Earlier layers' outputs are ``hidden_states[ℓ + 1]``."""
    model, _ = tiny_pair
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

    assert matched(make_method("rmu", layer=3), model) == {f"model.layers.{i}.mlp.down_proj.weight" for i in (1, 2, 3)}
    assert matched(make_method("rmu", layer=1), model) == {f"model.layers.{i}.mlp.down_proj.weight" for i in (0, 1)}
    assert matched(make_method("rmu", layer=2), lora) == {
        f"base_model.model.model.layers.{i}.mlp.down_proj.lora_{ab}.default.weight" for i in (0, 1, 2) for ab in "AB"
    }
    with pytest.raises(ValueError, match="out of range"):
        make_method("rmu", layer=4).default_trainable(model)
    others = [name for name in METHODS.names() if name != "rmu"]
    assert others and all(METHODS.get(name)(**PAIRWISE.get(name, {})).default_trainable(model) is None for name in others)



def test_rmu_step_moves_forget_activations_toward_control(tiny_pair):
    model, _ = tiny_pair
    method = make_method("rmu", model, layer=0, steering_coeff=20.0, alpha=1.0)
    before = loss_value(method, model, forget_batch(), retain_batch())
    trained = sgd_step(method, model, forget_batch(), retain_batch(), lr=1e-3)
    assert method.forget_term(trained, forget_batch()).item() < method.forget_term(model, forget_batch()).item()
    assert loss_value(method, trained, forget_batch(), retain_batch()) < before
