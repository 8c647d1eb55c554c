"""id_vs_ood's recipe: clear errors for wrong fields, groups, sizes, methods and corpora."""

import pytest
import torch

from forgetlab.config import ConfigError
from forgetlab.experiments import build_config, run_experiment


def test_config_errors_are_clear(tmp_path, tiny_id_vs_ood):
    raw = tiny_id_vs_ood
    with pytest.raises(ConfigError, match="buckets.groups"):
        build_config(dict(raw, buckets={"groups": ["id_x7"]}))
    with pytest.raises(ConfigError, match="utility_size"):
        build_config(dict(raw, eval=dict(raw["eval"], utility_size=99)))
    with pytest.raises(ConfigError, match="max_steps"):
        build_config(dict(raw, unlearn=dict(raw["unlearn"], max_steps=None)))
    with pytest.raises(ConfigError, match="colour"):
        build_config(dict(raw, colour="blue"))
    with pytest.raises(KeyError, match="unlearn.method"):
        run_experiment(build_config(dict(raw, unlearn=dict(raw["unlearn"], method="no_such_method"))), tmp_path)
    with pytest.raises(KeyError, match="corpus.name"):
        run_experiment(build_config(dict(raw, corpus={"name": "no_such_corpus"})), tmp_path)
    assert torch.get_num_threads() >= 1
