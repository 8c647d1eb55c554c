"""Memorization, difficulty, their terciles, and nearest neighbours by text similarity."""

import pytest

from forgetlab.metrics.memorization import (
    difficulty,
    difficulty_terciles,
    memorization,
    memorization_terciles,
    nearest_neighbors,
    similarity_matrix,
    terciles,
)


def test_memorization_difficulty_and_terciles():
    assert memorization([-1.0, -3.0], [-4.0, -3.0]).tolist() == [3.0, 0.0]
    assert difficulty([-6.0, -2.0], [3, 4]).tolist() == [2.0, 0.5]
    with pytest.raises(ValueError):
        difficulty([-1.0], [0])
    values = [5.0, 1.0, 3.0, 2.0, 6.0, 4.0]
    assert terciles(values, ("a", "b", "c")) == ["c", "a", "b", "a", "c", "b"]
    assert difficulty_terciles(values) == ["hard", "easy", "medium", "easy", "hard", "medium"]
    assert memorization_terciles([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]) == ["low"] * 3 + ["medium"] * 2 + ["high"] * 2


def test_nearest_neighbors_by_char_tfidf_and_jaccard():
    pool = ["A man rides a red bicycle.", "Two dogs play in the snow.", "A woman reads a book."]
    found = nearest_neighbors(["A man is riding a red bike.", "The dogs play in snow."], pool, k=2)
    assert [row[0][0] for row in found] == [0, 1]
    assert found[0][0][1] > found[0][1][1] and 0 < found[0][0][1] <= 1
    jac = similarity_matrix(["a b c"], ["a b d", "x y"], "jaccard")
    assert jac.tolist() == [[0.5, 0.0]]
    assert nearest_neighbors(["q"], [], k=1) == [[]]
    with pytest.raises(ValueError):
        similarity_matrix(["a"], ["b"], "cosine")
