"""Figures of a discovery run: the faithfulness curves of a ranking method against the
census's smallest valid circuit, and the discovered circuit drawn on its network."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from circuit_census.circuits.space import CircuitSpace
from circuit_census.discovery.grading import DiscoveryReport, FaithfulnessCurve
from circuit_census.discovery.patching import flags_to_masks
from circuit_census.measures.drawing import circuit_caption, plot_circuit
from circuit_census.measures.figures import save_figure
from circuit_census.network import Network


def plot_faithfulness(
    curves: Sequence[FaithfulnessCurve], threshold: float | None, title: str
) -> Figure:
    """The mse of every top-k circuit against k (one line per seed; filled markers where
    the circuit is valid), the validity threshold, and the census's smallest valid
    circuit as a vertical line (its size in edges)."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for number, curve in enumerate(curves):
        k = np.array([p.k for p in curve.points])
        mse = np.array([p.mse for p in curve.points])
        valid = np.array([p.valid for p in curve.points])
        (line,) = ax.plot(k, mse, lw=1.2, alpha=0.8, label=f"seed {number}" if number < 6 else None)
        ax.plot(k[valid], mse[valid], "o", ms=4, color=line.get_color())
        ax.plot(k[~valid], mse[~valid], "o", ms=4, mfc="none", color=line.get_color())
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=0.8, label="validity threshold")
    smallest = next((c.census_smallest_valid for c in curves if c.census_smallest_valid), None)
    if smallest is not None:
        ax.axvline(
            smallest, color="tab:red", ls=":", lw=1.2, label="smallest valid circuit (edges)"
        )
    ax.plot([], [], "o", ms=4, color="gray", label="valid top-k circuit")
    ax.plot([], [], "o", ms=4, mfc="none", color="gray", label="not valid (or not a circuit)")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("k (top-k edges by score)")
    ax.set_ylabel("mse against the full model")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def write_discovery_figures(
    report: DiscoveryReport, network: Network, out_dir: Path | str
) -> list[Path]:
    """Write ``discovered_circuit`` (seed 0's circuit on the network) and, for ranking
    methods, ``faithfulness`` into ``out_dir`` as PNG and SVG; return the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    first = report.runs[0]
    space = CircuitSpace(network.sizes)
    masks = [m.astype(np.uint8) for m in flags_to_masks(space, first.discovered.flags)]
    caption = circuit_caption([m.astype(bool) for m in masks], network.sizes)
    fig = plot_circuit(network, masks, space, title=f"{report.method} (seed 0): {caption}")
    paths = save_figure(fig, out_dir, "discovered_circuit")
    curves = [r.curve for r in report.runs if r.curve is not None]
    if curves:
        threshold = report.settings.threshold if report.settings.criterion == "mse" else None
        title = f"{report.method} faithfulness ({report.settings.ablation} ablation)"
        paths += save_figure(plot_faithfulness(curves, threshold, title), out_dir, "faithfulness")
    return paths
