"""The method registry; importing this package registers every built-in method."""

from forgetlab.methods import finetune, flipped_label, gradient_ascent, random_label  # noqa: F401
from forgetlab.methods import grad_diff, idk, idk_dpo, npo, rmu, simnpo  # noqa: F401  (unlearning methods)
from forgetlab.methods.base import METHODS, Batch, Method

__all__ = ["METHODS", "Batch", "Method"]
