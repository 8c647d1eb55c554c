"""Per-item memorization, difficulty buckets and nearby examples (Study B's data factors).

* **Memorization** (Baluta et al. 2024; the counterfactual memorization of Zhang et al. 2021 with one
  reference model): ``ll_original(x) - ll_reference(x)`` in nats — how much likelier the item is under
  the model that trained on it than under the reference model that did not. Higher = more memorized.
* **Difficulty**: the reference model's loss on the item, ``-ll_reference(x) / n_tokens`` (nats per
  target token; a model that never saw ``x`` finds it hard or easy on its own). Items are split into
  terciles by rank: ``easy`` (lowest third of loss), ``medium``, ``hard``. Memorization terciles are
  ``low``/``medium``/``high``.
* **Nearby examples**: for each unlearned item, its most similar training items. Similarity is
  cosine similarity of TF-IDF vectors of character n-grams (``char_wb``, n = 3..5, scikit-learn;
  robust to inflection and to random strings), or Jaccard similarity of lower-cased word sets
  (``jaccard``). Their log-likelihood change under unlearning is compared with random training items
  and with held-out items never trained on.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

Similarity = Literal["char_tfidf", "jaccard"]
DIFFICULTY_LABELS = ("easy", "medium", "hard")
MEMORIZATION_LABELS = ("low", "medium", "high")


def memorization(ll_original: Sequence[float], ll_reference: Sequence[float]) -> np.ndarray:
    """Per item ``ll_original - ll_reference`` (nats)."""
    original, reference = np.asarray(ll_original, float), np.asarray(ll_reference, float)
    if original.shape != reference.shape:
        raise ValueError(f"memorization: {original.size} original vs {reference.size} reference scores")
    return original - reference


def difficulty(ll_reference: Sequence[float], n_tokens: Sequence[int]) -> np.ndarray:
    """Per item reference-model loss in nats per target token."""
    tokens = np.asarray(n_tokens, float)
    if np.any(tokens <= 0):
        raise ValueError("difficulty: every item needs at least one target token")
    return -np.asarray(ll_reference, float) / tokens


def terciles(values: Sequence[float], labels: Sequence[str]) -> list[str]:
    """Label each value by its tercile (by rank, ties broken by position): lowest third gets ``labels[0]``."""
    if len(labels) != 3:
        raise ValueError("terciles need three labels")
    data = np.asarray(values, float)
    order = np.argsort(data, kind="stable")
    out = [""] * data.size
    for position, index in enumerate(order):
        out[index] = labels[min(2, position * 3 // max(1, data.size))]
    return out


def difficulty_terciles(reference_loss: Sequence[float]) -> list[str]:
    """``easy``/``medium``/``hard`` by reference-model loss."""
    return terciles(reference_loss, DIFFICULTY_LABELS)


def memorization_terciles(memorized: Sequence[float]) -> list[str]:
    """``low``/``medium``/``high`` by memorization."""
    return terciles(memorized, MEMORIZATION_LABELS)


def similarity_matrix(queries: Sequence[str], pool: Sequence[str], method: Similarity = "char_tfidf") -> np.ndarray:
    """``[len(queries), len(pool)]`` similarities in [0, 1]."""
    if method == "char_tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True)
        matrix = vectorizer.fit_transform(list(pool) + list(queries))
        pool_vecs, query_vecs = matrix[: len(pool)], matrix[len(pool) :]
        return np.asarray((query_vecs @ pool_vecs.T).todense())  # rows are L2-normalised
    if method == "jaccard":
        pool_sets = [set(t.lower().split()) for t in pool]
        return np.array([[_jaccard(set(q.lower().split()), p) for p in pool_sets] for q in queries], dtype=float)
    raise ValueError(f"unknown similarity {method!r}; use char_tfidf or jaccard")


def _jaccard(a: set[str], b: set[str]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 0.0


def nearest_neighbors(
    queries: Sequence[str], pool: Sequence[str], k: int = 1, method: Similarity = "char_tfidf"
) -> list[list[tuple[int, float]]]:
    """For each query its ``k`` most similar pool items as ``(pool index, similarity)``, best first."""
    if not pool:
        return [[] for _ in queries]
    sims = similarity_matrix(queries, pool, method)
    out = []
    for row in sims:
        best = np.argsort(-row, kind="stable")[:k]
        out.append([(int(i), float(row[i])) for i in best])
    return out
