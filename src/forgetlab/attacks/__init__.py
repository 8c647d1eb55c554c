"""Recovery attacks (``attacks:`` in a recipe): quantization, relearning, and the logit-lens read-out.

Importing the package registers every attack in :data:`ATTACKS`.
"""

from forgetlab.attacks import logit_lens, quantize, relearn  # noqa: F401  (register themselves)
from forgetlab.attacks.base import ATTACKS, Attack, AttackContext, AttackSpec, build_attack

__all__ = ["ATTACKS", "Attack", "AttackContext", "AttackSpec", "build_attack"]
