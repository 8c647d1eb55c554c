"""Study B's headline numbers from the finished stages: ``summary.json`` and the paper's findings.

Pure functions of the stage payloads of an ``id_vs_ood`` run (no models, no clock), so the same stages
always give the same summary.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from forgetlab.data.canaries import ForgetGroup, GroupKind, group_name
from forgetlab.experiments.id_vs_ood.config import IdVsOodConfig
from forgetlab.experiments.id_vs_ood.data import IdVsOodData
from forgetlab.experiments.id_vs_ood.jobs import TERCILE_LABELS, Job, item_factors
from forgetlab.experiments.id_vs_ood.stopping import Criterion, unseen_exposure
from forgetlab.metrics.exposure import LOG2_E, Convention, expected_unseen_exposure, exposure_rank, fit_skewnorm
from forgetlab.stats import bootstrap_ci

TRAINING_KEYS = ("steps", "items", "forget_items", "stand_in_items", "tokens", "target_tokens")


def summarize(
    config: IdVsOodConfig, run_id: str, data: IdVsOodData, training: dict[str, dict[str, Any]], baseline: dict[str, Any],
    jobs: Sequence[Job], results: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The run's headline numbers: per group steps to unlearn, utility, exposure/GenEx before and after, findings.

    Deterministic given the stages (no wall-clock times: those are in ``timings.json``).
    """
    scores = baseline["scores"]
    before = {g.name: group_before(g, scores, config.eval.exposure) for g in data.groups}
    rows = {job.key: job_summary(job, results[job.key]) for job in jobs}
    main = {k: v for k, v in rows.items() if v["bucket"] is None}
    buckets = {k: v for k, v in rows.items() if v["bucket"] is not None}
    return {
        "experiment": config.experiment,
        "run": run_id,
        "model": config.model.name,
        "parameters": baseline["parameters"],
        "vocab_size": baseline["vocab_size"],
        "sizes": {
            "train": len(data.base), "per_group": config.groups.per_group, "references": len(data.references),
            "unseen": len(data.unseen), "test": len(data.test), "utility": config.eval.utility_size,
            "bleu": config.eval.bleu_size,
        },
        "training": {role: {k: training[role][k] for k in TRAINING_KEYS if k in training[role]} for role in training},
        "reference_stream": config.train.reference,
        "exposure_convention": config.eval.exposure,
        "exposure_baselines": exposure_baselines(scores, len(data.references), config.eval.exposure),
        "genex_offsets": genex_offsets(scores, config.seed),
        "before": before,
        "utility_before": {role: scores[role]["utility"] for role in ("original", "reference")},
        "groups": main,
        "buckets": buckets,
        "findings": findings(config, before, main, buckets, results),
    }


def exposure_baselines(
    scores: dict[str, Any], n_references: int, convention: Convention = "forgetlab"
) -> dict[str, float | None]:
    """The never-seen canary exposure: theory (log2 e), exact finite-N expectation, measured on the unseen canaries."""
    out: dict[str, float | None] = {
        "theory_log2e": LOG2_E, "expected_finite_n": expected_unseen_exposure(n_references, convention)
    }
    for role in ("original", "reference"):
        out[f"unseen_{role}"] = unseen_exposure(scores[role], convention)
    return out


def genex_offsets(scores: dict[str, Any], seed: int = 0) -> dict[str, dict[str, float] | None]:
    """``ll_original - ll_reference`` on items NEITHER model trained on (test pairs, unseen canaries): the part
    of GenEx that is not memorization (more training, knowledge of the canary format, run-to-run noise).

    Per item kind: ``mean`` (nats), the 95 % percentile-bootstrap interval of the mean over items
    (``ci_low``, ``ci_high``; 10,000 resamples seeded with ``seed``) and ``n``; None without items.
    """
    out: dict[str, dict[str, float] | None] = {}
    for name, key in (("test_pairs", "test"), ("unseen_canaries", "unseen")):
        diff = np.asarray(scores["original"][key][0]) - np.asarray(scores["reference"][key][0])
        interval = bootstrap_ci(diff, n_resamples=10_000, seed=seed)
        out[name] = None if interval is None else {
            "mean": float(diff.mean()), "ci_low": interval[0], "ci_high": interval[1], "n": int(diff.size),
        }
    return out


def group_before(group: ForgetGroup, scores: dict[str, Any], convention: Convention = "forgetlab") -> dict[str, Any]:
    """A group before unlearning: likelihoods, memorization, difficulty, exposure under both models."""
    factors = item_factors(scores, group.name)
    out: dict[str, Any] = {
        "kind": group.kind, "repetitions": group.repetitions, "n_items": len(group.items),
        "ll_original_mean": float(np.mean(factors["ll_original"])), "ll_reference_mean": float(np.mean(factors["ll_reference"])),
        "memorization_mean": float(np.mean(factors["memorization"])), "difficulty_mean": float(np.mean(factors["difficulty"])),
    }
    if group.kind.has_references:
        for role in ("original", "reference"):
            refs = -np.asarray(scores[role]["references"][0])
            logppl = -np.asarray(scores[role]["groups"][group.name][0])
            out[f"exposure_{role}"] = float(exposure_rank(logppl, refs, convention).mean())
            out[f"exposure_extrapolated_{role}"] = float(fit_skewnorm(refs).exposure(logppl).mean())
    return out


