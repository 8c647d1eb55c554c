"""Gradient ascent: maximise the loss on the forget items' true answers.

The classic unlearning baseline (e.g. Jang et al. 2023, "Knowledge Unlearning for Mitigating Privacy
Risks in Language Models"; Study B of MISSION.md). Sign convention: the returned loss is the
*negated* supervised loss, so minimising it ascends the cross-entropy.
"""

from forgetlab.methods.base import METHODS, Method


@METHODS.register("gradient_ascent")
class GradientAscent(Method):
    """Negated cross-entropy on the true labels."""

    name = "gradient_ascent"
    ascent = True
