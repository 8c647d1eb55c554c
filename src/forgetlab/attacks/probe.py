"""Latent read-out: linear probes on hidden states (generalized from Study A's probes, Zhang et al. 2024;
Łucki et al. 2024). A probe (``StandardScaler → LogisticRegression``, C chosen on a validation split,
:mod:`forgetlab.analysis.probes`) is fitted per layer on the last-token hidden state of labelled texts the
experiment gives; its accuracy on the test texts shows whether the information is still linearly readable
inside the model, whatever its outputs say.

What the labels mean is the experiment's: for multiple-choice items, 1 = the text ends in the gold answer
(fitted on other items of the task, tested on the forget items: can their answers still be read?); for
(prompt, target) items, 1 = a forget item, 0 = an item of the same kind the model never trained on (can
membership still be read?).
"""

from __future__ import annotations

from typing import Sequence

import torch

from forgetlab.analysis.probes import DEFAULT_CS, layer_sweep
from forgetlab.attacks.base import ATTACKS, Attack, AttackContext, Measure, Results, ProbeSplit
from forgetlab.models import num_hidden_layers
from forgetlab.scoring import Scorer

SPLITS = ("train", "val", "test")


def resolve_layers(layers: Sequence[int | float] | None, depth: int) -> list[int]:
    """Layer indices of ``output_hidden_states`` (1 … depth): ints as given (negative from the end), floats
    in (0, 1] as a relative depth; None: every layer."""
    if layers is None:
        return list(range(1, depth + 1))
    out = []
    for layer in layers:
        if isinstance(layer, float) and 0 < layer <= 1:
            out.append(max(1, round(layer * depth)))
        elif isinstance(layer, int) and -depth <= layer <= depth and layer != 0:
            out.append(layer % (depth + 1) if layer < 0 else layer)
        else:
            raise ValueError(f"attack probe: layer {layer!r} is not a layer of a {depth}-layer model (1..{depth}, "
                             f"-1..-{depth}, or a fraction in (0, 1])")
    return sorted(set(out))


@ATTACKS.register("probe")
class LinearProbe(Attack):
    """Fit a probe per layer on the experiment's probe texts (a read-out: ``measure`` is not used): variants
    ``layer<i>`` with ``probe_acc`` (test texts classified right), ``question_acc`` (multiple choice: the gold
    text scored highest among its question's) and the chosen ``c``."""

    name = "probe"
    controls = ("original", "never_learned")

    def __init__(self, layers: list[int | float] | None = None, cs: list[float] | tuple[float, ...] = DEFAULT_CS,
                 batch_size: int = 8) -> None:
        if not cs or any(c <= 0 for c in cs):
            raise ValueError(f"attack probe: cs must be positive inverse regularisation strengths, got {list(cs)}")
        self.layers, self.cs, self.batch_size = layers, tuple(float(c) for c in cs), int(batch_size)

    def run(self, model: torch.nn.Module, context: AttackContext, measure: Measure) -> Results:
        if not context.probe_splits or set(context.probe_splits) != set(SPLITS):
            raise ValueError("attack probe: the experiment gives no probe texts (train, val and test splits)")
        layers = resolve_layers(self.layers, num_hidden_layers(model))
        scorer = Scorer(model, context.tokenizer, batch_size=self.batch_size, accelerator=context.accelerator,
                        max_tokens_per_batch=context.score_tokens, on_overlong="truncate")
        splits: dict[str, ProbeSplit] = {name: context.probe_splits[name] for name in SPLITS}
        states = {name: scorer.hidden_states(split.texts, layers) for name, split in splits.items()}
        features = {layer: tuple(states[name][layer] for name in SPLITS) for layer in layers}
        labels = tuple(list(splits[name].labels) for name in SPLITS)
        sweep = layer_sweep(features, labels, list(splits["test"].groups), cs=self.cs, seed=context.seed)
        return {f"layer{layer}": {"probe_acc": found["pair_acc"], "question_acc": found["question_acc"], "c": found["c"]}
                for layer, found in sweep.items()}
