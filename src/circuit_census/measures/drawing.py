"""A circuit drawn on its network, and a grid of the minimal circuits.

Nodes are labelled ``x0`` (inputs), ``h1.2`` (hidden layer 1, neuron 2) and ``y0``
(outputs); weights are blue when positive and red when negative, drawn wider the larger
their magnitude; whatever lies outside a circuit is faded to light grey. Figures are built
without pyplot, so no global backend or figure registry is touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from circuit_census.circuits.space import CircuitSpace
from circuit_census.errors import InputError
from circuit_census.network import Network

FIGURE_DPI = 150
POSITIVE = "#2166ac"  # blue
NEGATIVE = "#c0392b"  # red
FADED = "#c9c9c9"
NODE_EDGE = "#222222"
NODE_FILL = "#fff3c4"
FADED_NODE_FILL = "#f2f2f2"
FADED_TEXT = "#9a9a9a"
FREQ_CMAP = "viridis"
MAX_ANNOTATED_CELLS = 144
WEIGHT_LABEL_MAX_EDGES = 40


# --------------------------------------------------------------------------- helpers


def node_label(layer: int, index: int, n_layers: int, output: int | None = None) -> str:
    """``x{i}`` for inputs, ``h{layer}.{i}`` for hidden neurons, ``y{i}`` for outputs
    (``y{output}`` for the single output of a per-output census)."""
    if layer == 0:
        return f"x{index}"
    if layer == n_layers:
        return f"y{output if output is not None else index}"
    return f"h{layer}.{index}"


def _as_masks(masks_or_bits, space: CircuitSpace) -> list[np.ndarray]:
    """Per-layer boolean masks from masks or one bitset."""
    if isinstance(masks_or_bits, np.ndarray) and masks_or_bits.dtype == np.uint64:
        bits = masks_or_bits.reshape(-1)
        if bits.size != space.n_words:
            raise InputError(f"a circuit bitset has {space.n_words} words, got {bits.size}")
        return [m.astype(bool) for m in space.bits_to_masks(bits)]
    masks = [np.asarray(m).astype(bool) for m in masks_or_bits]
    if [m.shape for m in masks] != list(space.layer_shapes):
        raise InputError(
            f"edge masks have shapes {[m.shape for m in masks]}; "
            f"the network needs {list(space.layer_shapes)}"
        )
    return masks


def _touched(masks: Sequence[np.ndarray], sizes: Sequence[int]) -> list[np.ndarray]:
    """Per layer, which nodes the circuit's edges touch."""
    out = []
    for layer, n in enumerate(sizes):
        t = np.zeros(n, dtype=bool)
        if layer > 0:
            t |= masks[layer - 1].any(axis=1)
        if layer < len(masks):
            t |= masks[layer].any(axis=0)
        out.append(t)
    return out


def _positions(sizes: Sequence[int]) -> list[np.ndarray]:
    """(x, y) of every node: layers left to right, each layer centred vertically."""
    return [
        np.column_stack([np.full(n, float(layer)), (n - 1) / 2.0 - np.arange(n, dtype=float)])
        for layer, n in enumerate(sizes)
    ]


def _space_for(network: Network, space: CircuitSpace | None) -> CircuitSpace:
    if space is None:
        return CircuitSpace(network.sizes)
    if tuple(space.sizes) != tuple(network.sizes):
        raise InputError(f"circuit space {space.sizes} does not match the network {network.sizes}")
    return space


def _panel_size(sizes: Sequence[int]) -> tuple[float, float]:
    return 1.7 * len(sizes) + 0.6, 0.8 * max(sizes) + 1.0


def legend_handles() -> list[Line2D]:
    """Legend entries shared by the circuit drawings."""
    return [
        Line2D([], [], color=POSITIVE, lw=2.5, label="positive weight"),
        Line2D([], [], color=NEGATIVE, lw=2.5, label="negative weight"),
        Line2D([], [], color=FADED, lw=2.5, ls=(0, (3, 2)), label="ablated edge"),
        Line2D(
            [],
            [],
            marker="o",
            ls="",
            markersize=10,
            markerfacecolor=FADED_NODE_FILL,
            markeredgecolor=FADED,
            label="node outside circuit",
        ),
    ]


