import pytest

from forgetlab.config import ConfigError, apply_overrides
from forgetlab.experiments import build_config, load_config

BASE = {"experiment": "forget_generalization", "tasks": ["boolq", {"name": "piqa", "source": "local"}]}


def test_defaults_and_task_shorthand():
    config = build_config(BASE)
    assert [t.name for t in config.tasks] == ["boolq", "piqa"]
    assert config.tasks[1].source == "local"
    assert config.forget.method == "random_label" and config.forget.lr == 1e-4
    assert config.finetune.method == "finetune"
    assert config.model.name == "smollm2-135m"


def test_overrides_are_typed_and_nested():
    raw = apply_overrides(BASE, ["forget.lr=3e-5", "data.forget_size=10", "tasks.1.source=hub", "model.lora.r=4"])
    config = build_config(raw)
    assert config.forget.lr == pytest.approx(3e-5)
    assert config.data.forget_size == 10
    assert config.tasks[1].source == "hub"
    assert config.model.lora.r == 4
    assert BASE["tasks"][1]["source"] == "local"  # the input is not mutated


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({**BASE, "forgt": {}}, "field 'forgt'"),
        ({**BASE, "forget": {"method": "random_label", "lr": -1}}, "field 'forget.lr'"),
        ({**BASE, "data": {"forget_size": 0}}, "field 'data.forget_size'"),
        ({"experiment": "nope"}, "unknown experiment 'nope'"),
        ({**BASE, "tasks": ["boolq", "boolq"]}, "listed twice"),
    ],
)
def test_bad_configs_name_the_field(raw, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        build_config(raw, origin="recipe.yaml")


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: forget_generalization\ntasks: [boolq]\nseed: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml line 4 column 1: not valid YAML"):
        load_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text("experiment: forget_generalization\ntasks: [boolq]\n")
    assert load_config(good, ["seed=3"]).seed == 3
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(good, ["seed"])
