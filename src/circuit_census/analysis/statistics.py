"""Statistical tests of a study: Wilson intervals, correlations with paired bootstrap
intervals, and the regression of log(n_valid) on the factor."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

MEASURES: tuple[str, ...] = ("n_valid", "n_minimal", "valid_fraction", "identifiable")
METHODS: tuple[str, ...] = ("spearman", "pearson")
CONFIDENCE = 0.95
ALPHA = 0.05
DEFAULT_RESAMPLES = 9999
DEFAULT_SEED = 0
MAX_DEGENERATE = 0.1  # largest fraction of undefined bootstrap resamples an interval may skip

MEASURE_LABELS: dict[str, str] = {
    "n_valid": "valid circuits",
    "n_minimal": "minimal circuits",
    "valid_fraction": "valid fraction",
    "identifiable": "identifiable fraction",
}


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


def _n_models(n: int) -> str:
    return f"{n} model{'s' if n != 1 else ''}"


def _join_notes(*notes: str) -> str:
    return "; ".join(s for s in notes if s)


def correlate(
    x: Sequence[float],
    y: Sequence[float],
    method: str = "spearman",
    measure: str = "",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Correlation:
    """Correlation of ``y`` with ``x``: SciPy's statistic and p-value, paired bootstrap CI.

    Degenerate inputs (fewer than three models, a constant variable) give NaN with a note.
    """
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
        return undefined(f"only {_n_models(n)}: correlation undefined")
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
    """Fit ``log(n_valid)`` against ``x`` over models with ``n_valid >= 1``.

    Fewer than three such models or a single factor value give NaN with a note.
    """
    xa = np.asarray(x, dtype=np.float64)
    va = np.asarray(n_valid, dtype=np.float64)
    keep = va >= 1
    n_dropped = int((~keep).sum())
    xa, ya = xa[keep], np.log(va[keep])
    n = int(xa.size)
    nan = math.nan
    note = f"{n_dropped} model(s) with no valid circuit left out" if n_dropped else ""

    def undefined(why: str) -> Regression:
        return Regression(n, n_dropped, nan, nan, nan, nan, nan, _join_notes(why, note))

    if n < 3:
        return undefined(f"{_n_models(n)} with a valid circuit, fewer than 3")
    if _is_constant(xa):
        return undefined("the factor takes a single value")
    if _is_constant(ya):
        note = _join_notes("log(n_valid) is constant", note)
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


# Words for the size of a correlation, |rho| below each bound (and "strong" above the last).
STRENGTH_BANDS: tuple[tuple[float, str], ...] = (
    (0.1, "no relation"),
    (0.3, "weak"),
    (0.5, "moderate"),
)


def strength(rho: float) -> str:
    """A word for the size of a correlation: no relation (|rho| < 0.1), weak (< 0.3),
    moderate (< 0.5), strong; "undefined" for NaN."""
    if math.isnan(rho):
        return "undefined"
    a = abs(rho)
    for bound, word in STRENGTH_BANDS:
        if a < bound:
            return word
    return "strong"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values; NaN entries are not tests
    (they keep NaN and do not count in the family's size)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = tested.size
    running = 0.0
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * float(p[i])))
        out[i] = running
    return out.tolist()


def _centered_ranks(values: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Ranks within each stratum (ties averaged), centred and divided by the stratum's
    size, so that every stratum weighs by its number of models."""
    out = np.zeros(values.shape, dtype=np.float64)
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        r = stats.rankdata(values[..., idx], axis=-1)
        out[..., idx] = (r - (idx.size + 1) / 2) / idx.size
    return out


def _stratified_rho(x: np.ndarray, y: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Pearson correlation of within-stratum centred ranks (along the last axis)."""
    rx, ry = _centered_ranks(x, strata), _centered_ranks(y, strata)
    num = (rx * ry).sum(axis=-1)
    den = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def stratified_spearman(
    x: Sequence[float],
    y: Sequence[float],
    strata: Sequence[object],
    measure: str = "",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Correlation:
    """A rank correlation pooled over strata, never across them: the correlation of ranks
    taken within each stratum. p: permutation test shuffling ``y`` within strata; CI:
    bootstrap resampling models within strata (percentile). With one stratum, rho is
    Spearman's."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    labels = np.unique(np.asarray([str(s) for s in strata]), return_inverse=True)[1]
    n = int(xa.size)
    nan = math.nan
    if n < 3:
        return Correlation(measure, "stratified", n, nan, nan, nan, nan, f"only {_n_models(n)}")
    rho = float(_stratified_rho(xa, ya, labels))
    if math.isnan(rho):
        note = "no stratum has both the factor and the measure varying: correlation undefined"
        return Correlation(measure, "stratified", n, nan, nan, nan, nan, note)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == s) for s in np.unique(labels)]
    n_draws = max(n_resamples, 1)
    perm = np.empty((n_draws, n), dtype=np.int64)
    boot = np.empty((n_draws, n), dtype=np.int64)
    for idx in groups:
        perm[:, idx] = idx[rng.permuted(np.tile(np.arange(idx.size), (n_draws, 1)), axis=1)]
        boot[:, idx] = idx[rng.integers(0, idx.size, size=(n_draws, idx.size))]
    null = _stratified_rho(np.broadcast_to(xa, (n_draws, n)), ya[perm], labels)
    p = (1 + np.sum(np.abs(null) >= abs(rho) - 1e-12)) / (n_draws + 1)
    dist = _stratified_rho(xa[boot], ya[boot], labels)
    ok = np.isfinite(dist)
    note = ""
    if n_resamples <= 0:
        low = high = nan
        note = "no bootstrap"
    elif (~ok).sum() > MAX_DEGENERATE * dist.size:
        low = high = nan
        note = f"no bootstrap interval: {int((~ok).sum())} of {dist.size} resamples undefined"
    else:
        tail = (1 - CONFIDENCE) / 2 * 100
        low, high = (float(v) for v in np.percentile(dist[ok], [tail, 100 - tail]))
    return Correlation(measure, "stratified", n, rho, float(p), low, high, note)
