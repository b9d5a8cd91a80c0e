"""How the report writes numbers, in one format: whole numbers in full, every other
number to 3 significant figures, thousands separated by commas.

Missing or undefined values (NaN, None) are written as an en dash, "–".
"""

from __future__ import annotations

import math

from circuit_census.analysis.summaries import CountSummary

MISSING = "–"
MINUS = "−"


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_num(v: float | int | None) -> str:
    """``12,345`` (whole), ``16.5``, ``0.235``, ``0.6``, ``12,300`` (12,345.6),
    ``0.000797``, ``1.23e-05``."""
    if _missing(v):
        return MISSING
    if isinstance(v, int) and not isinstance(v, bool):  # exact at any size
        return f"{v:,}".replace("-", MINUS)
    v = float(v)  # type: ignore[arg-type]
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}".replace("-", MINUS)
    rounded = float(f"{v:.3g}")
    if rounded == int(rounded):
        return f"{int(rounded):,}".replace("-", MINUS)
    return f"{rounded:.3g}".replace("-", MINUS)


def fmt_p(p: float) -> str:
    """A p-value: ``< 0.001`` below a thousandth, else 3 significant figures."""
    if _missing(p):
        return MISSING
    return "< 0.001" if p < 1e-3 else fmt_num(p)


def p_equals(p: float, name: str = "p") -> str:
    """``p = 0.0123`` or ``p < 0.001``."""
    text = fmt_p(p)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def fmt_r(r: float) -> str:
    """A correlation with its sign: ``+0.42``, ``−0.0512``, ``0``."""
    if _missing(r):
        return MISSING
    if r == 0:
        return "0"
    text = fmt_num(abs(r))
    return ("+" if r > 0 else MINUS) + text


def fmt_ci(low: float, high: float) -> str:
    """An interval, ``[−0.12, +0.40]``."""
    if _missing(low) or _missing(high):
        return MISSING
    return f"[{fmt_r(low)}, {fmt_r(high)}]"


def fmt_fraction_ci(low: float, high: float) -> str:
    """A fraction's interval, ``[0.25, 0.75]``."""
    if _missing(low) or _missing(high):
        return MISSING
    return f"[{fmt_num(low)}, {fmt_num(high)}]"


def fmt_iqr(s: CountSummary) -> str:
    """The interquartile range of a measure, ``3–12``."""
    return MISSING if s.n == 0 else f"{fmt_num(s.q25)}–{fmt_num(s.q75)}"
