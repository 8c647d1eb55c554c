"""The metric registry: directions by role, badness, registration rules; selection reads directions from it."""

import pytest

import forgetlab.metrics.extraction  # noqa: F401  (registers its metrics)
import forgetlab.metrics.forgetting  # noqa: F401
import forgetlab.metrics.mia  # noqa: F401
from forgetlab.experiments.unlearn.config import SelectSpec
from forgetlab.experiments.unlearn.evaluate import Selection, objective_badness
from forgetlab.metrics.registry import METRICS, Metric


def test_directions_swap_for_data_to_keep_and_vanish_for_data_to_observe():
    loss = METRICS.get("loss")
    assert (loss.direction("forget"), loss.direction("keep"), loss.direction("observe")) == ("higher", "lower", None)
    auc = METRICS.get("min_k_pp_auc")
    assert auc.direction("forget") == auc.direction("keep") == "closer" and auc.target == 0.5
    assert METRICS.get("verbatim").direction("forget") == "lower"


def test_badness_by_hand():
    assert METRICS.get("loss").badness(2.5) == -2.5  # forgetting: a higher loss is better
    assert METRICS.get("loss").badness(2.5, "keep") == 2.5  # utility: a lower loss is better
    assert METRICS.get("loss_auc").badness(0.62) == pytest.approx(0.12)
    assert METRICS.get("loss_auc").badness(0.38) == pytest.approx(0.12)  # under- and over-unlearned alike
    with pytest.raises(ValueError, match="no better direction"):
        METRICS.get("n").badness(3.0)
    with pytest.raises(ValueError, match="target goes with better='closer'"):
        Metric("x", "closer", "-", "-")


def test_objective_keys_take_their_sets_role():
    assert objective_badness("forget/loss", 3.0) == -3.0
    assert objective_badness("utility/loss", 3.0) == 3.0
    assert objective_badness("mia/loss_auc_gap", 0.1) == 0.1
    with pytest.raises(ValueError, match="no better direction for observe data"):
        objective_badness("holdout/loss", 1.0)


@pytest.mark.parametrize("objective, best_step", [("forget/loss", 2), ("utility/loss", 1), ("mia/loss_auc", 3)])
def test_selection_reads_the_direction_from_the_registry(tmp_path, objective, best_step):
    selection = Selection(SelectSpec(objective=objective), tmp_path / "selection.json")
    history = {0: (1.0, 1.0, 0.9), 1: (1.5, 0.8, 0.8), 2: (4.0, 2.0, 0.7), 3: (2.0, 1.1, 0.45)}
    for step, (forget, utility, auc) in history.items():
        selection.record(step, {"forget/loss": forget, "utility/loss": utility, "mia/loss_auc": auc})
    assert selection.best()["step"] == best_step
