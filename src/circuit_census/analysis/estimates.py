"""Estimated rows of a study: conditions past the exact census limit whose valid counts
were estimated from uniformly drawn circuits, summarized per condition for the report.

They are estimates, not counts, so they enter no statistic or verdict; the report shows
them apart, each with how many circuits were drawn and how wide its intervals are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from circuit_census.analysis.rows import (
    architecture_of,
    as_float,
    is_estimated,
    is_true,
    natural_key,
)
from circuit_census.analysis.summaries import CountSummary

Rows = Sequence[Mapping[str, object]]


@dataclass(frozen=True)
class EstimatedCondition:
    """One condition's estimated censuses over its converged models."""

    experiment: str
    level: str
    network: str
    n_models: int  # converged models
    draws: int  # circuits drawn per census
    n_candidates: int  # exact, per census
    n_valid: CountSummary  # estimated valid circuits over models
    valid_fraction: CountSummary  # estimated valid fraction over models
    widest_interval: float  # the widest 95% interval of one model's valid fraction


def estimated_conditions(rows: Rows) -> list[EstimatedCondition]:
    """The estimated rows' conditions (converged models only), in study order."""
    groups: dict[tuple[str, int], list[Mapping[str, object]]] = {}
    for r in rows:
        if is_estimated(r) and is_true(r.get("converged")):
            groups.setdefault((str(r["experiment"]), int(r["level"])), []).append(r)
    out = []
    for (experiment, _), group in groups.items():
        first = group[0]
        settings = first.get("settings")
        draws = settings.get("estimate", 0) if isinstance(settings, Mapping) else 0
        widths = [
            as_float(r.get("valid_fraction_high")) - as_float(r.get("valid_fraction_low"))
            for r in group
        ]
        out.append(
            EstimatedCondition(
                experiment=experiment,
                level=str(first["factor_label"]),
                network=architecture_of(first),
                n_models=len(group),
                draws=int(draws),
                n_candidates=int(first["n_candidates"]),
                n_valid=CountSummary.of([as_float(r["n_valid"]) for r in group]),
                valid_fraction=CountSummary.of([as_float(r["valid_fraction"]) for r in group]),
                widest_interval=max(widths),
            )
        )
    return sorted(out, key=lambda c: (c.experiment, natural_key(c.level)))
