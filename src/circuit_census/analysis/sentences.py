"""Sentences the report generates from numbers, never contradicting them.

A correlation's words come from its size (``statistics.strength``: no relation below
|rho| 0.1, then weak, moderate, strong at 0.3 and 0.5) and its sign; a verdict's from where
its interval lies against the claimed region.
"""

from __future__ import annotations

import math

from circuit_census.analysis.formatting import fmt_ci, fmt_num, fmt_r, p_equals
from circuit_census.analysis.series import SeriesStats
from circuit_census.analysis.statistics import MEASURE_LABELS, Correlation, strength
from circuit_census.analysis.study_figures import factor_label
from circuit_census.analysis.summaries import format_level
from circuit_census.analysis.verdicts import POOLED, VerdictRow

# The measures a series' sentence describes, in order.
DESCRIBED = ("n_valid", "n_minimal", "valid_fraction")


def short_factor(factor: str) -> str:
    """The factor's label without its parenthesis: ``L1 strength``, ``hidden width``."""
    return factor_label(factor).split(" (")[0]


def relation_words(rho: float) -> str:
    """``no relation``, ``a weak positive relation``, ``a strong negative relation``."""
    word = strength(rho)
    if word in ("no relation", "undefined"):
        return word
    return f"a {word} {'positive' if rho > 0 else 'negative'} relation"


def correlation_numbers(c: Correlation) -> str:
    """``Spearman ρ = +0.21, 95% CI [+0.05, +0.36], n = 180``."""
    ci = fmt_ci(c.ci_low, c.ci_high)
    interval = f"95% CI {ci}" if ci != "–" else "no bootstrap interval"
    return f"Spearman ρ = {fmt_r(c.statistic)}, {interval}, n = {fmt_num(c.n)}"


def measure_clause(c: Correlation) -> str:
    """How one measure relates to the factor, words then numbers."""
    label = MEASURE_LABELS[c.measure]
    if not c.defined:
        return f"{label}: not computed ({c.note})"
    verb = "shows" if label.endswith("fraction") else "show"  # "valid circuits show"
    return f"{label} {verb} {relation_words(c.statistic)} ({correlation_numbers(c)})"


def _models_text(s: SeriesStats) -> str:
    text = f"{fmt_num(s.n_converged)} of {fmt_num(s.n_models)} models converged and were kept"
    return text + (f" ({fmt_num(s.n_excluded)} excluded)" if s.n_excluded else "")


def _identifiable_clause(s: SeriesStats) -> str:
    levels = [lv for lv in s.levels if not math.isnan(lv.identifiable_fraction)]
    if not levels:
        return ""
    first, last = levels[0], levels[-1]
    return (
        f" The identifiable fraction goes from {fmt_num(first.identifiable_fraction)} at "
        f"{first.label} to {fmt_num(last.identifiable_fraction)} at {last.label}."
    )


def finding_sentence(s: SeriesStats) -> str:
    """What this series shows, generated from its numbers."""
    if s.n_converged == 0:
        return f"In {s.name}, no model converged ({fmt_num(s.n_models)} trained): nothing to show."
    if s.categorical:
        medians = [(lv.valid.median, lv.label) for lv in s.levels if lv.valid.n]
        low, high = min(medians), max(medians)
        return (
            f"In {s.name}, {_models_text(s)}. The median number of valid circuits ranges "
            f"from {fmt_num(low[0])} ({low[1]}) to {fmt_num(high[0])} ({high[1]}) across the "
            f"levels of {factor_label(s.factor)}, a categorical factor without a correlation."
        )
    clauses = "; ".join(measure_clause(s.correlation(m)) for m in DESCRIBED)
    return (
        f"In {s.name}, {_models_text(s)}. Against {short_factor(s.factor)}: {clauses}."
        f"{_identifiable_clause(s)}"
    )


def verdict_sentence(v: VerdictRow) -> str:
    """One claim's verdict with the numbers it comes from."""
    where = "pooled over strata (ranks within each stratum)" if v.stratum == POOLED else ""
    head = f"**Finding {v.finding}, {v.claim}{', ' + where if where else ''}: {v.verdict}.**"
    ci = fmt_ci(v.ci_low, v.ci_high)
    if ci == "–":
        why = f"No 95% interval of ρ could be computed ({v.note or 'too little data'})"
        return f"{head} {why}; ρ = {fmt_r(v.rho)}, n = {fmt_num(v.n)}."
    place = {
        "agrees": "lies wholly inside",
        "disagrees": "lies wholly outside",
        "inconclusive": "overlaps the boundary of",
    }[v.verdict]
    text = (
        f"{head} ρ = {fmt_r(v.rho)} with 95% CI {ci} {place} the claimed region "
        f"({p_equals(v.p_holm, 'Holm-adjusted p')}, n = {fmt_num(v.n)})."
    )
    if v.zero_variance_levels:
        text += (
            f" The measure does not vary at {v.zero_variance_levels} of {v.levels} levels; "
            "those levels cannot show a relation."
        )
    return text


# ----------------------------------------------------------------------- regression


def _fitted_change(s: SeriesStats) -> str:
    """How the fitted count changes: per unit of the factor, or over its range if narrower."""
    g = s.regression
    levels = [lv.level for lv in s.levels if lv.n_converged]
    span = (max(levels) - min(levels)) if levels else math.nan
    if span >= 1:
        return (
            f"each unit of {short_factor(s.factor)} multiplies the fitted count by "
            f"{fmt_num(g.fold_per_unit)}"
        )
    return (
        f"from {format_level(min(levels))} to {format_level(max(levels))} the fitted count "
        f"is multiplied by {fmt_num(math.exp(g.slope * span))}"
    )


def regression_sentence(s: SeriesStats) -> str:
    """The regression of log(valid circuits) on the factor, in words and numbers."""
    g = s.regression
    if s.categorical:
        return "No regression: the factor is categorical."
    if math.isnan(g.r) and math.isnan(g.slope):
        return f"Regression of log(valid circuits) on the factor: not computed ({g.note})."
    if math.isnan(g.r):
        return f"Regression of log(valid circuits) on the factor: {g.note}."
    text = (
        f"**Regression** of log(valid circuits) on {short_factor(s.factor)} (x; n = {g.n}): "
        f"log(valid) = {fmt_num(g.intercept)} {'+' if g.slope >= 0 else '−'} "
        f"{fmt_num(abs(g.slope))} x (slope standard error {fmt_num(g.stderr)}, "
        f"r = {fmt_r(g.r)}, {p_equals(g.p_value)}); {_fitted_change(s)}."
    )
    if g.note:
        text += f" ({g.note}.)"
    return text
