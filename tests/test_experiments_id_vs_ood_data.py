"""id_vs_ood's data: the seeded subsets and groups, the spares, and the original and reference training streams."""

from functools import partial
from pathlib import Path

import pytest

from forgetlab.experiments import build_config, load_config
from forgetlab.experiments.id_vs_ood import build_data, stream_tokens
from forgetlab.train import encode_pairs
from forgetlab.experiments.id_vs_ood.data import original_training_stream, reference_training_stream, token_lengths
from forgetlab.scratch_model import train_bpe_tokenizer
from forgetlab.train import total_steps


def test_study_data_keeps_id_forget_sets_out_of_training():
    config = build_config({
        "experiment": "id_vs_ood", "model": "scratch", "train_size": 100, "test_size": 10,
        "corpus": {"name": "synthetic_translation", "synthetic_sizes": {"train": 140, "validation": 20, "test": 20}},
        "canaries": {"n_references": 30, "n_unseen": 5}, "groups": {"repetitions": [1, 5], "per_group": 4},
        "eval": {"utility_size": 10, "bleu_size": 4, "heldout_size": 10},
    })
    data = build_data(config)
    again = build_data(config)
    assert data.to_dict() == again.to_dict()
    assert [g.name for g in data.groups] == ["ood_x1", "ood_x5", "id_x1", "id_x5"]
    id_items = {p.prompt for g in data.groups if g.kind == "id" for p in g.items}
    assert len(id_items) == 8
    assert not id_items & {p.prompt for p in data.base + data.test + data.heldout}
    assert len(data.base) == 100 and len(data.test) == 10 and len(data.heldout) == 10
    assert len(data.references) == 30 and len(data.unseen) == 5
    # the reference model's spares: 32 fresh canaries per canary, and the 140 - 8 - 100 training pairs left
    assert len(data.spares["ood"]) == 32 * 8 and len(data.spares["id"]) == 32
    spare_prompts = {p.prompt for p in data.spares["id"]}
    assert not spare_prompts & (id_items | {p.prompt for p in data.base + data.test + data.heldout})
    removed = build_data(config.model_copy(update={"train": config.train.model_copy(update={"reference": "remove"})}))
    assert removed.spares == {} and removed.to_dict() | {"spares": {}} == data.to_dict() | {"spares": {}}
    with pytest.raises(ValueError, match=r"8 \(ID stand-ins"):
        build_data(config.model_copy(update={"train_size": 130}))


def test_from_scratch_recipe_reference_trains_as_many_steps_and_tokens(shared_data):
    """configs/study_b.yaml: the reference stream (forget items replaced) has the original's items and
    optimizer steps, and its tokens up to the few ID stand-ins without an exact token-count match;
    the former stream (forget items removed) had 188 steps against 410."""
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "study_b.yaml")
    config = config.model_copy(update={"corpus": config.corpus.model_copy(update={"root": str(shared_data)})})
    data = build_data(config)
    tokenizer = train_bpe_tokenizer([p.prompt + p.target for p in data.base], config.scratch.vocab_size)
    lengths = partial(token_lengths, tokenizer)
    one_pass = config.train.model_copy(update={"epochs": 1.0})
    original, (reference, chosen) = original_training_stream(config, data), reference_training_stream(config, data, lengths)
    steps = [total_steps(len(s), one_pass, 1) for s in (original, reference)]
    assert len(original) == len(reference) == 2 * (6000 + 2 * 32 * 111) and steps == [410, 410]
    tokens = [stream_tokens(encode_pairs(tokenizer, [e.pair for e in s], 128, eos=True)) for s in (original, reference)]
    assert abs(tokens[1]["target_tokens"] - tokens[0]["target_tokens"]) <= 50  # of 386,172 (removal: 194,640 fewer)
    assert abs(tokens[1]["tokens"] - tokens[0]["tokens"]) <= 100  # of 935,372
    spares = {p.pair_id: p for ps in data.spares.values() for p in ps}
    same = {kind: [lengths(p) == lengths(spares[chosen[p.pair_id]]) for g in data.groups if g.kind == kind for p in g.items]
            for kind in ("ood", "id")}
    assert all(same["ood"]) and sum(same["id"]) >= 90  # canaries: all exact; ID pairs: 93 of 96 here
    removed = config.model_copy(update={"train": config.train.model_copy(update={"reference": "remove"})})
    assert total_steps(len(reference_training_stream(removed, data, lengths)[0]), one_pass, 1) == 188
