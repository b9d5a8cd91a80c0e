"""Emergence: when, in each model's own training run, its first valid circuit appears."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from circuit_census.analysis.rows import factor_value, is_included, measure_of


@dataclass(frozen=True)
class FirstValid:
    """Over the kept models of a progress series: the earliest checkpoint with a valid
    circuit, per model (median and quartiles), and how many models never had one."""

    n_models: int
    n_with: int  # models with a valid circuit at some checkpoint
    median: float
    q25: float
    q75: float


def first_valid(rows: Sequence[Mapping[str, object]]) -> FirstValid:
    """The earliest training progress at which each model (seed) has a valid circuit."""
    earliest: dict[object, float] = {}
    for r in rows:
        if not is_included(r):
            continue
        seed = r.get("seed")
        earliest.setdefault(seed, math.inf)
        if measure_of(r, "n_valid") > 0:
            earliest[seed] = min(earliest[seed], factor_value(r))
    found = np.asarray([v for v in earliest.values() if math.isfinite(v)], dtype=np.float64)
    if found.size == 0:
        return FirstValid(len(earliest), 0, math.nan, math.nan, math.nan)
    q25, median, q75 = np.percentile(found, [25, 50, 75])
    return FirstValid(len(earliest), int(found.size), float(median), float(q25), float(q75))