def utility_lost(before: dict[str, float], at: dict[str, float]) -> dict[str, float]:
    """Positive = utility lost: loss increase, BLEU and exact-match decrease."""
    out = {"loss": at["loss"] - before["loss"]}
    for key in ("bleu", "exact_match"):
        if key in before and key in at:
            out[key] = before[key] - at[key]
    return out


def _prefixed(values: dict[str, float], prefix: str) -> dict[str, float]:
    return {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}


def job_summary(job: Job, payload: dict[str, Any]) -> dict[str, Any]:
    """One unlearning run in the summary (a diverged run: its status and error only)."""
    head = {
        "group": job.group, "kind": job.kind, "repetitions": job.repetitions, "batch_size": job.batch_size,
        "bucket": job.bucket, "n_items": len(job.items), "status": payload["status"],
    }
    if payload["status"] != "ok":
        return {**head, "error": payload["error"], "last_finite_step": payload["steps"]}
    history = payload["history"]
    first, last = history[0], history[-1]
    at = payload["first_met"][payload["primary"]]
    at_entry = next((h for h in history if h["step"] == at), None)
    out = {
        **head, "stop_reason": payload["stop_reason"], "steps_run": last["step"], "criterion": payload["primary"],
        "steps_to_unlearn": at, "unlearned": at is not None, "steps_to_unlearn_by": payload["first_met"],
        "exposure_baseline": payload["exposure_baseline"], "exposure_tolerance": payload.get("exposure_tolerance", 0.0),
        "utility_before": first["test"], "utility_at_unlearned": at_entry["test"] if at_entry else None,
        "utility_after": last["test"], "utility_lost": utility_lost(first["test"], (at_entry or last)["test"]),
        "utility_lost_at": "unlearned" if at_entry else "end",
        "forget_loss_before": first["forget"]["loss"], "forget_loss_after": last["forget"]["loss"],
        "genex_before": _prefixed(first["forget"], "genex_"), "genex_after": _prefixed(last["forget"], "genex_"),
        "relexp_rank_before": first["forget"]["relexp_rank_mean"], "relexp_rank_after": last["forget"]["relexp_rank_mean"],
        "relexp_change_after": last["forget"]["relexp_change_mean"], "nearby": payload["nearby"],
    }
    if job.kind.has_references:
        for label, entry in (("before", first), ("after", last)):
            out[f"exposure_{label}"] = {
                "mean": entry["forget"]["exposure_mean"], "extrapolated_mean": entry["forget"].get("exposure_extrapolated_mean"),
            }
    return out


def _later(first: int | None, second: int | None) -> bool | None:
    """Whether ``first`` comes after ``second`` (None = never reached = infinitely late; both None: unknown)."""
    if first is None and second is None:
        return None
    inf = float("inf")
    return (inf if first is None else first) > (inf if second is None else second)


def _loss_at(history: list[dict[str, Any]], step: int | None) -> float:
    """Held-out loss at the last evaluation at or before ``step`` (the last one when ``step`` is None)."""
    entries = [h for h in history if step is None or h["step"] <= step]
    return entries[-1]["test"]["loss"]


def compare_ood_id(ood: dict[str, Any], idd: dict[str, Any]) -> dict[str, Any]:
    """The paper's three claims for one repetition count, with GenEx <= 0 as the common unlearning criterion.

    * more steps: OOD's first step with mean GenEx <= 0 is later than ID's (never = infinitely late);
      also reported with OOD's own criterion, exposure at the baseline, against ID's GenEx <= 0;
    * better trade-off: held-out loss gained per nat of mean GenEx removed, up to the unlearned point
      (or the end of the run), is lower for OOD;
    * faster utility decay: held-out loss gained per step over the steps both runs have is higher for ID.
    """
    payloads = {"ood": ood, "id": idd}
    steps = {name: p["first_met"][Criterion.GENEX_ZERO] for name, p in payloads.items()}
    ood_steps_exposure = ood["first_met"].get(Criterion.EXPOSURE_BASELINE)
    out: dict[str, Any] = {
        "ood_steps_genex": steps["ood"], "id_steps_genex": steps["id"], "ood_steps_exposure": ood_steps_exposure,
        "ood_needs_more_steps": _later(steps["ood"], steps["id"]),
        "ood_needs_more_steps_exposure_vs_genex": _later(ood_steps_exposure, steps["id"]),
    }
    cost = {}
    for name, payload in payloads.items():
        history = payload["history"]
        at = [h for h in history if steps[name] is None or h["step"] <= steps[name]][-1]
        gained = at["test"]["loss"] - history[0]["test"]["loss"]
        removed = history[0]["forget"]["genex_mean"] - at["forget"]["genex_mean"]
        cost[name] = gained / removed if removed > 0 else None
        out[f"{name}_loss_increase_at_unlearned"] = gained
        out[f"{name}_loss_per_nat_genex_removed"] = cost[name]
    out["ood_better_tradeoff"] = cost["ood"] < cost["id"] if None not in cost.values() else None
    common = min(ood["history"][-1]["step"], idd["history"][-1]["step"])
    rate = {name: (_loss_at(p["history"], common) - p["history"][0]["test"]["loss"]) / common if common else None
            for name, p in payloads.items()}
    out.update({f"{name}_loss_increase_per_step": r for name, r in rate.items()}, common_steps=common)
    out["id_decays_utility_faster"] = rate["id"] > rate["ood"] if common else None
    return out


