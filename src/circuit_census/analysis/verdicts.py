"""The verdict table: every claim of every declared finding, judged where it was tested.

One :class:`VerdictRow` per (experiment, stratum, claim): Spearman's rho of the claim's
measure with the factor over converged models, its 95% bootstrap interval, the verdict
from the interval (:meth:`~circuit_census.analysis.findings.Claim.verdict`), the p-value
Holm-adjusted over every test of the table, the levels at which the measure does not vary,
and the same test with non-converged models included (survivorship). A finding that
compares only within strata (task complexity) also gets a pooled stratified test.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

from circuit_census.analysis.findings import FINDINGS, Claim, Finding
from circuit_census.analysis.rows import factor_value, is_included, measure_of, stratum_of
from circuit_census.analysis.series import Series, SeriesStats, has_census
from circuit_census.analysis.statistics import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    MEASURE_LABELS,
    Correlation,
    holm,
    stratified_spearman,
)

POOLED = "pooled over strata"
# Below these a claim is inconclusive whatever its interval says: a percentile bootstrap
# of a handful of models, or of two levels, is not evidence.
MIN_MODELS = 10
MIN_LEVELS = 3


@dataclass(frozen=True)
class VerdictRow:
    """One claim judged on one series (or pooled over a finding's strata)."""

    experiment: str
    finding: int
    claim: str  # e.g. "ρ(minimal circuits) > 0"
    measure: str
    stratum: str
    n: int
    rho: float
    ci_low: float
    ci_high: float
    p: float
    p_holm: float
    verdict: str
    zero_variance_levels: int  # levels at which the measure does not vary
    levels: int
    n_all: int  # the same test with non-converged models included
    rho_all: float
    ci_low_all: float
    ci_high_all: float
    verdict_all: str
    note: str = ""


# The columns of findings.csv: the fixed ones first, then the extras.
CSV_COLUMNS = tuple(f.name for f in fields(VerdictRow))
CSV_FIRST = (
    "experiment",
    "finding",
    "claim",
    "measure",
    "stratum",
    "n",
    "rho",
    "ci_low",
    "ci_high",
    "p_holm",
    "verdict",
)


def claim_text(claim: Claim) -> str:
    """The claim with its measure named: ``|ρ(valid circuits)| < 0.3``."""
    return claim.text.replace("ρ", f"ρ({MEASURE_LABELS[claim.measure]})", 1)


def _row(
    experiment: str,
    finding: Finding,
    claim: Claim,
    stratum: str,
    c: Correlation,
    c_all: Correlation,
    zero: int,
    levels: int,
    levels_kept: int,
) -> VerdictRow:
    """A verdict row; too few models or levels make it inconclusive, with a note."""
    short = _too_little(c.n, levels_kept)
    return VerdictRow(
        experiment=experiment,
        finding=finding.number,
        claim=claim_text(claim),
        measure=claim.measure,
        stratum=stratum,
        n=c.n,
        rho=c.statistic,
        ci_low=c.ci_low,
        ci_high=c.ci_high,
        p=c.p_value,
        p_holm=math.nan,
        verdict="inconclusive" if short else claim.verdict(c.ci_low, c.ci_high),
        zero_variance_levels=zero,
        levels=levels,
        n_all=c_all.n,
        rho_all=c_all.statistic,
        ci_low_all=c_all.ci_low,
        ci_high_all=c_all.ci_high,
        verdict_all="inconclusive"
        if _too_little(c_all.n, levels_kept)
        else claim.verdict(c_all.ci_low, c_all.ci_high),
        note="; ".join(t for t in (short, c.note) if t),
    )


def _too_little(n: int, levels_kept: int) -> str:
    """Why there is too little data for a verdict ("" when there is enough)."""
    if n < MIN_MODELS:
        return f"too little data: {n} models, fewer than {MIN_MODELS}"
    if levels_kept < MIN_LEVELS:
        return f"too little data: {levels_kept} levels with models, fewer than {MIN_LEVELS}"
    return ""


def _stratified_test(rows, measure: str, keep, n_resamples: int, seed: int) -> Correlation:
    used = [
        r
        for r in rows
        if keep(r) and not math.isnan(factor_value(r)) and not math.isnan(measure_of(r, measure))
    ]
    return stratified_spearman(
        [factor_value(r) for r in used],
        [measure_of(r, measure) for r in used],
        [stratum_of(r) for r in used],
        measure,
        n_resamples=n_resamples,
        seed=seed,
    )


def _pooled(
    experiment: str,
    finding: Finding,
    rows: Sequence[Mapping[str, object]],
    n_resamples: int,
    seed: int,
) -> list[VerdictRow]:
    """The stratified test of each claim over all strata of an experiment."""
    out = []
    for claim in finding.claims:
        c = _stratified_test(rows, claim.measure, is_included, n_resamples, seed)
        c_all = _stratified_test(rows, claim.measure, has_census, n_resamples, seed)
        levels = len({(stratum_of(r), factor_value(r)) for r in rows if is_included(r)})
        out.append(_row(experiment, finding, claim, POOLED, c, c_all, 0, 0, levels))
    return out


def study_verdicts(
    series: Sequence[Series],
    stats: Sequence[SeriesStats],
    findings: Mapping[str, int],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> list[VerdictRow]:
    """The verdict of every claim of every declared finding (``findings``: experiment ->
    finding number), p-values Holm-adjusted over the whole table. ``series`` and
    ``stats``: the study's series (``split_series``) and their statistics. Experiments
    that declare no finding get no verdict."""
    out: list[VerdictRow] = []
    for experiment, number in sorted(findings.items(), key=lambda kv: kv[1]):
        finding = FINDINGS[number]
        mine = [s for s in stats if s.experiment == experiment and not s.categorical]
        for s in mine:
            for claim in finding.claims:
                out.append(
                    _row(
                        experiment,
                        finding,
                        claim,
                        s.stratum,
                        s.correlation(claim.measure),
                        s.correlation(claim.measure, all_models=True),
                        len(s.zero_variance_levels(claim.measure)),
                        len(s.levels),
                        sum(1 for lv in s.levels if lv.n_converged),
                    )
                )
        rows = [r for part in series if part.experiment == experiment for r in part.rows]
        if finding.stratify and len({stratum_of(r) for r in rows}) > 1:
            out += _pooled(experiment, finding, rows, n_resamples, seed)
    adjusted = holm([v.p for v in out])
    return [replace(v, p_holm=p) for v, p in zip(out, adjusted, strict=True)]


def consistency(verdicts: Sequence[VerdictRow]) -> list[tuple[int, str, str, str]]:
    """Per (finding, claim): whether its verdict is the same everywhere it was tested:
    ``(finding, claim, "same everywhere" / "differs", where each verdict came from)``."""
    groups: dict[tuple[int, str], list[VerdictRow]] = {}
    for v in verdicts:
        if v.stratum != POOLED:
            groups.setdefault((v.finding, v.claim), []).append(v)
    out = []
    for (number, claim), vs in sorted(groups.items(), key=lambda kv: kv[0][0]):
        words = {v.verdict for v in vs}
        where = "; ".join(f"{v.verdict} in {v.experiment} ({v.stratum})" for v in vs)
        same = f"same everywhere ({words.pop()})" if len(words) == 1 else "differs"
        out.append((number, claim, same, where))
    return out


def _csv_value(v: object) -> object:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def findings_csv(verdicts: Sequence[VerdictRow]) -> str:
    """The verdict table as CSV text (``findings.csv``): the fixed columns first."""
    columns = CSV_FIRST + tuple(c for c in CSV_COLUMNS if c not in CSV_FIRST)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for v in verdicts:
        writer.writerow([_csv_value(getattr(v, c)) for c in columns])
    return buf.getvalue()


__all__ = [
    "CSV_FIRST",
    "POOLED",
    "VerdictRow",
    "consistency",
    "findings_csv",
    "study_verdicts",
]
