"""How the report writes numbers: counts, p-values, correlations and their intervals.

Missing or undefined values (NaN) are written as an en dash, "–".
"""

from __future__ import annotations

import math

from circuit_census.analysis.summaries import CountSummary


def fmt_num(v: float, digits: int = 3) -> str:
    """A count or setting: integers as integers, others to ``digits`` significant digits."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if v == int(v) and abs(v) < 1e7:
        return str(int(v))
    return f"{v:.{digits}g}"


def fmt_p(p: float) -> str:
    """A p-value: scientific below 1e-4, four decimals below 0.01, else three."""
    if math.isnan(p):
        return "–"
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def fmt_r(r: float) -> str:
    """``+0.42``; more digits where two would round onto a strength boundary (0.3, 0.6)."""
    if math.isnan(r):
        return "–"
    digits = 4 if abs(round(r, 2)) in (0.3, 0.6) and abs(r) not in (0.3, 0.6) else 2
    return f"{r:+.{digits}f}".replace("-", "−")


def fmt_abs(r: float) -> str:
    """The size of a correlation, |r|, without a sign."""
    return fmt_r(abs(r)).lstrip("+")


def fmt_ci(low: float, high: float) -> str:
    """A correlation's confidence interval, ``[−0.12, +0.40]``."""
    if math.isnan(low) or math.isnan(high):
        return "–"
    return f"[{fmt_r(low)}, {fmt_r(high)}]"


def fmt_fraction_ci(low: float, high: float) -> str:
    """A fraction's confidence interval, ``[0.25, 0.75]``."""
    return "–" if math.isnan(low) or math.isnan(high) else f"[{low:.2f}, {high:.2f}]"


def fmt_iqr(s: CountSummary) -> str:
    """The interquartile range of a count, ``3–12``."""
    return "–" if s.n == 0 else f"{fmt_num(s.q25)}–{fmt_num(s.q75)}"