def draw_circuit(
    ax: Axes,
    network: Network,
    masks: Sequence[np.ndarray],
    *,
    output: int | None = None,
    show_weights: bool = False,
    show_biases: bool = False,
    node_size: float = 700.0,
    font_size: float = 8.0,
) -> None:
    """Draw ``network`` on ``ax`` with the circuit ``masks`` (per-layer booleans)
    emphasised and everything else faded."""
    sizes = network.sizes
    pos = _positions(sizes)
    touched = _touched(masks, sizes)
    w_max = max(float(np.abs(w).max()) for w in network.weights) or 1.0
    n_layers = len(network.weights)
    for in_circuit in (False, True):  # faded edges first, circuit edges on top
        for layer, w in enumerate(network.weights):
            for j in range(w.shape[0]):
                for i in range(w.shape[1]):
                    if bool(masks[layer][j, i]) != in_circuit:
                        continue
                    (x0, y0), (x1, y1) = pos[layer][i], pos[layer + 1][j]
                    mag = abs(float(w[j, i])) / w_max
                    if in_circuit:
                        color = POSITIVE if w[j, i] >= 0 else NEGATIVE
                        ax.plot(
                            [x0, x1],
                            [y0, y1],
                            color=color,
                            lw=0.8 + 4.2 * mag,
                            alpha=0.9,
                            solid_capstyle="round",
                            zorder=2,
                        )
                        if show_weights:
                            t = 0.7
                            ax.text(
                                x0 + t * (x1 - x0),
                                y0 + t * (y1 - y0),
                                f"{w[j, i]:.2g}",
                                fontsize=font_size - 1.5,
                                color=color,
                                ha="center",
                                va="center",
                                zorder=3,
                                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"},
                            )
                    else:
                        ax.plot(
                            [x0, x1],
                            [y0, y1],
                            color=FADED,
                            lw=0.6 + 2.0 * mag,
                            alpha=0.7,
                            ls=(0, (3, 2)),
                            zorder=1,
                        )
    for layer, xy in enumerate(pos):
        on = touched[layer]
        ax.scatter(
            xy[:, 0],
            xy[:, 1],
            s=node_size,
            c=[NODE_FILL if o else FADED_NODE_FILL for o in on],
            edgecolors=[NODE_EDGE if o else FADED for o in on],
            linewidths=[1.8 if o else 1.0 for o in on],
            zorder=4,
        )
        for i, (x, y) in enumerate(xy):
            ax.text(
                x,
                y,
                node_label(layer, i, n_layers, output),
                ha="center",
                va="center",
                fontsize=font_size,
                fontweight="bold" if on[i] else "normal",
                color="black" if on[i] else FADED_TEXT,
                zorder=5,
            )
            if show_biases and layer > 0:
                ax.text(
                    x,
                    y - 0.34,
                    f"b={network.biases[layer - 1][i]:.2g}",
                    ha="center",
                    va="top",
                    fontsize=font_size - 1.5,
                    color="#444444" if on[i] else FADED_TEXT,
                    zorder=5,
                )
    top = (max(sizes) - 1) / 2.0
    ax.set_xlim(-0.45, len(sizes) - 0.55)
    ax.set_ylim(-top - (0.75 if show_biases else 0.5), top + 0.5)
    ax.set_aspect("auto")
    ax.axis("off")


def circuit_caption(masks: Sequence[np.ndarray], sizes: Sequence[int]) -> str:
    edges = int(sum(int(m.sum()) for m in masks))
    nodes = int(sum(int(t.sum()) for t in _touched(masks, sizes)))
    return f"{edges} edges, {nodes} nodes"


# --------------------------------------------------------------------------- figures


def plot_circuit(
    network: Network,
    masks_or_bits,
    space: CircuitSpace | None = None,
    *,
    title: str | None = None,
    output: int | None = None,
    show_weights: bool | None = None,
) -> Figure:
    """The network as a layered graph with one circuit highlighted.

    ``masks_or_bits``: per-layer 0/1 masks in the orientation of ``W_l``, or one uint64
    bitset of ``space``. Edge width grows with ``|weight|``; colour gives the sign; edges
    and nodes outside the circuit are faded (grey, dashed). Weights and biases are written
    on the figure for networks of at most 40 edges unless ``show_weights`` says otherwise.
    """
    space = _space_for(network, space)
    masks = _as_masks(masks_or_bits, space)
    if show_weights is None:
        show_weights = space.n_edges <= WEIGHT_LABEL_MAX_EDGES
    w, h = _panel_size(network.sizes)
    fig = Figure(figsize=(max(w + 0.8, 5.6), h + 1.2), layout="constrained")
    ax = fig.add_subplot()
    draw_circuit(
        ax,
        network,
        masks,
        output=output,
        show_weights=show_weights,
        show_biases=show_weights,
        node_size=900,
        font_size=9,
    )
    ax.set_title(
        title if title is not None else f"circuit: {circuit_caption(masks, network.sizes)}",
        fontsize=11,
    )
    fig.legend(
        handles=legend_handles(),
        loc="outside lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    return fig


def plot_minimal_grid(
    network: Network,
    minimal_bits: np.ndarray,
    space: CircuitSpace | None = None,
    *,
    max_panels: int = 12,
    ncols: int | None = None,
    output: int | None = None,
) -> Figure:
    """A grid of the minimal circuits (the first ``max_panels``, in the given order); the
    title says how many were left out."""
    space = _space_for(network, space)
    bits = np.asarray(minimal_bits, dtype=np.uint64).reshape(-1, space.n_words)
    n = bits.shape[0]
    shown = min(n, max(1, int(max_panels)))
    cols = ncols or min(4, max(1, shown))
    rows = max(1, math.ceil(shown / cols))
    pw, ph = 1.15 * len(network.sizes) + 0.4, 0.62 * max(network.sizes) + 0.9
    fig = Figure(figsize=(max(pw * cols, 5.6), ph * rows + 1.0), layout="constrained")
    if n == 0:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no valid circuits: nothing is minimal", ha="center", va="center")
        fig.suptitle("minimal circuits", fontsize=12)
        return fig
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= shown:
            ax.axis("off")
            continue
        masks = [m.astype(bool) for m in space.bits_to_masks(bits[k])]
        draw_circuit(ax, network, masks, output=output, node_size=480, font_size=7)
        ax.set_title(f"#{k + 1}: {circuit_caption(masks, network.sizes)}", fontsize=9)
    noun = "circuit" if n == 1 else "circuits"
    suffix = "" if shown == n else f" (first {shown} shown, {n - shown} left out)"
    fig.suptitle(f"{n:,} minimal {noun}{suffix}", fontsize=12)
    fig.legend(
        handles=legend_handles(),
        loc="outside lower center",
        ncol=4 if fig.get_figwidth() >= 8 else 2,
        fontsize=8,
        frameon=False,
    )
    return fig