def findings(
    config: IdVsOodConfig, before: dict[str, Any], main: dict[str, Any], buckets: dict[str, Any], results: dict[str, Any]
) -> dict[str, Any]:
    """Whether the run shows what the paper reports (each claim with the numbers behind it)."""
    size = config.unlearn.sizes()[0]
    key_of = {(v["kind"], v["repetitions"]): k for k, v in main.items() if v["batch_size"] == size and v["status"] == "ok"}
    out: dict[str, Any] = {}
    reps = sorted(config.groups.repetitions)
    canaries = {r: group_name(GroupKind.OOD, r) for r in reps}
    ood_exposure = {r: before[name]["exposure_original"] for r, name in canaries.items() if name in before}
    if ood_exposure:
        ordered = list(ood_exposure.values())
        out["exposure_before_by_repetitions"] = {str(r): v for r, v in ood_exposure.items()}
        out["exposure_rises_with_repetitions"] = all(b >= a for a, b in zip(ordered, ordered[1:]))
        out["exposure_most_minus_least_repeated"] = ordered[-1] - ordered[0]
    ok = {k: v for k, v in main.items() if v["status"] == "ok"}
    exposed = {k: v for k, v in ok.items() if v["kind"].has_references}
    out["exposure_fell"] = {k: v["exposure_after"]["mean"] < v["exposure_before"]["mean"] for k, v in exposed.items()}
    out["genex_fell"] = {k: v["genex_after"]["mean"] < v["genex_before"]["mean"] for k, v in ok.items()}
    per_rep = {
        str(r): compare_ood_id(results[key_of[(GroupKind.OOD, r)]], results[key_of[(GroupKind.ID, r)]])
        for r in config.groups.repetitions if (GroupKind.OOD, r) in key_of and (GroupKind.ID, r) in key_of
    }
    out["ood_vs_id"] = per_rep
    claims = ("ood_needs_more_steps", "ood_needs_more_steps_exposure_vs_genex", "ood_better_tradeoff", "id_decays_utility_faster")
    for claim in claims:
        votes = [v[claim] for v in per_rep.values() if v[claim] is not None]
        out[claim] = sum(votes) > len(votes) / 2 if votes else None
        out[f"{claim}_votes"] = f"{sum(votes)}/{len(votes)}"
    out["buckets"] = bucket_findings(buckets)
    return out


def bucket_findings(buckets: dict[str, Any]) -> dict[str, Any]:
    """Per (group, factor): utility lost and cost per nat of GenEx removed, by tercile; the paper's comparisons."""
    table: dict[str, dict[str, Any]] = {}
    for row in buckets.values():
        if row["status"] != "ok":
            continue
        factor, label = row["bucket"].split("_", 1)
        removed = row["genex_before"]["mean"] - (row["genex_after"]["mean"])
        cost = row["utility_lost"]["loss"] / removed if removed > 0 else None
        table.setdefault(f"{row['group']}/{factor}", {})[label] = {
            "steps_to_unlearn": row["steps_to_unlearn"], "utility_lost_loss": row["utility_lost"]["loss"],
            "loss_per_nat_genex_removed": cost,
        }
    for name, labels in table.items():
        order = TERCILE_LABELS[name.rsplit("/", 1)[1]]
        low, high = order[0], order[-1]
        if low in labels and high in labels:
            labels[f"{high}_hurts_utility_more"] = labels[high]["utility_lost_loss"] > labels[low]["utility_lost_loss"]
            costs = labels[high]["loss_per_nat_genex_removed"], labels[low]["loss_per_nat_genex_removed"]
            labels[f"{high}_trades_off_better"] = costs[0] < costs[1] if None not in costs else None
    return table
