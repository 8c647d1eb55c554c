"""The ``unlearn`` config (experiments/unlearn/config.py): sources checked, pairwise methods collate both rows."""

import pytest

from forgetlab.config import ConfigError
from forgetlab.experiments import build_config
from tests.conftest import unlearn_raw_config


def test_config_errors_name_the_field():
    assert build_config(unlearn_raw_config("idk_dpo")).forget.loss == "choice"  # pairwise methods collate both rows
    assert build_config(unlearn_raw_config("npo", options={"beta": 0.5})).forget.options == {"beta": 0.5}
    raw = unlearn_raw_config()
    raw["sets"]["retain"]["source"] = "nope"
    with pytest.raises(ConfigError, match="sets.retain.source: unknown source 'nope'"):
        build_config(raw)
