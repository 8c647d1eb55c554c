"""Extraction metrics: exact memorization, verbatim and prefix match, and real greedy generation."""

import numpy as np
import pytest
import torch

from forgetlab.metrics.extraction import exact_memorization, prefix_match, verbatim_match
from forgetlab.scoring import greedy_generate


pytestmark = pytest.mark.usefixtures("one_thread")


def test_array_metrics_by_hand():
    assert exact_memorization([np.array([True, False, True, True]), np.array([False])]).tolist() == [0.75, 0.0]
    generated = [[1, 2, 3, 9], [1, 2, 3], [7, 2, 3], [1, 2]]
    targets = [[1, 2, 3], [1, 2, 4], [1, 2, 3], [1, 2, 3]]
    assert verbatim_match(generated, targets).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert prefix_match(generated, targets).tolist() == pytest.approx([1.0, 2 / 3, 0.0, 2 / 3])
    with pytest.raises(ValueError):
        verbatim_match([[1]], [[1], [2]])
    with pytest.raises(ValueError, match="empty"):
        prefix_match([[1]], [[]])


def _manual_greedy(model, context, n):
    ids = list(context)
    for _ in range(n):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        ids.append(int(logits.argmax()))
    return ids[len(context):]


def _teacher_forced_greedy(model, context, target):
    """Per target token: is it the argmax given the true prefix (one forward pass)?"""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([list(context) + list(target)])).logits[0]
    predicted = logits[len(context) - 1 : -1].argmax(-1)
    return (predicted == torch.tensor(target)).numpy()


def test_generation_is_plain_greedy_and_agrees_with_teacher_forcing(tiny):
    model, tokenizer = tiny
    model.eval()
    contexts = [[257, 72, 101, 108], [257, 40], [257, 1, 2, 3, 4, 5, 6]]
    lengths = [5, 3, 4]
    generated = greedy_generate(model, contexts, lengths, pad_id=tokenizer.pad_token_id, eos_id=model.config.eos_token_id, batch_size=2)
    assert generated == [_manual_greedy(model, c, n) for c, n in zip(contexts, lengths)]
    assert not model.training

    # the model's own greedy continuation is extracted verbatim; a changed last token is not
    targets = [list(g) for g in generated]
    targets[1][-1] = (targets[1][-1] + 1) % 256
    assert verbatim_match(generated, targets).tolist() == [1.0, 0.0, 1.0]
    assert prefix_match(generated, targets).tolist() == pytest.approx([1.0, 2 / 3, 1.0])
    # teacher-forced: every target token is the argmax exactly when generation reproduces it
    memorized = exact_memorization([_teacher_forced_greedy(model, c, t) for c, t in zip(contexts, targets)])
    assert memorized.tolist() == pytest.approx([1.0, 2 / 3, 1.0])
    assert ((memorized == 1.0) == verbatim_match(generated, targets).astype(bool)).all()
