"""Evaluation in the ``unlearn`` experiment (experiments/unlearn/evaluate.py): the metrics a config records."""

from forgetlab.experiments import build_config
from forgetlab.experiments.unlearn import metric_names
from tests.conftest import unlearn_raw_config


def test_metric_names_follow_the_config():
    names = metric_names(build_config(unlearn_raw_config()))
    assert {"forget/loss", "forget/token_acc", "forget/verbatim", "utility/loss", "retain/loss", "holdout/loss"} <= set(names)
    assert {"mia/min_k_pp_auc", "mia/ref_tpr_1pct", "mia/zlib_auc_ci_low", "mia/loss_auc_gap"} <= set(names)
    raw = unlearn_raw_config()
    del raw["sets"]["holdout"]
    raw["mia"] = {"bootstrap": 0}
    raw["select"] = {"objective": "forget/loss"}
    assert not any(n.startswith("mia/") for n in metric_names(build_config(raw)))
