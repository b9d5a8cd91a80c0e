"""Per-level summaries of a series: counts of models, mean / median / IQR of the circuit
counts, and the identifiable fraction with its Wilson interval."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from circuit_census.analysis.rows import (
    as_float,
    identifiable_of,
    is_categorical,
    is_included,
    level_key,
    tasks_of,
)
from circuit_census.analysis.statistics import wilson_interval


@dataclass(frozen=True)
class CountSummary:
    """Mean, median and interquartile range of one count over a level's converged models."""

    n: int
    mean: float
    median: float
    q25: float
    q75: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> CountSummary:
        a = np.asarray(values, dtype=np.float64)
        if a.size == 0:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan)
        q25, med, q75 = np.percentile(a, [25, 50, 75])
        return cls(
            int(a.size),
            float(a.mean()),
            float(med),
            float(q25),
            float(q75),
            float(a.min()),
            float(a.max()),
        )


@dataclass(frozen=True)
class LevelSummary:
    """One level of the swept factor."""

    level: float  # the factor's value (for a categorical factor: the level's index)
    label: str  # the level as shown: its value, or its name for a categorical factor
    n_models: int
    n_converged: int  # converged models with a census: the ones in the statistics
    valid: CountSummary
    minimal: CountSummary
    n_identifiable: int
    identifiable_fraction: float  # NaN when no model converged
    identifiable_ci: tuple[float, float]  # Wilson 95% interval
    tasks: tuple[str, ...] = ()  # the tasks at this level

    @property
    def n_excluded(self) -> int:
        return self.n_models - self.n_converged


def format_level(value: float) -> str:
    """A short label for a level: ``0``, ``0.001``, ``1e-05``, ``12``, ``1.8``."""
    if math.isnan(value):
        return "?"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def _level_label(level: float, group: Sequence[Mapping[str, object]], categorical: bool) -> str:
    labels = {str(r["factor_label"]) for r in group if r.get("factor_label") not in (None, "")}
    factor = str(group[0].get("factor", "")) if group else ""
    if len(labels) == 1 and (categorical or factor != "task_complexity"):
        return labels.pop()
    if categorical:
        return ", ".join(sorted(labels)) or format_level(level)
    return format_level(level)


def _summarize_level(
    level: float, group: Sequence[Mapping[str, object]], categorical: bool
) -> LevelSummary:
    """The summary of one level from all its rows, converged or not."""
    used = [r for r in group if is_included(r)]
    valid = [as_float(r.get("n_valid")) for r in used]
    minimal = [as_float(r.get("n_minimal")) for r in used]
    minimal = [m for m in minimal if not math.isnan(m)]
    ident = [identifiable_of(r) for r in used]
    ident = [i for i in ident if not math.isnan(i)]
    k, n = int(sum(ident)), len(ident)
    return LevelSummary(
        level=float(level),
        label=_level_label(level, group, categorical),
        n_models=len(group),
        n_converged=len(used),
        valid=CountSummary.of(valid),
        minimal=CountSummary.of(minimal),
        n_identifiable=k,
        identifiable_fraction=k / n if n else math.nan,
        identifiable_ci=wilson_interval(k, n),
        tasks=tasks_of(group),
    )


def summarize_levels(
    rows: Sequence[Mapping[str, object]], categorical: bool | None = None
) -> tuple[LevelSummary, ...]:
    """Per-level summaries, levels in increasing order (rows without a level are skipped)."""
    if categorical is None:
        categorical = is_categorical(rows)
    by_level: dict[float, list[Mapping[str, object]]] = {}
    for row in rows:
        v = level_key(row, categorical)
        if not math.isnan(v):
            by_level.setdefault(v, []).append(row)
    return tuple(
        _summarize_level(level, by_level[level], categorical) for level in sorted(by_level)
    )
