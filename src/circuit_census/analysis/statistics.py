"""Statistics of a study: per-level summaries and correlations with the swept factor.

Pure functions over result rows (plain dicts, one per trained model, as the results store
returns them). Only converged models with a census enter the statistics; the others are
counted and reported as excluded.

For each *series* (an experiment, split by network depth when an experiment mixes depths,
as the capacity preset's depth-2 variant does):

- per level of the factor: number of models, converged models, and of the valid and
  minimal circuit counts the mean, median and interquartile range (NumPy's linear
  percentiles), and the identifiable fraction with its Wilson 95% interval;
- across levels, one point per converged model: Spearman and Pearson correlations of
  ``n_valid``, ``n_minimal`` and ``identifiable`` with the factor, with SciPy's p-values
  and paired bootstrap 95% percentile intervals (``scipy.stats.bootstrap``, fixed seed);
- a least-squares regression of ``log(n_valid)`` on the factor (``scipy.stats.linregress``).

Degenerate inputs (fewer than three models, a constant variable) give NaN with a note,
never an exception.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

MEASURES: tuple[str, ...] = ("n_valid", "n_minimal", "identifiable")
METHODS: tuple[str, ...] = ("spearman", "pearson")
CONFIDENCE = 0.95
ALPHA = 0.05
DEFAULT_RESAMPLES = 9999
DEFAULT_SEED = 0
MAX_DEGENERATE = 0.1  # largest fraction of undefined bootstrap resamples an interval may skip

MEASURE_LABELS: dict[str, str] = {
    "n_valid": "valid circuits",
    "n_minimal": "minimal circuits",
    "identifiable": "identifiable",
}


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


@dataclass(frozen=True)
class Correlation:
    """A correlation of one measure with the factor over converged models."""

    measure: str
    method: str  # "spearman" or "pearson"
    n: int
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float
    note: str = ""

    @property
    def defined(self) -> bool:
        return not math.isnan(self.statistic)

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p_value) and self.p_value < ALPHA


@dataclass(frozen=True)
class Regression:
    """Least-squares fit ``log(n_valid) = intercept + slope * factor``."""

    n: int
    n_dropped: int  # converged models with n_valid < 1 (log undefined), left out
    slope: float
    intercept: float
    r: float
    p_value: float
    stderr: float
    note: str = ""

    @property
    def fold_per_unit(self) -> float:
        """Multiplicative change of the valid count per unit of the factor."""
        return math.exp(self.slope) if math.isfinite(self.slope) else math.nan


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


# ----------------------------------------------------------------------------- rows


def as_float(value: object) -> float:
    if value is None or value == "":
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "t"}
    return bool(value) if value is not None else False


def factor_value(row: Mapping[str, object]) -> float:
    """The row's value of its swept factor (``factor_value``, else the factor's own column)."""
    v = as_float(row.get("factor_value"))
    if math.isnan(v):
        v = as_float(row.get(str(row.get("factor", ""))))
    return v


def row_depth(row: Mapping[str, object]) -> int | None:
    d = row.get("depth")
    if d is not None and d != "":
        try:
            return int(d)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            pass
    hidden = row.get("hidden")
    if hidden is None:
        return None
    parts = [p for p in str(hidden).replace(" ", "").split(",") if p]
    return len(parts)


def is_included(row: Mapping[str, object]) -> bool:
    """Whether a row enters the statistics: a converged model with a census."""
    return _truthy(row.get("converged")) and not math.isnan(as_float(row.get("n_valid")))


def is_categorical(rows: Iterable[Mapping[str, object]]) -> bool:
    """Whether a series' factor has no numeric values (its levels are names)."""
    return all(math.isnan(factor_value(r)) for r in rows)


def level_key(row: Mapping[str, object], categorical: bool) -> float:
    """The level a row belongs to: its factor value, or for a categorical factor the
    level's index (``level``)."""
    return as_float(row.get("level")) if categorical else factor_value(row)


def identifiable_of(row: Mapping[str, object]) -> float:
    v = row.get("identifiable")
    if v is None or v == "":
        m = as_float(row.get("n_minimal"))
        return math.nan if math.isnan(m) else float(m == 1)
    return float(_truthy(v))


