"""Statistics of a study: per-level summaries and correlations, checked against SciPy/NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from circuit_census.analysis.series import series_stats, split_series, study_stats
from circuit_census.analysis.statistics import (
    correlate,
    log_regression,
    strength,
    wilson_interval,
)

RESAMPLES = 400


def make_rows(
    levels=(0.0, 0.5, 1.0, 2.0),
    n_seeds=8,
    experiment="l1",
    factor="l1",
    seed=0,
    fail_every=5,
):
    """Rows with a known monotone trend; every ``fail_every``-th model did not converge."""
    rng = np.random.default_rng(seed)
    rows = []
    i = 0
    for value in levels:
        for s in range(n_seeds):
            n_valid = int(1 + 3 * value + rng.integers(0, 6))
            n_minimal = int(1 + rng.integers(0, 3) + (value > 0.7))
            converged = i % fail_every != fail_every - 1
            rows.append(
                {
                    "key": f"{experiment}-{value}-{s}",
                    "experiment": experiment,
                    "factor": factor,
                    "factor_value": value,
                    "hidden": "4",
                    "task": "xor",
                    "seed": s,
                    "converged": converged,
                    "n_candidates": 255,
                    "n_valid": n_valid if converged else None,
                    "n_minimal": n_minimal if converged else None,
                    "identifiable": (n_minimal == 1) if converged else None,
                }
            )
            i += 1
    return rows


def stats_of(rows, **kwargs):
    """The statistics of rows forming one series."""
    (series,) = split_series(rows)
    return series_stats(series, **kwargs)


def converged(rows):
    return [r for r in rows if r["converged"]]


def test_per_level_summaries_match_numpy():
    rows = make_rows()
    s = stats_of(rows, n_resamples=0)
    assert [lv.level for lv in s.levels] == [0.0, 0.5, 1.0, 2.0]
    for lv in s.levels:
        at = [r for r in rows if r["factor_value"] == lv.level]
        used = converged(at)
        valid = np.array([r["n_valid"] for r in used], dtype=float)
        minimal = np.array([r["n_minimal"] for r in used], dtype=float)
        assert lv.n_models == len(at) == 8
        assert lv.n_converged == len(used)
        assert lv.valid.mean == pytest.approx(valid.mean())
        assert lv.valid.median == pytest.approx(np.median(valid))
        assert (lv.valid.q25, lv.valid.q75) == pytest.approx(tuple(np.percentile(valid, [25, 75])))
        assert lv.minimal.median == pytest.approx(np.median(minimal))
        assert (lv.minimal.q25, lv.minimal.q75) == pytest.approx(
            tuple(np.percentile(minimal, [25, 75]))
        )
        k = sum(r["identifiable"] for r in used)
        assert lv.n_identifiable == k
        assert lv.identifiable_fraction == pytest.approx(k / len(used))


def test_correlations_and_regression_match_scipy():
    rows = make_rows()
    s = stats_of(rows, n_resamples=RESAMPLES)
    used = converged(rows)
    x = np.array([r["factor_value"] for r in used])
    for measure in ("n_valid", "n_minimal", "identifiable"):
        y = np.array([float(r[measure]) for r in used])
        sp = stats.spearmanr(x, y)
        c = s.correlation(measure)
        assert c.n == len(used)
        assert c.statistic == pytest.approx(sp.statistic)
        assert c.p_value == pytest.approx(sp.pvalue)
    fit = stats.linregress(x, np.log([r["n_valid"] for r in used]))
    g = s.regression
    assert (g.slope, g.intercept, g.r, g.p_value, g.stderr) == pytest.approx(
        (fit.slope, fit.intercept, fit.rvalue, fit.pvalue, fit.stderr)
    )
    assert g.n == len(used) and g.n_dropped == 0


def test_non_converged_models_are_excluded_and_counted():
    rows = make_rows()
    n_failed = sum(1 for r in rows if not r["converged"])
    assert n_failed > 0
    s = stats_of(rows, n_resamples=0)
    assert s.n_models == len(rows)
    assert s.n_converged == len(rows) - n_failed
    assert s.n_excluded == n_failed
    assert sum(lv.n_excluded for lv in s.levels) == n_failed
    assert s.correlation().n == s.n_converged
    # A non-converged row with census numbers still stays out of the statistics.
    poisoned = [dict(r, n_valid=10**6) if not r["converged"] else r for r in rows]
    again = stats_of(poisoned, n_resamples=0)
    assert again.correlation().statistic == s.correlation().statistic
    assert [lv.valid for lv in again.levels] == [lv.valid for lv in s.levels]


def test_bootstrap_ci_contains_the_estimate_and_is_deterministic():
    rows = make_rows(n_seeds=10)
    a = stats_of(rows, n_resamples=RESAMPLES, seed=7)
    b = stats_of(rows, n_resamples=RESAMPLES, seed=7)
    c = stats_of(rows, n_resamples=RESAMPLES, seed=8)
    for ca, cb in zip(a.correlations, b.correlations, strict=True):
        assert (ca.ci_low, ca.ci_high) == (cb.ci_low, cb.ci_high)
        assert ca.ci_low <= ca.statistic <= ca.ci_high
        assert -1 <= ca.ci_low < ca.ci_high <= 1
    assert a.correlation().ci_low != c.correlation().ci_low  # the seed matters


def test_bootstrap_is_paired():
    """A perfect monotone relation keeps rho = 1 in every paired resample."""
    x = np.arange(20.0)
    c = correlate(x, x**2, "spearman", n_resamples=RESAMPLES)
    assert c.statistic == pytest.approx(1.0)
    assert c.ci_low == pytest.approx(1.0) and c.ci_high == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("x", "y", "why"),
    [
        ([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], "factor takes a single value"),
        ([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0], "is constant"),
        ([1.0, 2.0], [1.0, 2.0], "only 2 models"),
        ([], [], "no converged model"),
    ],
)
def test_degenerate_correlation_is_nan_with_a_note(x, y, why):
    for method in ("spearman", "pearson"):
        c = correlate(x, y, method, measure="n_valid", n_resamples=50)
        assert math.isnan(c.statistic) and math.isnan(c.p_value)
        assert math.isnan(c.ci_low) and math.isnan(c.ci_high)
        assert why in c.note
        assert not c.defined and not c.significant


def test_degenerate_series_does_not_crash():
    rows = make_rows(levels=(1.0,), n_seeds=6)  # one level only
    for r in rows:
        if r["converged"]:
            r["n_valid"], r["n_minimal"], r["identifiable"] = 1, 1, True
    s = stats_of(rows, n_resamples=50)
    assert all(math.isnan(c.statistic) for c in s.correlations)
    assert math.isnan(s.regression.slope) and s.regression.note
    assert s.levels[0].identifiable_fraction == 1.0


def test_all_models_failed_gives_empty_levels_not_errors():
    rows = make_rows(n_seeds=3)
    for r in rows:
        r["converged"] = False
    s = stats_of(rows, n_resamples=50)
    assert s.n_converged == 0 and s.n_excluded == len(rows)
    assert all(lv.valid.n == 0 and math.isnan(lv.valid.median) for lv in s.levels)
    assert all(math.isnan(lv.identifiable_fraction) for lv in s.levels)
    assert all(math.isnan(c.statistic) for c in s.correlations)


def test_resamples_with_a_constant_variable_are_skipped():
    """Rare ones: many resamples have no identifiable model; the CI uses the others."""
    x = np.repeat(np.arange(5.0), 6)
    y = np.zeros_like(x)
    y[[5, 17, 29]] = 1.0
    c = correlate(x, y, "spearman", measure="identifiable", n_resamples=RESAMPLES)
    assert not math.isnan(c.statistic)
    assert math.isfinite(c.ci_low) and math.isfinite(c.ci_high)
    assert "defined resamples" in c.note


def test_bootstrap_gives_no_interval_when_many_resamples_are_degenerate():
    """One odd model in 17: a third of the resamples lack it; their absence would bias the CI."""
    x = np.repeat(np.arange(3.0), 6)[1:]
    y = np.full_like(x, 16.0)
    y[-1] = 15.0
    c = correlate(x, y, "spearman", measure="n_valid", n_resamples=RESAMPLES)
    assert c.statistic == pytest.approx(stats.spearmanr(x, y).statistic)
    assert math.isnan(c.ci_low) and math.isnan(c.ci_high)
    assert "no bootstrap interval" in c.note


def test_log_regression_leaves_out_zero_counts():
    x = [0.0, 1.0, 2.0, 3.0, 4.0]
    v = [0, 2, 4, 8, 16]
    g = log_regression(x, v)
    fit = stats.linregress(x[1:], np.log(v[1:]))
    assert g.n == 4 and g.n_dropped == 1
    assert g.slope == pytest.approx(fit.slope)
    assert g.fold_per_unit == pytest.approx(2.0)
    assert "no valid circuit" in g.note


def test_wilson_interval_matches_scipy_and_handles_no_models():
    ci = stats.binomtest(3, 10).proportion_ci(method="wilson")
    assert wilson_interval(3, 10) == pytest.approx((ci.low, ci.high))
    low, high = wilson_interval(0, 0)
    assert math.isnan(low) and math.isnan(high)


def test_study_is_split_into_experiments_and_depths():
    rows = make_rows(experiment="l1", factor="l1", n_seeds=3)
    cap = make_rows(levels=(2.0, 3.0), experiment="capacity", factor="width", n_seeds=3)
    deep = [dict(r, hidden=f"{int(r['factor_value'])},{int(r['factor_value'])}") for r in cap]
    series = split_series(rows + cap + deep)
    assert [(s.experiment, s.factor, s.stratum, s.split) for s in series] == [
        ("l1", "l1", "hidden 4", False),
        ("capacity", "width", "depth 1", True),
        ("capacity", "width", "depth 2", True),
    ]
    names = [s.name for s in study_stats(rows + cap + deep, n_resamples=0)]
    assert names == ["l1", "capacity (depth 1)", "capacity (depth 2)"]


def test_categorical_factor_gets_levels_but_no_correlation():
    rows = []
    for i, act in enumerate(("relu", "tanh")):
        for r in make_rows(levels=(0.0,), n_seeds=4, experiment="act", factor="activation"):
            rows.append(dict(r, factor_value=None, factor_label=act, level=i, activation=act))
    s = stats_of(rows, n_resamples=0)
    assert s.categorical
    assert [lv.label for lv in s.levels] == ["relu", "tanh"]
    assert all("categorical" in c.note for c in s.correlations)


def test_identifiable_defaults_to_exactly_one_minimal_circuit():
    rows = make_rows(n_seeds=4)
    for r in rows:
        r.pop("identifiable")
    s = stats_of(rows, n_resamples=0)
    for lv in s.levels:
        used = [r for r in converged(rows) if r["factor_value"] == lv.level]
        assert lv.n_identifiable == sum(r["n_minimal"] == 1 for r in used)


def test_strength_words_follow_the_bands_at_their_boundaries():
    values = (0.0, -0.099, 0.1, -0.299, 0.3, -0.499, 0.5, -0.95)
    assert [strength(r) for r in values] == [
        "no relation",
        "no relation",
        "weak",
        "weak",
        "moderate",
        "moderate",
        "strong",
        "strong",
    ]
    assert strength(math.nan) == "undefined"
