"""The statistics of each series of a study (an experiment, or one network depth of it):
grouping rows into series, and their levels, correlations and regression."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from circuit_census.analysis.rows import (
    architecture_of,
    as_float,
    factor_value,
    identifiable_of,
    is_categorical,
    is_included,
    level_key,
    natural_key,
    row_depth,
    tasks_of,
)
from circuit_census.analysis.statistics import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    MEASURES,
    METHODS,
    Correlation,
    Regression,
    correlate,
    log_regression,
)
from circuit_census.analysis.summaries import LevelSummary, summarize_levels


@dataclass(frozen=True)
class SeriesStats:
    """All statistics of one series: an experiment, or one depth of it."""

    experiment: str
    factor: str
    depth: int | None  # set when the experiment was split by depth
    categorical: bool  # levels without a numeric value (e.g. activation): no correlations
    levels: tuple[LevelSummary, ...]
    n_models: int
    n_converged: int
    correlations: tuple[Correlation, ...]
    regression: Regression
    tasks: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.experiment if self.depth is None else f"{self.experiment} (depth {self.depth})"

    @property
    def n_excluded(self) -> int:
        return self.n_models - self.n_converged

    def correlation(self, measure: str = "n_valid", method: str = "spearman") -> Correlation:
        for c in self.correlations:
            if c.measure == measure and c.method == method:
                return c
        raise KeyError((measure, method))


def _correlations(
    x: Sequence[float],
    columns: Mapping[str, Sequence[float]],
    factor: str,
    categorical: bool,
    n_resamples: int,
    seed: int,
) -> tuple[Correlation, ...]:
    """Each measure with the factor by each method; models missing the measure left out."""
    if categorical:
        note = f"categorical factor ({factor}): no correlation"
        nan = math.nan
        return tuple(
            Correlation(measure, method, 0, nan, nan, nan, nan, note)
            for measure in MEASURES
            for method in METHODS
        )
    out = []
    for measure in MEASURES:
        y = np.asarray(columns[measure])
        ok = ~np.isnan(y)
        xs = np.asarray(x)[ok]
        for method in METHODS:
            out.append(correlate(xs, y[ok], method, measure, n_resamples=n_resamples, seed=seed))
    return tuple(out)


def series_stats(
    rows: Sequence[Mapping[str, object]],
    experiment: str,
    factor: str,
    depth: int | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> SeriesStats:
    """Statistics of one series (all its rows, converged or not).

    Only converged models with a census enter the statistics; the others are counted as
    excluded.
    """
    categorical = is_categorical(rows)
    used = [r for r in rows if is_included(r) and not math.isnan(factor_value(r))]
    x = [factor_value(r) for r in used]
    columns = {
        "n_valid": [as_float(r.get("n_valid")) for r in used],
        "n_minimal": [as_float(r.get("n_minimal")) for r in used],
        "identifiable": [identifiable_of(r) for r in used],
    }
    notes = []
    n_no_level = sum(1 for r in rows if math.isnan(level_key(r, categorical)))
    if n_no_level:
        notes.append(f"{n_no_level} row(s) without a level of the factor left out")
    n_converged = sum(
        1 for r in rows if is_included(r) and not math.isnan(level_key(r, categorical))
    )
    return SeriesStats(
        experiment=experiment,
        factor=factor,
        depth=depth,
        categorical=categorical,
        levels=summarize_levels(rows, categorical),
        n_models=len(rows),
        n_converged=n_converged,
        correlations=_correlations(x, columns, factor, categorical, n_resamples, seed),
        regression=log_regression(x, columns["n_valid"]),
        tasks=tasks_of(rows),
        architectures=tuple(sorted({architecture_of(r) for r in rows}, key=natural_key)),
        seeds=tuple(sorted({int(s) for r in rows if (s := r.get("seed")) is not None})),
        notes=tuple(notes),
    )


def split_series(
    rows: Iterable[Mapping[str, object]],
) -> list[tuple[str, str, int | None, list[Mapping[str, object]]]]:
    """Group rows into series: ``(experiment, factor, depth or None, rows)``.

    Experiments keep the order in which they first appear; an experiment whose rows span
    several network depths becomes one series per depth (in increasing depth).
    """
    groups: dict[str, list[Mapping[str, object]]] = {}
    for row in rows:
        groups.setdefault(str(row.get("experiment", "") or "study"), []).append(row)
    out: list[tuple[str, str, int | None, list[Mapping[str, object]]]] = []
    for experiment, group in groups.items():
        factors = [str(r.get("factor", "")) for r in group if r.get("factor")]
        factor = max(set(factors), key=factors.count) if factors else "factor"
        depths = {row_depth(r) for r in group}
        if len(depths) <= 1:
            out.append((experiment, factor, None, group))
            continue
        for d in sorted(depths, key=lambda v: (v is None, v or 0)):
            out.append((experiment, factor, d, [r for r in group if row_depth(r) == d]))
    return out


def study_stats(
    rows: Iterable[Mapping[str, object]],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> list[SeriesStats]:
    """Statistics of every series of a study."""
    return [
        series_stats(group, experiment, factor, depth, n_resamples=n_resamples, seed=seed)
        for experiment, factor, depth, group in split_series(rows)
    ]
