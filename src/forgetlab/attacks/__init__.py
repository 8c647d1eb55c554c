"""Recovery attacks (``attacks:`` in a recipe): quantization, relearning, and the read-outs (logit lens,
linear probes).

Importing the package registers every attack in :data:`ATTACKS`.
"""

from forgetlab.attacks import logit_lens, probe, quantize, relearn  # noqa: F401  (register themselves)
from forgetlab.attacks.base import ATTACKS, Attack, AttackContext, AttackSpec, ProbeSplit, build_attack

__all__ = ["ATTACKS", "Attack", "AttackContext", "AttackSpec", "ProbeSplit", "build_attack"]
