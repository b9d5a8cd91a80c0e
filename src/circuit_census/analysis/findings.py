"""The study's four published findings (SPEC, "The question") and how a run is judged.

Each finding is judged on the headline correlation: Spearman ρ of the number of valid
circuits with the swept factor, over the converged models of a series.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from circuit_census.analysis.formatting import fmt_abs, fmt_p, fmt_r
from circuit_census.analysis.series import SeriesStats
from circuit_census.analysis.statistics import Correlation

HEADLINE_MEASURE = "n_valid"
HEADLINE_METHOD = "spearman"


def headline(s: SeriesStats) -> Correlation:
    """The series' headline correlation: Spearman ρ of valid circuits with the factor."""
    return s.correlation(HEADLINE_MEASURE, HEADLINE_METHOD)


@dataclass(frozen=True)
class Verdict:
    word: str  # "agrees", "partly agrees", "disagrees", "undetermined"
    reason: str


@dataclass(frozen=True)
class PublishedFinding:
    """One of the study's four findings (SPEC, "The question") and how a run is checked."""

    number: int
    title: str
    text: str
    criterion: str  # in words
    judge: Callable[[Correlation], Verdict]


def _weak_judge(c: Correlation) -> Verdict:
    if not c.defined:
        return Verdict("undetermined", "no correlation could be computed")
    a = abs(c.statistic)
    if a < 0.3:
        return Verdict("agrees", f"|ρ| = {fmt_abs(a)} < 0.3, a weak correlation")
    if a < 0.6:
        return Verdict("partly agrees", f"|ρ| = {fmt_abs(a)} is moderate, not weak")
    return Verdict("disagrees", f"|ρ| = {fmt_abs(a)} is strong")


def _capacity_judge(c: Correlation) -> Verdict:
    if not c.defined:
        return Verdict("undetermined", "no correlation could be computed")
    r = c.statistic
    if r >= 0.6 and c.significant:
        return Verdict("agrees", f"ρ = {fmt_r(r)} ≥ 0.6 and significant")
    if r > 0 and c.significant:
        return Verdict("partly agrees", f"ρ = {fmt_r(r)} is positive and significant, not strong")
    if r > 0:
        return Verdict("disagrees", f"ρ = {fmt_r(r)} is positive but not significant")
    return Verdict("disagrees", f"ρ = {fmt_r(r)}: wider networks did not have more valid circuits")


def _complexity_judge(c: Correlation) -> Verdict:
    if not c.defined:
        return Verdict("undetermined", "no correlation could be computed")
    r = c.statistic
    if c.significant and abs(r) >= 0.3:
        return Verdict("agrees", f"|ρ| = {fmt_abs(r)} ≥ 0.3 and significant")
    if c.significant:
        return Verdict("partly agrees", f"significant but weak (|ρ| = {fmt_abs(r)} < 0.3)")
    return Verdict("disagrees", f"not significant (p = {fmt_p(c.p_value)})")


PUBLISHED: dict[str, PublishedFinding] = {
    "l1": PublishedFinding(
        1,
        "Induced sparsity",
        "L1 regularization of the weights shows only a weak correlation with circuit uniqueness.",
        "agrees if |ρ| < 0.3, partly if 0.3 ≤ |ρ| < 0.6, else disagrees",
        _weak_judge,
    ),
    "orthogonality": PublishedFinding(
        2,
        "Orthogonality",
        "A penalty pushing hidden activations towards orthogonality shows a weak "
        "correlation with uniqueness, sometimes promoting non-uniqueness.",
        "agrees if |ρ| < 0.3, partly if 0.3 ≤ |ρ| < 0.6, else disagrees",
        _weak_judge,
    ),
    "capacity": PublishedFinding(
        3,
        "Capacity",
        "More hidden neurons give strongly more valid circuits.",
        "agrees if ρ ≥ 0.6 with p < 0.05, partly if positive and significant but weaker",
        _capacity_judge,
    ),
    "task-complexity": PublishedFinding(
        4,
        "Task complexity",
        "Simpler tasks collapse networks onto one causal pathway with increasingly "
        "redundant circuits; task complexity (effective rank) predicts non-uniqueness.",
        "agrees if |ρ| ≥ 0.3 with p < 0.05, partly if significant but weaker",
        _complexity_judge,
    ),
}
PRESETS = ("l1", "orthogonality", "capacity", "task-complexity")


def published_for(experiment: str) -> PublishedFinding | None:
    """The published finding an experiment tests; None for a custom experiment."""
    key = experiment.strip().lower().replace("_", "-")
    if key.startswith("task-complexity") or key == "complexity":  # the stacks variant too
        return PUBLISHED["task-complexity"]
    return PUBLISHED.get(key)


def finding_rank(experiment: str) -> int:
    """Sort key: the number of the finding the experiment tests; custom experiments last."""
    f = published_for(experiment)
    return f.number if f is not None else len(PUBLISHED) + 1
