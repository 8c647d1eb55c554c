"""Fine-tuning on the correct labels (Study A, step 2)."""

from forgetlab.methods.base import METHODS, Method


@METHODS.register("finetune")
class Finetune(Method):
    """Minimise the loss on each item's true answer."""

    name = "finetune"
