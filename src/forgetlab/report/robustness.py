"""The "Robustness" part of any experiment's report (its ``summary.robustness``, or one per task or group):
recovery of each headline metric under each attack, with the raw values, intervals and controls; figures of
recovery against relearning steps, of quantization, and of the logit lens per layer."""

from __future__ import annotations

import re
from typing import Any, Sequence

from forgetlab.report.context import ReportContext
from forgetlab.report.page import Page, esc
from forgetlab.report.plots import legend, plt, text

STEP = re.compile(r"^(?P<data>\w+)_step(?P<k>\d+)$")
LAYER = re.compile(r"^layer(?P<i>\d+)$")
TITLE = "Robustness: does the forgotten knowledge come back?"


def robustness(page: Page, context: ReportContext) -> None:
    """The section of a run whose summary has one ``robustness`` (the workbench, an attack run)."""
    if has_robustness(context.summary.get("robustness")):
        page.section("robustness", TITLE)
        robustness_part(page, context, ["robustness"], "")


def has_robustness(found: Any) -> bool:
    """Whether ``found`` is a robustness summary with attacks."""
    return isinstance(found, dict) and bool(found.get("attacks"))


def robustness_part(page: Page, context: ReportContext, path: Sequence[str], name: str, shown: Sequence[str] | None = None) -> None:
    """Recovery = (attacked − forgotten) / (original − forgotten) per attack, variant and metric, for the
    robustness summary at ``path`` in the run's summary; figures named ``robustness_<name><label>``, with a
    line for each of ``shown`` (default: every headline metric, at most four)."""
    found = context.summary
    for key in path:
        found = found[key]
    shown = list(shown or found.get("metrics", [])[:4])
    page.add("<p>Recovery = (m<sub>attacked</sub> − m<sub>forgotten</sub>) / (m<sub>original</sub> − m<sub>forgotten</sub>): "
             "0 = nothing came back, 1 = all of it; — when forgetting did not move the metric beyond noise (the 95 % "
             "interval of original − forgotten contains 0). Controls: the same attack on the original model "
             "(quantization) or on a model that never learned the forget set (relearning).</p>")
    for label, attack in found["attacks"].items():
        _attack_table(page, list(path), label, attack)
    _figures(page, context, found["attacks"], name, shown)


def _attack_table(page: Page, path: list[str], label: str, attack: dict[str, Any]) -> None:
    for role, why in (attack.get("diverged") or {}).items():
        page.note(f"{label}: the {role.replace('_', ' ')} model diverged under this attack (no numbers recorded): {why}")
    rows = []
    for variant, metrics in attack["variants"].items():
        for key, row in metrics.items():
            if not isinstance(row, dict) or "recovery" not in row:
                continue  # a read-out (logit lens): its figure shows it
            base = [*path, "attacks", label, "variants", variant, key]
            control = next((name for name in row if name.startswith("control_")), None)
            rows.append([esc(variant), esc(key), page.value([*base, "forgotten"]), page.value([*base, "attacked"]),
                         page.value([*base, "original"]), page.value([*base, "difference"]) + page.interval([*base, "difference_ci"]),
                         page.value([*base, "recovery"]),
                         page.value([*base, control, "difference"]) if control else "—"])
    if rows:
        page.add(f"<h3>{esc(label)}: {esc(attack['name'])} {esc(attack.get('options') or '')}</h3>")
        page.table(["variant", "metric", "forgotten", "attacked", "original", "attacked − forgotten [95 % CI]",
                    "recovery", "control: attacked − before"], rows, numeric_from=2)


def _figures(page: Page, context: ReportContext, attacks: dict[str, Any], name: str, shown: list[str]) -> None:
    for label, attack in attacks.items():
        variants, figure = attack["variants"], f"robustness_{name}{label}"
        steps = {v: m for v, m in variants.items() if STEP.match(v)}
        layers = {v: m for v, m in variants.items() if LAYER.match(v)}
        if steps:
            context.figure(page, _plot_relearning(steps, shown), figure, f"{name}{label}: recovery against relearning steps")
        elif layers:
            context.figure(page, _plot_lens(layers), figure, f"{name}{label}: the forget set read off each layer, for each model")
        elif variants:
            context.figure(page, _plot_bars(variants, shown), figure, f"{name}{label}: recovery per variant")


def _recoveries(variants: dict[str, Any], key: str) -> list[tuple[str, float]]:
    return [(v, m[key]["recovery"]) for v, m in variants.items() if key in m and m[key]["recovery"] is not None]


def _control_share(variants: dict[str, Any], key: str) -> list[tuple[int, float]]:
    """The control's change under the attack as a share of what forgetting removed: (step, share)."""
    out = []
    for variant, metrics in variants.items():
        row = metrics.get(key) or {}
        control = row.get("control_never_learned")
        if control and row.get("recovery") is not None and row["removed"]:
            out.append((int(STEP.match(variant)["k"]), control["difference"] / row["removed"]))
    return out


def _plot_relearning(variants: dict[str, Any], shown: list[str]) -> Any:
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for key in shown:
        points = sorted((int(STEP.match(v)["k"]), r) for v, r in _recoveries(variants, key))
        if not points:
            continue
        line = ax.plot(*zip(*points), marker="o", markersize=3, label=text(key))[0]
        control = sorted(_control_share(variants, key))
        if control:  # the same steps on a model that never learned the forget set, on the same scale
            ax.plot(*zip(*control), linestyle="--", color=line.get_color(), label=f"{text(key)}: control")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axhline(1, color="grey", linestyle="--", linewidth=0.8, label="all recovered")
    ax.set(xlabel="relearning steps", ylabel="recovery", title="Relearning")
    legend(ax)
    return fig


def _plot_bars(variants: dict[str, Any], shown: list[str]) -> Any:
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    keys = [k for k in shown if _recoveries(variants, k)]
    width = 0.8 / max(len(keys), 1)
    for i, key in enumerate(keys):
        found = dict(_recoveries(variants, key))
        positions = [j + i * width for j, v in enumerate(variants) if v in found]
        ax.bar(positions, [found[v] for v in variants if v in found], width=width, label=text(key))
    ax.set_xticks([j + width * (len(keys) - 1) / 2 for j in range(len(variants))], [text(v) for v in variants])
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(ylabel="recovery", title="Recovery per variant")
    legend(ax)
    return fig


#: The values a per-layer read-out reports, and how its figure labels them.
READ_OUTS = {"lens_logprob": "log p(forget target) per token", "lens_acc": "forget-set accuracy (logit lens)",
             "probe_acc": "probe accuracy on the test texts", "question_acc": "probe: gold answer ranked first"}


def _plot_lens(variants: dict[str, Any]) -> Any:
    ordered = sorted(variants, key=lambda v: int(LAYER.match(v)["i"]))
    roles = sorted({role for v in ordered for role in variants[v]})
    values = [k for k in READ_OUTS if all(variants[v][role].get(k) is not None for v in ordered for role in roles)]
    if not values:
        return None
    fig, axes = plt.subplots(1, len(values), figsize=(5.2 * len(values), 3.6), squeeze=False)
    for ax, value in zip(axes[0], values):
        for role in roles:
            ax.plot([int(LAYER.match(v)["i"]) for v in ordered], [variants[v][role][value] for v in ordered],
                    marker="o", markersize=3, label=role.replace("_", " "))
        ax.set(xlabel="layer", ylabel=READ_OUTS[value], title="Read off each layer")
        legend(ax)
    return fig
