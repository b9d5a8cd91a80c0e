"""The statistics of each series of a study: grouping rows into series (an experiment, or
one stratum of it), and each series' levels, correlations and regression.

An experiment whose rows span several network depths is read as one series per depth; a
task experiment whose tasks differ in their number of inputs or outputs, as one series per
(inputs, outputs) stratum, because a task's circuit count depends on its input count
whatever its complexity. Factor values equal within a tolerance are one level.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from circuit_census.analysis.rows import (
    architecture_of,
    factor_value,
    is_categorical,
    is_included,
    level_key,
    measure_of,
    natural_key,
    row_depth,
    snap_levels,
    stratum_label,
    stratum_of,
    tasks_of,
)
from circuit_census.analysis.statistics import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    MEASURES,
    Correlation,
    Regression,
    correlate,
    log_regression,
)
from circuit_census.analysis.summaries import LevelSummary, summarize_levels

Rows = Sequence[Mapping[str, object]]


@dataclass(frozen=True)
class Series:
    """The rows of one series: an experiment, or one stratum (depth, task shape) of it."""

    experiment: str
    factor: str
    stratum: str  # what the series holds fixed: "depth 2", "3 inputs, 1 output", "hidden 4"
    split: bool  # whether the experiment was split into several series
    rows: tuple[Mapping[str, object], ...]

    @property
    def name(self) -> str:
        return f"{self.experiment} ({self.stratum})" if self.split else self.experiment


@dataclass(frozen=True)
class SeriesStats:
    """All statistics of one series."""

    experiment: str
    factor: str
    stratum: str
    split: bool
    categorical: bool  # levels without a numeric value (e.g. activation): no correlations
    levels: tuple[LevelSummary, ...]
    n_models: int
    n_converged: int
    correlations: tuple[Correlation, ...]  # Spearman, converged models, one per measure
    correlations_all: tuple[Correlation, ...]  # the same with non-converged models too
    regression: Regression
    tasks: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"{self.experiment} ({self.stratum})" if self.split else self.experiment

    @property
    def n_excluded(self) -> int:
        return self.n_models - self.n_converged

    def correlation(self, measure: str = "n_valid", all_models: bool = False) -> Correlation:
        for c in self.correlations_all if all_models else self.correlations:
            if c.measure == measure:
                return c
        raise KeyError(measure)

    def zero_variance_levels(self, measure: str) -> tuple[str, ...]:
        """Labels of the levels at which the measure does not vary."""
        return tuple(lv.label for lv in self.levels if lv.zero_variance(measure))


def snapped(rows: Iterable[Mapping[str, object]]) -> list[dict[str, object]]:
    """Copies of the rows with factor values equal within a tolerance made one level."""
    rows = [dict(r) for r in rows]
    levels = snap_levels(factor_value(r) for r in rows)
    for r in rows:
        v = factor_value(r)
        if not math.isnan(v):
            r["factor_value"] = levels[v]
    return rows


def correlations(
    rows: Rows, factor: str, categorical: bool, n_resamples: int, seed: int
) -> tuple[Correlation, ...]:
    """Spearman's rho of each measure with the factor over the given rows (with a
    percentile bootstrap interval); rows missing the measure are left out."""
    if categorical:
        note = f"categorical factor ({factor}): no correlation"
        nan = math.nan
        return tuple(Correlation(m, "spearman", 0, nan, nan, nan, nan, note) for m in MEASURES)
    out = []
    x = np.asarray([factor_value(r) for r in rows], dtype=np.float64)
    for measure in MEASURES:
        y = np.asarray([measure_of(r, measure) for r in rows], dtype=np.float64)
        ok = ~np.isnan(y) & ~np.isnan(x)
        out.append(correlate(x[ok], y[ok], "spearman", measure, n_resamples=n_resamples, seed=seed))
    return tuple(out)


def has_census(row: Mapping[str, object]) -> bool:
    return not math.isnan(measure_of(row, "n_valid"))


def series_stats(
    series: Series, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> SeriesStats:
    """Statistics of one series. Its statistics use converged models with a census; the
    ``correlations_all`` repeat them with non-converged models included."""
    rows = series.rows
    categorical = is_categorical(rows)
    used = [r for r in rows if is_included(r) and not math.isnan(factor_value(r))]
    everyone = [r for r in rows if has_census(r) and not math.isnan(factor_value(r))]
    notes = []
    n_no_level = sum(1 for r in rows if math.isnan(level_key(r, categorical)))
    if n_no_level:
        notes.append(f"{n_no_level} row(s) without a level of the factor left out")
    n_converged = sum(
        1 for r in rows if is_included(r) and not math.isnan(level_key(r, categorical))
    )
    factor = series.factor
    return SeriesStats(
        experiment=series.experiment,
        factor=factor,
        stratum=series.stratum,
        split=series.split,
        categorical=categorical,
        levels=summarize_levels(rows, categorical),
        n_models=len(rows),
        n_converged=n_converged,
        correlations=correlations(used, factor, categorical, n_resamples, seed),
        correlations_all=correlations(everyone, factor, categorical, n_resamples, seed),
        regression=log_regression(
            [factor_value(r) for r in used], [measure_of(r, "n_valid") for r in used]
        ),
        tasks=tasks_of(rows),
        architectures=tuple(sorted({architecture_of(r) for r in rows}, key=natural_key)),
        seeds=tuple(sorted({int(s) for r in rows if (s := r.get("seed")) is not None})),
        notes=tuple(notes),
    )


def _fixed_label(rows: Rows, factor: str) -> str:
    """What an unsplit series holds fixed, in a few words."""
    if factor == "task_complexity":
        return stratum_label(*stratum_of(rows[0]))
    if factor == "width":
        return f"depth {row_depth(rows[0])}"
    hidden = sorted({str(r.get("hidden", "?")) for r in rows}, key=natural_key)
    return "hidden " + ", ".join(hidden) if len(hidden) <= 2 else "all"


def split_series(rows: Iterable[Mapping[str, object]]) -> list[Series]:
    """Group rows into series. Experiments keep the order in which they first appear; an
    experiment spanning several depths becomes one series per depth, a task experiment
    spanning several (inputs, outputs) strata one series per stratum."""
    groups: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        groups.setdefault(str(row.get("experiment", "") or "study"), []).append(dict(row))
    out: list[Series] = []
    for experiment, group in groups.items():
        group = snapped(group)
        factors = [str(r.get("factor", "")) for r in group if r.get("factor")]
        factor = max(set(factors), key=factors.count) if factors else "factor"
        if factor == "task_complexity":
            keys = {stratum_of(r) for r in group}
            parts = [
                (stratum_label(*k), [r for r in group if stratum_of(r) == k]) for k in sorted(keys)
            ]
        else:
            depths = sorted({row_depth(r) for r in group}, key=lambda v: (v is None, v or 0))
            parts = [(f"depth {d}", [r for r in group if row_depth(r) == d]) for d in depths]
        if len(parts) <= 1:
            out.append(Series(experiment, factor, _fixed_label(group, factor), False, tuple(group)))
            continue
        out += [Series(experiment, factor, label, True, tuple(part)) for label, part in parts]
    return out


def study_stats(
    rows: Iterable[Mapping[str, object]],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> list[SeriesStats]:
    """Statistics of every series of a study."""
    return [series_stats(s, n_resamples=n_resamples, seed=seed) for s in split_series(rows)]