def natural_key(text: str) -> list[object]:
    """Sort key putting ``2`` before ``10``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def architecture_of(row: Mapping[str, object]) -> str:
    hidden = str(row.get("hidden", "?")).replace(" ", "").replace(",", "-")
    act = row.get("activation")
    return f"{hidden} {act}" if act else hidden


# ------------------------------------------------------------------ the statistics


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (NaN when ``n == 0``)."""
    if n <= 0:
        return (math.nan, math.nan)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def _pearson_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.mean(axis=axis, keepdims=True)
    y = y - y.mean(axis=axis, keepdims=True)
    num = (x * y).sum(axis=axis)
    den = np.sqrt((x * x).sum(axis=axis) * (y * y).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r = np.where(den > 0, r, np.nan)
    return np.clip(r, -1.0, 1.0)


def _spearman_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return _pearson_along(stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis), axis=axis)


_VECTORIZED = {"spearman": _spearman_along, "pearson": _pearson_along}


def _is_constant(a: np.ndarray) -> bool:
    return a.size == 0 or bool(np.all(a == a[0]))


def correlate(
    x: Sequence[float],
    y: Sequence[float],
    method: str = "spearman",
    measure: str = "",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Correlation:
    """Correlation of ``y`` with ``x``: SciPy's statistic and p-value, paired bootstrap CI."""
    if method not in _VECTORIZED:
        raise ValueError(f"unknown correlation method {method!r}")
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    n = int(xa.size)
    nan = math.nan

    def undefined(note: str) -> Correlation:
        return Correlation(measure, method, n, nan, nan, nan, nan, note)

    if n == 0:
        return undefined("no converged model: correlation undefined")
    if n < 3:
        return undefined(f"only {n} model{'s' if n != 1 else ''}: correlation undefined")
    if _is_constant(xa):
        return undefined("the factor takes a single value: correlation undefined")
    if _is_constant(ya):
        label = MEASURE_LABELS.get(measure, measure or "the measure")
        return undefined(f"{label} is constant ({ya[0]:g}): correlation undefined")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.spearmanr(xa, ya) if method == "spearman" else stats.pearsonr(xa, ya)
    statistic, p_value = float(res.statistic), float(res.pvalue)

    low, high, note = _bootstrap_ci(xa, ya, _VECTORIZED[method], n_resamples, seed)
    return Correlation(measure, method, n, statistic, p_value, low, high, note)


def _bootstrap_ci(x, y, statistic, n_resamples: int, seed: int) -> tuple[float, float, str]:
    if n_resamples <= 0:
        return (math.nan, math.nan, "no bootstrap")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (x, y),
            statistic,
            paired=True,
            vectorized=True,
            n_resamples=n_resamples,
            batch=2000,
            confidence_level=CONFIDENCE,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isfinite(low) and math.isfinite(high):
        return (low, high, "")
    # Some resamples had a constant variable (statistic undefined). A few (rare values in
    # a large sample) are left out; many would bias the interval (the left-out resamples
    # are those without the rare values), so then no interval is given.
    dist = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    ok = np.isfinite(dist)
    n_bad = int(dist.size - ok.sum())
    if n_bad > MAX_DEGENERATE * dist.size:
        return (
            math.nan,
            math.nan,
            f"no bootstrap interval: {n_bad} of {dist.size} resamples had a constant variable",
        )
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(dist[ok], [tail, 100 - tail])
    return (float(lo), float(hi), f"CI over the {int(ok.sum())} of {dist.size} defined resamples")


def log_regression(x: Sequence[float], n_valid: Sequence[float]) -> Regression:
    """Fit ``log(n_valid)`` against ``x`` over models with ``n_valid >= 1``."""
    xa = np.asarray(x, dtype=np.float64)
    va = np.asarray(n_valid, dtype=np.float64)
    keep = va >= 1
    n_dropped = int((~keep).sum())
    xa, ya = xa[keep], np.log(va[keep])
    n = int(xa.size)
    nan = math.nan
    note = f"{n_dropped} model(s) with no valid circuit left out" if n_dropped else ""

    def undefined(why: str) -> Regression:
        return Regression(
            n, n_dropped, nan, nan, nan, nan, nan, "; ".join(s for s in (why, note) if s)
        )

    if n < 3:
        return undefined(f"{n} model{'s' if n != 1 else ''} with a valid circuit, fewer than 3")
    if _is_constant(xa):
        return undefined("the factor takes a single value")
    if _is_constant(ya):
        note = "; ".join(s for s in ("log(n_valid) is constant", note) if s)
        return Regression(n, n_dropped, 0.0, float(ya[0]), nan, nan, 0.0, note)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.linregress(xa, ya)
    return Regression(
        n,
        n_dropped,
        float(res.slope),
        float(res.intercept),
        float(res.rvalue),
        float(res.pvalue),
        float(res.stderr),
        note,
    )


def _level_label(level: float, group: Sequence[Mapping[str, object]], categorical: bool) -> str:
    labels = {str(r["factor_label"]) for r in group if r.get("factor_label") not in (None, "")}
    factor = str(group[0].get("factor", "")) if group else ""
    if len(labels) == 1 and (categorical or factor != "task_complexity"):
        return labels.pop()
    if categorical:
        return ", ".join(sorted(labels)) or format_level(level)
    return format_level(level)


def format_level(value: float) -> str:
    """A short label for a level: ``0``, ``0.001``, ``1e-05``, ``12``, ``1.8``."""
    if math.isnan(value):
        return "?"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


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
    out = []
    for level in sorted(by_level):
        group = by_level[level]
        used = [r for r in group if is_included(r)]
        valid = [as_float(r.get("n_valid")) for r in used]
        minimal = [as_float(r.get("n_minimal")) for r in used]
        minimal = [m for m in minimal if not math.isnan(m)]
        ident = [identifiable_of(r) for r in used]
        ident = [i for i in ident if not math.isnan(i)]
        k, n = int(sum(ident)), len(ident)
        out.append(
            LevelSummary(
                level=float(level),
                label=_level_label(level, group, categorical),
                n_models=len(group),
                n_converged=len(used),
                valid=CountSummary.of(valid),
                minimal=CountSummary.of(minimal),
                n_identifiable=k,
                identifiable_fraction=k / n if n else math.nan,
                identifiable_ci=wilson_interval(k, n),
                tasks=tuple(sorted({str(r["task"]) for r in group if r.get("task") is not None})),
            )
        )
    return tuple(out)


def series_stats(
    rows: Sequence[Mapping[str, object]],
    experiment: str,
    factor: str,
    depth: int | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> SeriesStats:
    """Statistics of one series (all its rows, converged or not)."""
    categorical = is_categorical(rows)
    used = [r for r in rows if is_included(r) and not math.isnan(factor_value(r))]
    x = [factor_value(r) for r in used]
    columns = {
        "n_valid": [as_float(r.get("n_valid")) for r in used],
        "n_minimal": [as_float(r.get("n_minimal")) for r in used],
        "identifiable": [identifiable_of(r) for r in used],
    }
    correlations = []
    for measure in MEASURES:
        y = np.asarray(columns[measure])
        ok = ~np.isnan(y)
        xs = np.asarray(x)[ok]
        for method in METHODS:
            if categorical:
                note = f"categorical factor ({factor}): no correlation"
                correlations.append(
                    Correlation(measure, method, 0, *(math.nan,) * 4, note)  # type: ignore[arg-type]
                )
                continue
            correlations.append(
                correlate(xs, y[ok], method, measure, n_resamples=n_resamples, seed=seed)
            )
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
        correlations=tuple(correlations),
        regression=log_regression(x, columns["n_valid"]),
        tasks=tuple(sorted({str(r.get("task")) for r in rows if r.get("task") is not None})),
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


def strength(rho: float) -> str:
    """A word for the size of a correlation: weak (< 0.3), moderate (< 0.6), strong."""
    if math.isnan(rho):
        return "undefined"
    a = abs(rho)
    if a < 0.3:
        return "weak"
    if a < 0.6:
        return "moderate"
    return "strong"
