"""Figures of one census: node and edge frequencies, valid circuits by size, and the whole
set written for a census result (with the circuit drawings of :mod:`.drawing`).

Every ``plot_*`` function takes data and returns a Matplotlib :class:`~matplotlib.figure.
Figure`; :func:`save_figure` writes it as PNG and SVG atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from circuit_census.circuits.space import CircuitSpace, popcount
from circuit_census.errors import InputError
from circuit_census.files import atomic_write
from circuit_census.measures.uniqueness import Measures

if TYPE_CHECKING:  # pragma: no cover
    from circuit_census.circuits.census import CensusResult
    from circuit_census.measures.tally import CircuitTally

from circuit_census.measures.drawing import (
    FIGURE_DPI,
    FREQ_CMAP,
    MAX_ANNOTATED_CELLS,
    circuit_caption,
    draw_circuit,
    node_label,
    plot_circuit,
    plot_minimal_grid,
)


def _annotate(
    ax: Axes,
    values: np.ndarray,
    norm: Normalize,
    names: list[list[str | None]] | None = None,
    size: float = 8,
) -> None:
    """Write each cell's value (and name) on a heat map; skip cells named None."""
    if values.size > MAX_ANNOTATED_CELLS:
        return
    for (r, c), v in np.ndenumerate(values):
        if names is not None and names[r][c] is None:
            continue
        label = "n/a" if not np.isfinite(v) else f"{v:.2f}"
        if names is not None:
            label = f"{names[r][c]}\n{label}"
        dark = np.isfinite(v) and norm(v) < 0.6
        ax.text(
            c,
            r,
            label,
            ha="center",
            va="center",
            fontsize=size,
            color="white" if dark else "black",
        )


def _heat(ax: Axes, values: np.ndarray, present: np.ndarray, norm: Normalize):
    """A heat map of ``values`` where ``present``; NaN cells grey, absent cells blank."""
    ax.imshow(
        np.where(present & np.isnan(values), 1.0, np.nan),
        cmap=ListedColormap(["#d9d9d9"]),
        aspect="equal",
        origin="upper",
    )
    return ax.imshow(
        np.ma.masked_invalid(np.where(present, values, np.nan)),
        cmap=FREQ_CMAP,
        norm=norm,
        aspect="equal",
        origin="upper",
    )


def plot_frequency_heatmap(
    measures: Measures, space: CircuitSpace, *, output: int | None = None
) -> Figure:
    """How often each node and each edge appears across the valid circuits.

    Left, the nodes laid out like the network (one column per layer, inputs left); then
    one heat map per weight layer ``W_l`` (receivers down, senders across), each cell
    annotated with its fraction. Grey cells: undefined (no valid circuits)."""
    return plot_frequencies(
        measures.edge_frequency, measures.node_frequency, measures.n_valid, space, output=output
    )


