"""The MUSE experiments on a tiny model and a MUSE-News stand-in: the text learned, the evaluation's numbers against
MUSE's own formulas, PrivLeak against the retrained run or a given AUC, parts shared between methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import processors

from forgetlab.experiments import EXPERIMENTS, build_config, run_experiment
from forgetlab.data.muse import word_pieces
from forgetlab.experiments.muse import MuseDataSpec, holding_articles, load_sets
from forgetlab.experiments.muse.evaluate import privleak_scores
from forgetlab.metrics.muse import privleak
from forgetlab.models import byte_tokenizer, load_model
from forgetlab.scoring import Scorer
from forgetlab.store import RunStore
from tests.muse_stand_in import write_muse_news


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_muse_news(tmp_path_factory.mktemp("muse"))


def tiny_config(root: Path, **change: object) -> dict:
    config = {
        "experiment": "muse", "name": "muse_tiny", "cpu_threads": 1, "model": {"name": "tiny-llama"},
        "data": {"root": str(root), "source": "local", "retain_texts": 2, "chunk_words": 20},
        "finetune": {"lr": 1e-3, "epochs": 2, "batch_size": 4},
        "forget": {"method": "gradient_ascent", "lr": 1e-4, "epochs": 1, "batch_size": 4},
        "eval": {"batch_size": 4, "verbmem_new_tokens": 16, "knowmem_new_tokens": 8},
    }
    config.update(change)
    return config


def test_holding_articles_and_word_pieces() -> None:
    articles = ["alpha beta gamma", "delta epsilon", "zeta eta theta"]
    assert holding_articles(articles, ["theta", "beta", "iota", "iota"]) == ["alpha beta gamma", "zeta eta theta", "iota"]
    pieces = word_pieces(["one two\nthree  four five"], 2, "forget")
    assert [(p.pair_id, p.prompt, p.target) for p in pieces] == [
        ("forget-0-0", "", "one two"), ("forget-0-1", "", "three  four"), ("forget-0-2", "", "five")]


def test_sets_learn_the_articles_that_hold_the_evaluated_items(stand_in: Path) -> None:
    sets = load_sets(MuseDataSpec(root=str(stand_in), source="local", verbmem_items=1, privleak_texts=2, retain_texts=1))
    articles = load_sets(MuseDataSpec(root=str(stand_in), source="local", forget_text="all")).forget_text
    assert len(articles) == 6 and sets.forget_text == [articles[0], articles[1], articles[2]]  # privleak 0-1, verbmem in 2
    assert len(sets.privleak_forget) == len(sets.privleak_holdout) == 2 and len(sets.retain_text) == 1
    learned = load_sets(MuseDataSpec(root=str(stand_in), source="local", privleak_texts=2, verbmem_items=1, knowmem_forget="learned"))
    assert [q.answer for q in learned.knowmem_forget] == ["Reporter number 0", "Reporter number 1", "Reporter number 2"]


def test_min_k_of_a_text_equals_muse_on_a_tokenizer_with_bos() -> None:
    """``privleak.py``: ``input_ids = tokenizer.encode(text)`` (BOS first), every later token scored."""
    model, _ = load_model("tiny-llama")
    tokenizer = byte_tokenizer()
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    texts = ["The council passed the budget on Monday.", "A storm hit the city"]
    ours = privleak_scores(Scorer(model, tokenizer, batch_size=2, progress=False), texts, 0.4, "forget")
    for text, score in zip(texts, ours):
        input_ids = torch.tensor(tokenizer.encode(text)).unsqueeze(0)
        assert input_ids[0, 0] == bos
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids).logits, dim=-1)
        all_prob = [logprobs[0, i, t].item() for i, t in enumerate(input_ids[0][1:])]
        expected = -np.mean(np.sort(all_prob)[: int(len(all_prob) * 0.4)])
        assert score == pytest.approx(expected, rel=1e-5)


def test_muse_runs_share_parts_and_report_privleak(stand_in: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = run_experiment(build_config(tiny_config(stand_in)), runs)
    summary = run.summary()
    retrain = RunStore(runs).get(summary["runs"]["retrain"])
    auc_retrain = retrain.stage("eval")["metrics"]["privleak_auc"]
    assert summary["auc_retrain"] == auc_retrain and summary["retrain"]["privleak"] == 0.0
    assert "MUSE: target, unlearned and retrained model" in (run.dir / "report.html").read_text()
    after = run.stage("eval")["metrics"]
    assert summary["after"]["privleak"] == privleak(after["privleak_auc"], auc_retrain)
    assert set(summary["after"]) == {"verbmem", "knowmem_forget", "knowmem_retain", "privleak_auc", "privleak"}
    assert all(0 <= summary["after"][k] <= 100 for k in ("verbmem", "knowmem_forget", "knowmem_retain"))
    npo = run_experiment(build_config(tiny_config(stand_in, forget={"method": "npo", "lr": 1e-4, "epochs": 1, "batch_size": 4})), runs)
    assert npo.summary()["runs"] == summary["runs"] and npo.summary()["before"] == summary["before"]
    given = run_experiment(build_config(tiny_config(stand_in, reference_auc=0.4772)), runs).summary()
    assert given["after"]["privleak"] == pytest.approx((after["privleak_auc"] - 0.4772) / 0.4772 * 100)
    assert len(RunStore(runs).list()) == 5


def test_sweep_directions_and_bad_configs(stand_in: Path) -> None:
    experiment = EXPERIMENTS.get("muse")
    assert experiment.badness("after.privleak", -5.0) < experiment.badness("after.privleak", 20.0)
    assert experiment.badness("after.verbmem", 10.0) < experiment.badness("after.verbmem", 30.0)
    assert experiment.badness("after.knowmem_retain", 40.0) < experiment.badness("after.knowmem_retain", 30.0)
    with pytest.raises(KeyError, match="not a number of a muse summary"):
        experiment.badness("after.steps", 1)
    with pytest.raises(KeyError, match="forget.method"):
        experiment.validate(build_config(tiny_config(stand_in, forget={"method": "nope"})))
    with pytest.raises(ValueError, match="privleak_texts"):
        build_config(tiny_config(stand_in, data={"privleak_texts": 1}))


def test_verbmem_reference_is_cut_to_the_generated_length_bos_counted(stand_in: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MUSE: ``gt_ids = tokenizer(gt).input_ids[:, :max_new_tokens]``; OpenUnlearning (``full``) keeps the whole truth."""
    from forgetlab.experiments.muse import evaluate
    from forgetlab.experiments.muse.config import MuseEvalSpec

    tokenizer = byte_tokenizer()
    sets = load_sets(MuseDataSpec(root=str(stand_in), source="local"))
    sets.verbmem = sets.verbmem[:1]
    gt = sets.verbmem[0].gt
    monkeypatch.setattr(evaluate, "generate", lambda model, tok, prompts, n, b: [gt] * len(prompts))
    n = 11
    cut = tokenizer.decode(tokenizer(gt).input_ids[:n], skip_special_tokens=True)
    assert len(cut) < len(gt)
    score, _ = evaluate.verbmem(None, tokenizer, sets, MuseEvalSpec(verbmem_new_tokens=n))
    full, _ = evaluate.verbmem(None, tokenizer, sets, MuseEvalSpec(verbmem_new_tokens=n, verbmem_reference="full"))
    assert full == 100.0  # the output is the whole truth
    from forgetlab.metrics.rouge import rouge_l
    assert score == pytest.approx(float(rouge_l([gt], [cut], "fmeasure", stemmer=False)[0]) * 100) and score < 100.0
