"""Figures of a study: circuit counts and identifiability against the swept factor.

One figure per series, four panels: valid circuits, minimal circuits, the valid fraction
(one point per converged model, jittered; a box per level; the median per level joined by
a line; a log axis when the values span more than a decade; a level at which the measure
does not vary is marked "no variance") and the identifiable fraction per level with
Wilson 95% intervals. Levels sit at equally spaced positions labelled with their values,
so log-spaced regularizer levels stay readable. Rendered with Matplotlib's Agg backend to
PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from circuit_census.analysis.rows import is_included, level_key, measure_of  # noqa: E402
from circuit_census.analysis.series import SeriesStats  # noqa: E402

FACTOR_LABELS: dict[str, str] = {
    "l1": "L1 strength (weights)",
    "l2": "L2 strength (weights)",
    "orthogonality": "orthogonality penalty (hidden activations)",
    "width": "hidden width (neurons per hidden layer)",
    "depth": "hidden layers",
    "dropout": "dropout rate",
    "task_complexity": "task complexity (effective rank of the truth table)",
    "noise": "input noise std",
    "progress": "training progress (fraction of the model's own run)",
}

COLORS = {
    "n_valid": "#1f5f9e",
    "n_minimal": "#b5541c",
    "valid_fraction": "#6a3d9a",
    "identifiable": "#2e7d32",
}


def factor_label(factor: str) -> str:
    return FACTOR_LABELS.get(factor, factor.replace("_", " "))


def _count_axis(ax, values: np.ndarray, integer: bool = True) -> None:
    """Log axis when the positive counts span more than a decade (symlog if zeros)."""
    positive = values[values > 0]
    if positive.size and positive.max() / positive.min() > 10:
        if (values <= 0).any():
            ax.set_yscale("symlog", linthresh=1, linscale=0.5)
        else:
            ax.set_yscale("log")
            subs = (1.0,) if positive.max() / positive.min() > 1000 else (1.0, 2.0, 5.0)
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    elif integer:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if values.size and values.max() - values.min() < 4:  # a flat series: show integers
            ax.set_ylim(max(values.min() - 2, -0.5), values.max() + 2)


def _level_axis(
    ax,
    labels: Sequence[str],
    factor: str,
    counts: Sequence[int],
    flat: Sequence[bool] = (),
) -> None:
    levels = labels
    positions = np.arange(len(levels))
    ax.set_xticks(positions)
    rotate = sum(len(s) + 2 for s in labels) > 48
    ax.set_xticklabels(labels, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    ax.set_xlim(-0.6, len(levels) - 0.4)
    ax.set_xlabel(factor_label(factor))
    flat = tuple(flat) or (False,) * len(counts)
    for pos, n, no_variance in zip(positions, counts, flat, strict=True):
        ax.annotate(
            f"n={n}" + ("\nno variance" if no_variance else ""),
            (pos, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=7,
            color="#555555",
        )


def _count_panel(ax, series: SeriesStats, rows, column: str, title: str, seed: int) -> None:
    levels = [lv.level for lv in series.levels]
    index = {v: i for i, v in enumerate(levels)}
    rng = np.random.default_rng(seed)
    per_level: list[list[float]] = [[] for _ in levels]
    for row in rows:
        if not is_included(row):
            continue
        v = measure_of(row, column)
        if not math.isnan(v):
            per_level[index[level_key(row, series.categorical)]].append(v)
    all_values = np.asarray([v for vs in per_level for v in vs], dtype=np.float64)
    color = COLORS[column]
    positions = np.arange(len(levels))
    filled = [i for i, vs in enumerate(per_level) if vs]
    if filled:
        ax.boxplot(
            [per_level[i] for i in filled],
            positions=positions[filled],
            widths=0.55,
            whis=(5, 95),
            showfliers=False,
            patch_artist=True,
            boxprops={"facecolor": "#f1f1f1", "edgecolor": "#666666"},
            medianprops={"color": "#222222", "linewidth": 1.2},
            whiskerprops={"color": "#888888"},
            capprops={"color": "#888888"},
            zorder=1,
        )
        for i in filled:
            vs = np.asarray(per_level[i])
            jitter = rng.uniform(-0.22, 0.22, size=vs.size)
            ax.scatter(i + jitter, vs, s=12, color=color, alpha=0.55, linewidths=0, zorder=2)
        medians = [float(np.median(per_level[i])) for i in filled]
        ax.plot(
            positions[filled],
            medians,
            color=color,
            linewidth=1.8,
            marker="o",
            markersize=4,
            zorder=3,
            label="median per level",
        )
        ax.legend(loc="best", fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no converged model", transform=ax.transAxes, ha="center")
    _count_axis(ax, all_values, integer=column != "valid_fraction")
    _level_axis(
        ax,
        [lv.label for lv in series.levels],
        series.factor,
        [len(vs) for vs in per_level],
        [lv.zero_variance(column) for lv in series.levels],
    )
    ax.set_ylabel(title)
    ax.set_title(title, pad=24)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.6, zorder=0)


def _identifiable_panel(ax, series: SeriesStats) -> None:
    levels = series.levels
    positions = np.arange(len(levels))
    frac = np.asarray([lv.identifiable_fraction for lv in levels], dtype=np.float64)
    low = np.asarray([lv.identifiable_ci[0] for lv in levels], dtype=np.float64)
    high = np.asarray([lv.identifiable_ci[1] for lv in levels], dtype=np.float64)
    ok = ~np.isnan(frac)
    color = COLORS["identifiable"]
    if ok.any():
        ax.errorbar(
            positions[ok],
            frac[ok],
            yerr=np.vstack([frac[ok] - low[ok], high[ok] - frac[ok]]),
            fmt="o-",
            color=color,
            ecolor=color,
            elinewidth=1.2,
            capsize=3,
            markersize=5,
            label="fraction with exactly one minimal circuit\n(Wilson 95% interval)",
        )
        ax.legend(loc="best", fontsize=8, frameon=False)
    ax.set_ylim(-0.04, 1.04)
    _level_axis(
        ax,
        [lv.label for lv in levels],
        series.factor,
        [lv.n_converged for lv in levels],
        [lv.zero_variance("identifiable") for lv in levels],
    )
    ax.set_ylabel("identifiable fraction")
    ax.set_title("identifiable at the circuit level (one minimal circuit)", pad=24)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)


def series_figure(
    series: SeriesStats,
    rows: Sequence[Mapping[str, object]],
    subtitle: str = "",
    seed: int = 0,
) -> Figure:
    """The four-panel figure of one series."""
    fig, grid = plt.subplots(2, 2, figsize=(12, 9), layout="constrained")
    axes = grid.ravel()
    _count_panel(axes[0], series, rows, "n_valid", "valid circuits per model", seed)
    _count_panel(axes[1], series, rows, "n_minimal", "minimal circuits per model", seed + 1)
    _count_panel(axes[2], series, rows, "valid_fraction", "valid fraction per model", seed + 2)
    _identifiable_panel(axes[3], series)
    title = (
        f"{series.name}: valid and minimal circuits, valid fraction and identifiability "
        f"against {factor_label(series.factor)} "
        f"({series.n_converged} converged models of {series.n_models})"
    )
    if subtitle:
        title += "\n" + subtitle
    fig.suptitle(title, fontsize=12)
    return fig


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    finally:
        plt.close(fig)
    return buf.getvalue()