def plot_frequencies(
    edge_frequency: list[np.ndarray],
    node_frequency: list[np.ndarray],
    n_valid: int,
    space: CircuitSpace,
    *,
    output: int | None = None,
    how: str = "",
) -> Figure:
    """The heat maps of :func:`plot_frequency_heatmap` from the frequencies themselves
    (``how``: a note for the title, such as how they were counted)."""
    sizes = space.sizes
    n_layers = space.n_layers
    norm = Normalize(0.0, 1.0)
    rows = max(sizes)
    # Nodes: rows = neuron index, columns = layers.
    node_vals = np.full((rows, n_layers + 1), np.nan)
    node_present = np.zeros_like(node_vals, dtype=bool)
    names: list[list[str | None]] = [[None] * (n_layers + 1) for _ in range(rows)]
    for layer, n in enumerate(sizes):
        node_vals[:n, layer] = np.asarray(node_frequency[layer], dtype=float)
        node_present[:n, layer] = True
        for i in range(n):
            names[i][layer] = node_label(layer, i, n_layers, output)
    cols = [n_layers + 1] + [sizes[layer] for layer in range(n_layers)]
    cell = 0.62
    width = sum(c * cell + 0.9 for c in cols) + 1.3
    fig = Figure(figsize=(max(width, 6.0), rows * cell + 2.0), layout="constrained")
    axes = fig.subplots(1, len(cols), width_ratios=cols)
    ax = axes[0]
    image = _heat(ax, node_vals, node_present, norm)
    _annotate(ax, node_vals, norm, names=names, size=7)
    layer_names = ["in"] + [f"h{k}" for k in range(1, n_layers)] + ["out"]
    ax.set_xticks(range(n_layers + 1), layer_names, fontsize=8)
    ax.set_yticks([])
    ax.set_title("nodes", fontsize=10)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    for layer in range(n_layers):
        ax = axes[layer + 1]
        freq = np.asarray(edge_frequency[layer], dtype=float)
        _heat(ax, freq, np.ones(freq.shape, dtype=bool), norm)
        _annotate(ax, freq, norm, size=7.5)
        senders = [node_label(layer, i, n_layers, output) for i in range(sizes[layer])]
        receivers = [node_label(layer + 1, j, n_layers, output) for j in range(sizes[layer + 1])]
        ax.set_xticks(range(len(senders)), senders, fontsize=8)
        ax.set_yticks(range(len(receivers)), receivers, fontsize=8)
        ax.set_xlabel("from", fontsize=8)
        ax.set_ylabel("to", fontsize=8)
        ax.set_title(f"edges W{layer + 1}", fontsize=10)
        ax.tick_params(length=0)
    bar = fig.colorbar(image, ax=list(axes), shrink=0.9, pad=0.02, aspect=25)
    bar.set_label("fraction of valid circuits", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle(
        f"node and edge frequency across {n_valid:,} valid "
        f"{'circuit' if n_valid == 1 else 'circuits'}{how}",
        fontsize=11,
    )
    return fig


def plot_size_distribution(
    valid: np.ndarray,
    space: CircuitSpace,
    *,
    minimal: np.ndarray | None = None,
    title: str | None = None,
) -> Figure:
    """Number of valid circuits by size (edges); minimal circuits marked when given."""
    sizes = popcount(np.asarray(valid, dtype=np.uint64).reshape(-1, space.n_words))
    counts = np.bincount(sizes, minlength=space.n_edges + 1)
    min_counts = None
    if minimal is not None:
        msizes = popcount(np.asarray(minimal, dtype=np.uint64).reshape(-1, space.n_words))
        min_counts = np.bincount(msizes, minlength=space.n_edges + 1)
    n_min = "" if minimal is None else f", {int(np.asarray(minimal).shape[0]):,} minimal"
    title = title or f"valid circuits by size ({int(sizes.size):,} valid{n_min})"
    return plot_size_counts(counts, space, min_counts=min_counts, title=title)


def plot_size_counts(
    counts: np.ndarray,
    space: CircuitSpace,
    *,
    min_counts: np.ndarray | None = None,
    title: str = "valid circuits by size",
) -> Figure:
    """Number of valid circuits by size from the counts themselves (``counts[k]``: valid
    circuits with ``k`` edges), minimal circuits' counts marked when given."""
    counts = np.asarray(counts)
    present = np.flatnonzero(counts)
    fig = Figure(figsize=(max(6.0, 0.28 * space.n_edges + 2.5), 4.0), layout="constrained")
    ax = fig.add_subplot()
    ks = np.arange(space.n_edges + 1)
    if present.size == 0:
        ax.text(0.5, 0.5, "no valid circuits", ha="center", va="center", transform=ax.transAxes)
        lo, hi = 0, space.n_edges
    else:
        lo, hi = int(present[0]), int(present[-1])
        ax.bar(ks, counts, width=0.8, color="#6c8ebf", label="valid circuits", zorder=2)
        if min_counts is not None and min_counts.any():
            ax.bar(
                ks,
                min_counts,
                width=0.45,
                color="#e8871e",
                label="minimal circuits",
                zorder=3,
            )
        nonzero = counts[counts > 0]
        if nonzero.max() / nonzero.min() > 200:
            ax.set_yscale("log")
        if hi - lo <= 40:
            for k in range(lo, hi + 1):
                if counts[k]:
                    ax.annotate(
                        f"{counts[k]:,}",
                        (k, counts[k]),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
        ax.legend(fontsize=8, frameon=False, loc="upper left")
        ax.margins(y=0.15)
    ax.set_xlim(lo - 0.8, hi + 0.8)
    step = max(1, math.ceil((hi - lo + 1) / 25))
    ax.set_xticks(range(lo, hi + 1, step))
    if ax.get_yscale() == "linear":
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"circuit size (edges, of {space.n_edges})")
    ax.set_ylabel("number of circuits")
    ax.grid(axis="y", color="#e5e5e5", zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(title)
    return fig


# --------------------------------------------------------------------------- writing


def save_figure(
    fig: Figure, out_dir: Path | str, name: str, *, dpi: int = FIGURE_DPI
) -> list[Path]:
    """Write ``name.png`` and ``name.svg`` into ``out_dir`` atomically; return both paths.

    The PNG is ``figure size x dpi`` pixels exactly (no tight bounding box; the figures
    use constrained layout so nothing is clipped). SVG output is reproducible (fixed hash
    salt, no date)."""
    out_dir = Path(out_dir)
    paths = []
    for fmt, meta in (("png", {"Software": None}), ("svg", {"Date": None})):
        path = out_dir / f"{name}.{fmt}"

        def write(tmp: Path, fmt: str = fmt, meta: dict = meta) -> None:
            with rc_context({"svg.hashsalt": "circuit-census", "svg.fonttype": "path"}):
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)

        atomic_write(path, write)
        paths.append(path)
    return paths


def write_census_figures(
    result: CensusResult,
    measures: Measures,
    minimal: np.ndarray,
    out_dir: Path | str,
    *,
    max_panels: int = 12,
) -> list[Path]:
    """Write every figure of a census into ``out_dir`` and return the files written:
    ``circuit`` (the first minimal circuit on the network; the full network when nothing
    is valid), ``minimal_circuits``, ``frequency`` and ``sizes``, each as PNG and SVG,
    prefixed ``output{k}_`` for a per-output census. All or nothing: interrupted or
    failing, it removes the figures it wrote."""
    if result.valid is None:
        raise InputError("census figures need the valid circuits; the census did not keep them")
    space, output = result.space, result.output
    where = f" (output y{output})" if output is not None else ""
    minimal = np.asarray(minimal, dtype=np.uint64).reshape(-1, space.n_words)
    figures = _circuit_figures(result, minimal, max_panels, "")
    figures["frequency"] = plot_frequency_heatmap(measures, space, output=output)
    figures["sizes"] = plot_size_distribution(
        result.valid,
        space,
        minimal=minimal,
        title=f"valid circuits by size{where}: {measures.n_valid:,} valid, "
        f"{measures.n_minimal:,} minimal",
    )
    return save_figures(figures, out_dir, _prefix(result))


def write_streamed_figures(
    result: CensusResult, tally: CircuitTally, out_dir: Path | str, *, max_panels: int = 12
) -> list[Path]:
    """The figures of :func:`write_census_figures` for a census with too many valid
    circuits to hold: ``frequency`` and ``sizes`` exact, from the counts ``tally`` took as
    the census streamed; ``circuit`` and ``minimal_circuits`` from its uniform sample,
    their titles saying so (minimal within the sample; none when the sample is empty)."""
    space, output = result.space, result.output
    where = f" (output y{output})" if output is not None else ""
    figures: dict[str, Figure] = {}
    sample = tally.sample
    if len(sample):
        from circuit_census.measures.uniqueness import minimal_circuits

        of = f"a sample of {len(sample):,} of {tally.n_valid:,} valid circuits"
        figures = _circuit_figures(result, minimal_circuits(sample), max_panels, of)
    figures["frequency"] = plot_frequencies(
        tally.edge_frequency,
        tally.node_frequency,
        tally.n_valid,
        space,
        output=output,
        how=" (counted exactly as the census streamed)",
    )
    figures["sizes"] = plot_size_counts(
        tally.size_counts,
        space,
        title=f"valid circuits by size{where}: {tally.n_valid:,} valid (exact counts)",
    )
    return save_figures(figures, out_dir, _prefix(result))


def _prefix(result: CensusResult) -> str:
    return f"output{result.output}_" if result.output is not None else ""


def _circuit_figures(
    result: CensusResult, minimal: np.ndarray, max_panels: int, sample: str
) -> dict[str, Figure]:
    """``circuit`` and ``minimal_circuits`` of ``minimal`` (minimal among ``sample``, a
    description of a sample of the valid circuits, when not empty)."""
    space, network, output = result.space, result.network, result.output
    where = f" (output y{output})" if output is not None else ""
    within = f" within {sample}" if sample else ""
    if minimal.shape[0]:
        masks = space.bits_to_masks(minimal[0])
        caption = circuit_caption([m.astype(bool) for m in masks], network.sizes)
        title = f"smallest minimal circuit{within}{where}: {caption}"
    else:
        masks = [np.ones(shape, dtype=np.uint8) for shape in space.layer_shapes]
        title = f"no valid circuit{where}: the full network"
    grid = plot_minimal_grid(network, minimal, space, max_panels=max_panels, output=output)
    if sample:
        grid.suptitle(f"{grid.get_suptitle()} within {sample}", fontsize=10)
    return {
        "circuit": plot_circuit(network, masks, space, title=title, output=output),
        "minimal_circuits": grid,
    }


def save_figures(figures: dict[str, Figure], out_dir: Path | str, prefix: str = "") -> list[Path]:
    """Save each figure as ``PREFIX + NAME`` (:func:`save_figure`); all or nothing: on any
    error or interrupt the figures already saved are removed again."""
    paths: list[Path] = []
    try:
        for name, fig in figures.items():
            paths += save_figure(fig, out_dir, prefix + name)
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return paths


__all__ = [
    "FIGURE_DPI",
    "draw_circuit",
    "node_label",
    "plot_circuit",
    "plot_frequencies",
    "plot_frequency_heatmap",
    "plot_minimal_grid",
    "plot_size_counts",
    "plot_size_distribution",
    "save_figure",
    "save_figures",
    "write_census_figures",
    "write_streamed_figures",
]
