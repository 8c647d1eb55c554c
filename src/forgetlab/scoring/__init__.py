"""The scoring engine: the one place that turns (context, continuation) pairs into log-likelihoods.

``encoding`` (lm-eval's tokenisation, the max-length rule) → ``rows`` (the work plan: prefix trees,
packing, batching, sharding) → ``engine`` (:class:`Scorer`: log-likelihoods, per-token statistics,
hidden states) → ``mc`` (multiple-choice items: acc, acc_norm, confidence); ``generate`` (the one greedy
decoder).
"""

from forgetlab.scoring.encoding import encode_pair, prefix_token_id, resolve_max_length
from forgetlab.scoring.engine import ScoredRequest, Scorer, TokenScores
from forgetlab.scoring.generate import greedy_generate, greedy_texts
from forgetlab.scoring.mc import MCScore, score_mc

__all__ = [
    "MCScore",
    "Scorer",
    "ScoredRequest",
    "TokenScores",
    "encode_pair",
    "greedy_generate",
    "greedy_texts",
    "prefix_token_id",
    "resolve_max_length",
    "score_mc",
]
