"""The study's four findings as signed claims about named measures, and the verdict rule.

A finding is tested only where a sweep declares it (``finding = N`` in an experiment),
never because of an experiment's name. Each claim names a measure and a region for
Spearman's rho of that measure with the swept factor; a claim *agrees* when the whole 95%
bootstrap interval of rho lies in the region, *disagrees* when the whole interval lies
outside it, and is *inconclusive* otherwise (an undefined rho or interval included).
The Findings section of ``docs/definitions.md`` states each finding in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VERDICTS = ("agrees", "disagrees", "inconclusive")


@dataclass(frozen=True)
class Region:
    """An interval of rho, ``low < rho < high`` with either end closed where said."""

    low: float
    high: float
    closed_low: bool = False
    closed_high: bool = False

    def contains(self, rho: float) -> bool:
        above = rho >= self.low if self.closed_low else rho > self.low
        below = rho <= self.high if self.closed_high else rho < self.high
        return above and below

    def covers(self, low: float, high: float) -> bool:
        """Whether the whole interval ``[low, high]`` lies in the region."""
        return self.contains(low) and self.contains(high)

    def misses(self, low: float, high: float) -> bool:
        """Whether the interval ``[low, high]`` and the region share no point."""
        if high < self.low or low > self.high:
            return True
        if high == self.low:
            return not self.closed_low
        if low == self.high:
            return not self.closed_high
        return False


@dataclass(frozen=True)
class Claim:
    """One signed claim: rho of ``measure`` with the factor lies in ``region``."""

    measure: str  # a row measure: n_valid, n_minimal, valid_fraction, identifiable
    region: Region
    text: str  # the claim in symbols, e.g. "|ρ| < 0.3"

    def verdict(self, ci_low: float, ci_high: float) -> str:
        """agrees / disagrees / inconclusive from the 95% interval of rho."""
        if math.isnan(ci_low) or math.isnan(ci_high):
            return "inconclusive"
        if self.region.covers(ci_low, ci_high):
            return "agrees"
        if self.region.misses(ci_low, ci_high):
            return "disagrees"
        return "inconclusive"


@dataclass(frozen=True)
class Finding:
    """One of the study's findings: its number, title, statement and claims."""

    number: int
    title: str
    statement: str
    claims: tuple[Claim, ...]
    stratify: bool = False  # compare only among tasks with the same inputs and outputs


WEAK = Region(-0.3, 0.3)
NOT_NEGATIVE = Region(0.0, 1.0, closed_low=True, closed_high=True)
STRONG_POSITIVE = Region(0.5, 1.0, closed_low=True, closed_high=True)
NEGATIVE = Region(-1.0, 0.0, closed_low=True)
POSITIVE = Region(0.0, 1.0, closed_high=True)

FINDINGS: dict[int, Finding] = {
    1: Finding(
        1,
        "L1 sparsity",
        "The strength of an L1 penalty on the weights has only a weak relation with uniqueness.",
        (Claim("n_valid", WEAK, "|ρ| < 0.3"), Claim("n_minimal", WEAK, "|ρ| < 0.3")),
    ),
    2: Finding(
        2,
        "Orthogonality",
        "The strength of an orthogonality penalty on hidden activations has only a weak "
        "relation with the number of valid circuits, and sometimes promotes "
        "non-uniqueness (it does not lower the number of minimal circuits).",
        (Claim("n_valid", WEAK, "|ρ| < 0.3"), Claim("n_minimal", NOT_NEGATIVE, "ρ ≥ 0")),
    ),
    3: Finding(
        3,
        "Capacity",
        "Wider networks have strongly more valid circuits.",
        (Claim("n_valid", STRONG_POSITIVE, "ρ ≥ 0.5"),),
    ),
    4: Finding(
        4,
        "Task complexity",
        "Among tasks with the same number of inputs and outputs, simpler tasks have more "
        "redundant circuits (a smaller valid fraction for more complex tasks) and collapse "
        "onto one causal pathway (more minimal circuits for more complex tasks).",
        (
            Claim("valid_fraction", NEGATIVE, "ρ < 0"),
            Claim("n_minimal", POSITIVE, "ρ > 0"),
        ),
        stratify=True,
    ),
}


def finding(number: int) -> Finding:
    """The finding with this number (1-4)."""
    return FINDINGS[number]
