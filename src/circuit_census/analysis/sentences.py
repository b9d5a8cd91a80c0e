"""Sentences the report generates from a series' statistics.

What this run found, the published finding beside it with its verdict, and the
regression of log(valid circuits) on the factor.
"""

from __future__ import annotations

import math

from circuit_census.analysis.findings import HEADLINE_METHOD, PublishedFinding, Verdict, headline
from circuit_census.analysis.formatting import fmt_ci, fmt_num, fmt_p, fmt_r
from circuit_census.analysis.series import SeriesStats
from circuit_census.analysis.statistics import ALPHA, Correlation, strength
from circuit_census.analysis.study_figures import factor_label
from circuit_census.analysis.summaries import format_level


def short_factor(factor: str) -> str:
    """The factor's label without its parenthesis: ``L1 strength``, ``hidden width``."""
    return factor_label(factor).split(" (")[0]


# ------------------------------------------------------------------ what was found

_ADVERB = {"weak": "slightly", "moderate": "moderately", "strong": "clearly"}


def _models_text(s: SeriesStats) -> str:
    models = f"{s.n_converged} converged models"
    if s.n_excluded:
        models += f"; {s.n_excluded} not converged, excluded"
    return models


def _categorical_sentence(s: SeriesStats, models: str) -> str | None:
    """The range of median valid counts over a categorical factor's levels, if any."""
    medians = [(lv.valid.median, lv.label) for lv in s.levels if lv.valid.n]
    if not medians:
        return None
    low, high = min(medians), max(medians)
    return (
        f"In {s.name}, the median number of valid circuits ranges from {fmt_num(low[0])} "
        f"({low[1]}) to {fmt_num(high[0])} ({high[1]}) across the levels of "
        f"{factor_label(s.factor)}, a categorical factor without a correlation ({models})."
    )


def _correlation_clause(s: SeriesStats, c: Correlation, models: str) -> str:
    """Direction, strength and significance of the headline correlation, with its numbers."""
    word = strength(c.statistic)
    sign = "positive" if c.statistic > 0 else "negative" if c.statistic < 0 else "zero"
    ci = fmt_ci(c.ci_low, c.ci_high)
    ci = f"95% CI {ci}" if ci != "–" else "no bootstrap interval"
    numbers = f"Spearman ρ = {fmt_r(c.statistic)}, {ci}, p = {fmt_p(c.p_value)}"
    if c.significant:
        more = "more" if c.statistic > 0 else "fewer"
        return (
            f"In {s.name}, a larger {short_factor(s.factor)} goes with {_ADVERB[word]} {more} "
            f"valid circuits: a {word} {sign} correlation, significant at α = {ALPHA} "
            f"({numbers}; {models})"
        )
    return (
        f"In {s.name}, {short_factor(s.factor)} shows no significant relation with the "
        f"number of valid circuits: a {word} {sign} correlation, not significant at "
        f"α = {ALPHA} ({numbers}; {models})"
    )


def _identifiable_clause(s: SeriesStats) -> str:
    """How the identifiable fraction moves from the first level to the last ("" if unknown)."""
    levels = [lv for lv in s.levels if not math.isnan(lv.identifiable_fraction)]
    if not levels:
        return ""
    first, last = levels[0], levels[-1]
    text = (
        f"; the identifiable fraction goes from {first.identifiable_fraction:.2f} at "
        f"{first.label} to {last.identifiable_fraction:.2f} at {last.label}"
    )
    ident = s.correlation("identifiable", HEADLINE_METHOD)
    if ident.defined:
        text += f" (ρ = {fmt_r(ident.statistic)}, p = {fmt_p(ident.p_value)})"
    return text


def finding_sentence(s: SeriesStats) -> str:
    """One sentence saying what this run found, generated from the numbers."""
    models = _models_text(s)
    if s.n_converged == 0:
        return (
            f"In {s.name}, no model converged ({s.n_models} trained, all excluded): there is "
            "nothing to correlate."
        )
    if s.categorical:
        sentence = _categorical_sentence(s, models)
        if sentence is not None:
            return sentence
    c = headline(s)
    if not c.defined:
        return (
            f"In {s.name}, the correlation of the number of valid circuits with "
            f"{factor_label(s.factor)} could not be computed ({c.note}; {models})."
        )
    return _correlation_clause(s, c, models) + _identifiable_clause(s) + "."


# ------------------------------------------------------------ the published finding

_VERDICT_LEAD = {
    "agrees": "This run agrees",
    "partly agrees": "This run partly agrees",
    "disagrees": "This run disagrees",
    "undetermined": "Undetermined in this run",
}


def _direction_remark(c: Correlation, finding: PublishedFinding) -> str:
    """Which way a significant correlation went, where the finding cares (2 and 4)."""
    if finding.number == 2 and c.defined and c.statistic > 0 and c.significant:
        return " The correlation is positive: orthogonality promoted non-uniqueness here."
    if finding.number == 4 and c.defined and c.significant:
        if c.statistic < 0:
            return " Simpler tasks had more valid (redundant) circuits in this run."
        return " More complex tasks had more valid circuits in this run."
    return ""


def published_sentence(s: SeriesStats, finding: PublishedFinding) -> tuple[str, Verdict]:
    """The published finding, this run's verdict on it and the rule used."""
    c = headline(s)
    verdict = finding.judge(c)
    text = (
        f"**Published (finding {finding.number}, {finding.title.lower()}):** {finding.text} "
        f"**{_VERDICT_LEAD[verdict.word]}:** {verdict.reason} (rule: {finding.criterion})."
        f"{_direction_remark(c, finding)}"
    )
    return text, verdict


# ----------------------------------------------------------------------- regression


def _fitted_change(s: SeriesStats) -> str:
    """How the fitted count changes: per unit of the factor, or over its range if narrower."""
    g = s.regression
    levels = [lv.level for lv in s.levels if lv.n_converged]
    span = (max(levels) - min(levels)) if levels else math.nan
    if span >= 1:
        return (
            f"each unit of {short_factor(s.factor)} multiplies the fitted count by "
            f"{g.fold_per_unit:.3g}"
        )
    return (
        f"from {format_level(min(levels))} to {format_level(max(levels))} the fitted count "
        f"is multiplied by {math.exp(g.slope * span):.3g}"
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
    intercept = f"{g.intercept:.3g}".replace("-", "−")
    text = (
        f"**Regression** of log(valid circuits) on {short_factor(s.factor)} (x; n = {g.n}): "
        f"log(valid) = {intercept} {'+' if g.slope >= 0 else '−'} {abs(g.slope):.3g} x "
        f"(slope standard error {g.stderr:.2g}, r = {fmt_r(g.r)}, p = {fmt_p(g.p_value)}); "
        f"{_fitted_change(s)}."
    )
    if g.note:
        text += f" ({g.note}.)"
    return text
