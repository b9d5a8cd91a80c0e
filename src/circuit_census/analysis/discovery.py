"""Circuit discovery graded against the census: the study's descriptive table and figure.

Rows of an experiment with ``discovery = S`` carry, in ``measures["discovery"]``, every
method's summary over S seeds on that model (fraction of its circuits valid and minimal,
median size excess over the smallest valid circuit, distinct minimal circuits returned)
and, for the ranking methods, seed 0's faithfulness curve. Here they are pooled per
network (architecture and task) and method, over the kept models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from circuit_census.analysis.rows import as_float, is_included


@dataclass(frozen=True)
class DiscoveryRow:
    """One method on one kind of network, over its kept models."""

    network: str  # "2-4-1 xor"
    method: str
    n_models: int
    fraction_valid: float  # mean over models of the fraction of seeds returning a valid circuit
    fraction_minimal: float
    median_size_excess: float  # median over models of their median excess (edges)
    coverage: float  # mean share of a model's minimal circuits the method ever returned


def network_label(row: Mapping[str, object]) -> str:
    hidden = str(row.get("hidden", "?")).replace(",", "-")
    inputs, outputs = int(as_float(row.get("n_inputs"))), int(as_float(row.get("n_outputs")))
    return f"{inputs}-{hidden}-{outputs} {row.get('task', '?')}"


def _discovery(row: Mapping[str, object]) -> Mapping[str, object] | None:
    measures = row.get("measures")
    if not isinstance(measures, Mapping):
        return None
    found = measures.get("discovery")
    return found if isinstance(found, Mapping) else None


def has_discovery(rows: Sequence[Mapping[str, object]]) -> bool:
    return any(_discovery(r) is not None for r in rows)


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def discovery_table(rows: Sequence[Mapping[str, object]]) -> list[DiscoveryRow]:
    """Per network and method, pooled over the kept models that ran discovery."""
    groups: dict[tuple[str, str], list[Mapping[str, object]]] = {}
    for row in rows:
        found = _discovery(row)
        if found is None or not is_included(row):
            continue
        for method, entry in dict(found.get("methods", {})).items():
            groups.setdefault((network_label(row), method), []).append(entry)
    out = []
    for (network, method), entries in groups.items():

        def values(name: str, entries=entries) -> list[float]:
            return [as_float(e.get(name)) for e in entries]

        shares = [
            as_float(e.get("coverage")) / as_float(e.get("n_minimal"))
            if as_float(e.get("n_minimal")) > 0
            else math.nan
            for e in entries
        ]
        excess = [v for v in values("median_size_excess") if not math.isnan(v)]
        out.append(
            DiscoveryRow(
                network=network,
                method=method,
                n_models=len(entries),
                fraction_valid=_mean(values("fraction_valid")),
                fraction_minimal=_mean(values("fraction_minimal")),
                median_size_excess=float(np.median(excess)) if excess else math.nan,
                coverage=_mean(shares),
            )
        )
    return out


def faithfulness_figure(rows: Sequence[Mapping[str, object]]) -> Figure:
    """Per network: the share of models whose top-k circuit (by eap, eap-ig) is valid, for
    every k, beside the census's smallest valid circuit (median over models)."""
    import matplotlib.pyplot as plt

    curves: dict[str, dict[str, list[list]]] = {}
    smallest: dict[str, list[float]] = {}
    for row in rows:
        found = _discovery(row)
        if found is None or not is_included(row):
            continue
        label = network_label(row)
        for method, entry in dict(found.get("methods", {})).items():
            if "curve" in entry:
                curves.setdefault(label, {}).setdefault(method, []).append(entry["curve"])
        if found.get("census_smallest_valid") is not None:
            smallest.setdefault(label, []).append(float(found["census_smallest_valid"]))
    labels = sorted(curves)
    fig, axes = plt.subplots(
        1, max(1, len(labels)), figsize=(5 * max(1, len(labels)), 4.2), layout="constrained"
    )
    axes = np.atleast_1d(axes)
    for ax, label in zip(axes, labels, strict=False):
        for method, model_curves in sorted(curves[label].items()):
            length = max(len(c) for c in model_curves)
            share = [
                np.mean([c[k][2] if k < len(c) else c[-1][2] for c in model_curves])
                for k in range(length)
            ]
            ax.plot(range(1, length + 1), share, marker="o", markersize=3, label=method)
        if smallest.get(label):
            ax.axvline(
                float(np.median(smallest[label])),
                color="#555555",
                linestyle="--",
                label="smallest valid circuit (census, median)",
            )
        ax.set_ylim(-0.04, 1.04)
        ax.set_xlabel("k: top-ranked edges kept")
        ax.set_ylabel("share of models whose top-k circuit is valid")
        ax.set_title(f"{label} ({len(next(iter(curves[label].values())))} models)")
        ax.legend(fontsize=8, frameon=False, loc="upper left")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(color="#e5e5e5", linewidth=0.6)
    fig.suptitle("Faithfulness of edge rankings (EAP, EAP-IG) against the census's ground truth")
    return fig
