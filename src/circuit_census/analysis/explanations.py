"""The four levels of identifiability side by side, per condition of a study.

Rows of an experiment with ``explanations = true`` carry, beside the valid circuits, the
interpretations of those circuits (in all, and the median per circuit), the formulas with
a valid mapping and their minimal mappings. Here they are summarised per condition over
the kept models: a table and one figure, a panel per level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from circuit_census.analysis.discovery import network_label
from circuit_census.analysis.rows import as_float, is_included, natural_key
from circuit_census.analysis.summaries import CountSummary

LEVELS = (
    ("n_valid", "valid circuits"),
    ("interpretations_total", "interpretations (all valid circuits)"),
    ("n_formulas", "algorithms (formulas with a valid mapping)"),
    ("minimal_mappings_total", "minimal mappings (all formulas)"),
)


@dataclass(frozen=True)
class ConditionLevels:
    """One condition's four levels over its kept models."""

    condition: str  # "2-3-1 xor"
    summaries: dict[str, CountSummary]
    interpretations_median: CountSummary  # the per-model median interpretations per circuit
    n_models: int


def has_explanations(rows: Sequence[Mapping[str, object]]) -> bool:
    return any(r.get("n_formulas") is not None for r in rows)


def by_condition(rows: Sequence[Mapping[str, object]]) -> dict[str, list[Mapping[str, object]]]:
    """The kept rows that carry explanations, per condition (network and task)."""
    groups: dict[str, list[Mapping[str, object]]] = {}
    for r in rows:
        if r.get("n_formulas") is not None and is_included(r):
            groups.setdefault(network_label(r), []).append(r)
    return groups


def condition_levels(rows: Sequence[Mapping[str, object]]) -> list[ConditionLevels]:
    """Per condition (network and task), the summaries of the four levels."""
    groups = by_condition(rows)
    out = []
    for label in sorted(groups, key=natural_key):
        group = groups[label]

        def values(name: str, group=group) -> list[float]:
            return [v for r in group if not math.isnan(v := as_float(r.get(name)))]

        out.append(
            ConditionLevels(
                condition=label,
                summaries={name: CountSummary.of(values(name)) for name, _ in LEVELS},
                interpretations_median=CountSummary.of(values("interpretations_median")),
                n_models=len(group),
            )
        )
    return out


def levels_figure(conditions: Sequence[ConditionLevels], rows) -> Figure:
    """One panel per level: the per-model values of each condition (box and points)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4), layout="constrained")
    labels = [c.condition for c in conditions]
    groups = by_condition(rows)
    for ax, (name, title) in zip(axes, LEVELS, strict=True):
        data = [[as_float(r.get(name)) for r in groups[c]] for c in labels]
        ax.boxplot(data, positions=range(len(labels)), widths=0.55, showfliers=False)
        rng = np.random.default_rng(0)
        for i, values in enumerate(data):
            ax.scatter(i + rng.uniform(-0.2, 0.2, len(values)), values, s=9, alpha=0.5)
        positive = [v for vs in data for v in vs if v > 0]
        if positive and max(positive) / min(positive) > 10:
            ax.set_yscale("symlog", linthresh=1)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, ha="right")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    fig.suptitle("Four levels of identifiability per condition (one point per converged model)")
    return fig
