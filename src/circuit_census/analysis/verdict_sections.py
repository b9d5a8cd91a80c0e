"""The report's verdict sections: the summary of verdicts, whether each claim's verdict
is the same everywhere it was tested, and survivorship (what excluding non-converged
models does)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from circuit_census.analysis.document import (
    Block,
    Heading,
    Para,
    Table,
)
from circuit_census.analysis.findings import FINDINGS
from circuit_census.analysis.formatting import (
    fmt_ci,
    fmt_num,
    fmt_p,
    fmt_r,
)
from circuit_census.analysis.series import SeriesStats
from circuit_census.analysis.verdicts import (
    VerdictRow,
    consistency,
)

Rows = Sequence[Mapping[str, object]]


# ------------------------------------------------------------------------ summary


def _rho_ci(rho: float, low: float, high: float) -> str:
    """``+0.21 [+0.05, +0.36]``; says so when there is no interval."""
    ci = fmt_ci(low, high)
    if fmt_r(rho) == "–":
        return "not computed"
    return f"{fmt_r(rho)} " + (ci if ci != "–" else "(no interval)")


def _where(v: VerdictRow) -> str:
    return f"{v.experiment} ({v.stratum})"


def summary_section(
    verdicts: Sequence[VerdictRow], stats: Sequence[SeriesStats], findings: Mapping[str, int]
) -> list[Block]:
    """The verdict table, and which experiments and findings have no verdict."""
    rows = tuple(
        (
            str(v.finding),
            v.claim,
            _where(v),
            fmt_num(v.n),
            _rho_ci(v.rho, v.ci_low, v.ci_high),
            fmt_p(v.p_holm),
            v.verdict + (" †" if v.zero_variance_levels else ""),
        )
        for v in sorted(verdicts, key=lambda v: v.finding)
    )
    blocks: list[Block] = [Heading(2, "Summary: verdicts", "summary")]
    if rows:
        blocks.append(
            Table(
                ("finding", "claim", "tested in", "n", "ρ [95% CI]", "Holm p", "verdict"),
                rows,
                (False, False, False, True, True, True, False),
                caption="Each claim of each declared finding, judged from the 95% bootstrap "
                "interval of Spearman's ρ over converged models",
            )
        )
        blocks.append(
            Para(
                "Verdict: agrees when the whole interval lies in the claimed region, "
                "disagrees when it lies wholly outside, inconclusive otherwise. p: Holm-"
                f"adjusted over the {len(verdicts)} tests of this table. †: the measure does "
                "not vary at some levels (see the series' table).",
                css="note",
            )
        )
    else:
        blocks.append(Para("No experiment of this study declares a finding: no verdicts."))
    tested = set(findings.values())
    untested = [f"{n}. {FINDINGS[n].title}" for n in FINDINGS if n not in tested]
    if untested:
        blocks.append(Para("Findings not tested by this study: " + "; ".join(untested) + "."))
    undeclared = sorted({s.experiment for s in stats} - set(findings))
    if undeclared:
        blocks.append(
            Para(
                "Experiments without a declared finding (statistics only, no verdict): "
                + ", ".join(undeclared)
                + "."
            )
        )
    for n in sorted(tested):
        blocks.append(Para(f"**Finding {n}, {FINDINGS[n].title}.** {FINDINGS[n].statement}"))
    return blocks


def robustness_section(verdicts: Sequence[VerdictRow]) -> list[Block]:
    """Whether each claim's verdict is the same everywhere it was tested."""
    rows = tuple((str(n), claim, same, where) for n, claim, same, where in consistency(verdicts))
    if not rows:
        return []
    return [
        Heading(2, "Robustness: the same verdict everywhere?", "robustness"),
        Table(
            ("finding", "claim", "verdict", "where"),
            rows,
            caption="Each claim across the widths, depths and task strata it was tested at",
        ),
    ]


def survivorship_section(
    verdicts: Sequence[VerdictRow], stats: Sequence[SeriesStats]
) -> list[Block]:
    """Models trained, converged and kept per level; and each verdict with every model."""
    blocks: list[Block] = [Heading(2, "Survivorship", "survivorship")]
    level_rows = tuple(
        (
            s.name,
            lv.label,
            fmt_num(lv.n_models),
            fmt_num(lv.n_trained_converged),
            fmt_num(lv.n_converged),
        )
        for s in stats
        for lv in s.levels
    )
    blocks.append(
        Table(
            ("series", "level", "trained", "converged", "kept"),
            level_rows,
            (False, False, True, True, True),
            caption="Models per level: trained, converged, and kept in the statistics "
            "(converged, with a census)",
        )
    )
    if verdicts:
        rows = tuple(
            (
                str(v.finding),
                v.claim,
                _where(v),
                v.verdict,
                fmt_num(v.n_all),
                _rho_ci(v.rho_all, v.ci_low_all, v.ci_high_all),
                v.verdict_all,
                "no" if v.verdict == v.verdict_all else "yes",
            )
            for v in sorted(verdicts, key=lambda v: v.finding)
        )
        blocks.append(
            Table(
                (
                    "finding",
                    "claim",
                    "tested in",
                    "verdict",
                    "n, all",
                    "ρ, all",
                    "verdict, all",
                    "moved",
                ),
                rows,
                (False, False, False, False, True, True, False, False),
                caption="The same tests with non-converged models included (their census "
                "is taken too): does excluding them move a verdict?",
            )
        )
    return blocks
