"""Per-level summaries of a series: counts of models (trained, converged, kept), mean /
median / IQR of each uniqueness measure, which measures do not vary at the level, and the
identifiable fraction with its Wilson interval."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from circuit_census.analysis.rows import (
    identifiable_of,
    is_categorical,
    is_included,
    is_true,
    level_key,
    measure_of,
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

    @property
    def constant(self) -> bool:
        """Whether every model has the same value (two or more models): no variance."""
        return self.n >= 2 and self.minimum == self.maximum


@dataclass(frozen=True)
class LevelSummary:
    """One level of the swept factor."""

    level: float  # the factor's value (for a categorical factor: the level's index)
    label: str  # the level as shown: its value, or its name for a categorical factor
    n_models: int  # trained
    n_trained_converged: int  # converged, with or without a census
    n_converged: int  # converged models with a census: the ones kept in the statistics
    valid: CountSummary
    minimal: CountSummary
    valid_fraction: CountSummary
    identifiable: CountSummary  # per model: the fraction of its outputs identifiable
    n_identifiable: int  # models with every output identifiable
    identifiable_fraction: float  # mean of ``identifiable``; NaN when no model was kept
    identifiable_ci: tuple[float, float]  # Wilson 95% interval (one-output models only)
    tasks: tuple[str, ...] = ()  # the tasks at this level

    @property
    def n_excluded(self) -> int:
        return self.n_models - self.n_converged

    def summary(self, measure: str) -> CountSummary:
        """The summary of one measure: n_valid, n_minimal, valid_fraction, identifiable."""
        return {
            "n_valid": self.valid,
            "n_minimal": self.minimal,
            "valid_fraction": self.valid_fraction,
            "identifiable": self.identifiable,
        }[measure]

    def zero_variance(self, measure: str) -> bool:
        """Whether the measure takes one value over the level's kept models."""
        return self.summary(measure).constant


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

    def values(measure: str) -> list[float]:
        return [v for r in used if not math.isnan(v := measure_of(r, measure))]

    ident = [identifiable_of(r) for r in used]
    ident = [i for i in ident if not math.isnan(i)]
    k, n = sum(1 for i in ident if i == 1.0), len(ident)
    binary = all(i in (0.0, 1.0) for i in ident)
    return LevelSummary(
        level=float(level),
        label=_level_label(level, group, categorical),
        n_models=len(group),
        n_trained_converged=sum(1 for r in group if is_true(r.get("converged"))),
        n_converged=len(used),
        valid=CountSummary.of(values("n_valid")),
        minimal=CountSummary.of(values("n_minimal")),
        valid_fraction=CountSummary.of(values("valid_fraction")),
        identifiable=CountSummary.of(ident),
        n_identifiable=k,
        identifiable_fraction=float(np.mean(ident)) if n else math.nan,
        identifiable_ci=wilson_interval(k, n) if binary else (math.nan, math.nan),
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
