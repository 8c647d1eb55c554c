"""The unlearning runs of an ``id_vs_ood`` run: one per forget group and batch size, and one per
memorization / difficulty tercile of the groups named in ``buckets.groups`` (from the baseline scores)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from forgetlab.data.canaries import GroupKind
from forgetlab.data.types import Pair
from forgetlab.experiments.id_vs_ood.config import IdVsOodConfig
from forgetlab.experiments.id_vs_ood.data import IdVsOodData
from forgetlab.metrics.memorization import (
    DIFFICULTY_LABELS,
    MEMORIZATION_LABELS,
    difficulty,
    difficulty_terciles,
    memorization,
    memorization_terciles,
)

TERCILE_LABELS = {"memorization": MEMORIZATION_LABELS, "difficulty": DIFFICULTY_LABELS}  # per bucket factor, lowest first


@dataclass
class Job:
    """One unlearning run: a forget group (or one tercile of it) at one batch size."""

    key: str
    group: str
    kind: GroupKind
    repetitions: int
    batch_size: int
    items: list[Pair]
    ll_original: np.ndarray
    ll_reference: np.ndarray
    bucket: str | None = None


def item_factors(scores: dict[str, Any], name: str) -> dict[str, Any]:
    """Per item of a group: log-likelihoods, memorization, difficulty and their terciles."""
    ll_o = np.asarray(scores["original"]["groups"][name][0])
    ll_r, n = (np.asarray(v) for v in scores["reference"]["groups"][name])
    mem, diff = memorization(ll_o, ll_r), difficulty(ll_r, n)
    return {
        "ll_original": ll_o.tolist(), "ll_reference": ll_r.tolist(), "n_tokens": n.astype(int).tolist(),
        "memorization": mem.tolist(), "difficulty": diff.tolist(),
        "memorization_bucket": memorization_terciles(mem), "difficulty_bucket": difficulty_terciles(diff),
    }


def unlearning_jobs(config: IdVsOodConfig, data: IdVsOodData, baseline: dict[str, Any]) -> list[Job]:
    """Every group at every batch size (keys ``<group>`` or ``<group>@bs<size>``), then the buckets."""
    return _group_jobs(config, data, baseline) + _bucket_jobs(config, data, baseline)


def _group_jobs(config: IdVsOodConfig, data: IdVsOodData, baseline: dict[str, Any]) -> list[Job]:
    sizes = config.unlearn.sizes()
    jobs = []
    for group in data.groups:
        ll_o, ll_r = _group_ll(baseline, group.name)
        for size in sizes:
            key = group.name if len(sizes) == 1 else f"{group.name}@bs{size}"
            jobs.append(Job(key, group.name, group.kind, group.repetitions, size, group.items, ll_o, ll_r))
    return jobs


def _bucket_jobs(config: IdVsOodConfig, data: IdVsOodData, baseline: dict[str, Any]) -> list[Job]:
    """Per tercile (key ``<group>/<factor>_<label>``) at the first batch size; empty terciles are skipped."""
    jobs = []
    size = config.unlearn.sizes()[0]
    for name in config.buckets.groups:
        group = data.group(name)
        ll_o, ll_r = _group_ll(baseline, name)
        factors = item_factors(baseline["scores"], name)
        for factor in config.buckets.factors:
            labels = factors[f"{factor}_bucket"]
            for label in TERCILE_LABELS[factor]:
                index = [i for i, lab in enumerate(labels) if lab == label]
                if not index:
                    continue
                jobs.append(Job(
                    f"{name}/{factor}_{label}", name, group.kind, group.repetitions, size,
                    [group.items[i] for i in index], ll_o[index], ll_r[index], bucket=f"{factor}_{label}",
                ))
    return jobs


def _group_ll(baseline: dict[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    scores = baseline["scores"]
    return np.asarray(scores["original"]["groups"][name][0]), np.asarray(scores["reference"]["groups"][name][0])
