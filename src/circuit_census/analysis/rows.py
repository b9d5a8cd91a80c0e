"""Reading fields of study rows (plain dicts, one per trained model, as the results store
returns them): numbers, flags, the factor's level, depth and architecture."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping


def as_float(value: object) -> float:
    if value is None or value == "":
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def is_true(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "t"}
    return bool(value) if value is not None else False


def factor_value(row: Mapping[str, object]) -> float:
    """The row's value of its swept factor (``factor_value``, else the factor's own column)."""
    v = as_float(row.get("factor_value"))
    if math.isnan(v):
        v = as_float(row.get(str(row.get("factor", ""))))
    return v


def row_depth(row: Mapping[str, object]) -> int | None:
    d = row.get("depth")
    if d is not None and d != "":
        try:
            return int(d)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            pass
    hidden = row.get("hidden")
    if hidden is None:
        return None
    parts = [p for p in str(hidden).replace(" ", "").split(",") if p]
    return len(parts)


def is_estimated(row: Mapping[str, object]) -> bool:
    """Whether a row holds an estimate (``estimated``) rather than an exact census."""
    return is_true(row.get("estimated"))


def is_included(row: Mapping[str, object]) -> bool:
    """Whether a row enters the statistics: a converged model with an exact census (an
    estimated row never does)."""
    return (
        is_true(row.get("converged"))
        and not is_estimated(row)
        and not math.isnan(as_float(row.get("n_valid")))
    )


def is_categorical(rows: Iterable[Mapping[str, object]]) -> bool:
    """Whether a series' factor has no numeric values (its levels are names)."""
    return all(math.isnan(factor_value(r)) for r in rows)


def level_key(row: Mapping[str, object], categorical: bool) -> float:
    """The level a row belongs to: its factor value, or for a categorical factor the
    level's index (``level``)."""
    return as_float(row.get("level")) if categorical else factor_value(row)


def identifiable_of(row: Mapping[str, object]) -> float:
    """The fraction of the row's outputs that are identifiable (one output: 0 or 1)."""
    v = row.get("identifiable")
    if v is None or v == "":
        m = as_float(row.get("n_minimal"))
        return math.nan if math.isnan(m) else float(m == 1)
    if isinstance(v, str):
        return float(is_true(v)) if v.strip().lower() in {"true", "false"} else as_float(v)
    return float(v)  # type: ignore[arg-type]


def measure_of(row: Mapping[str, object], measure: str) -> float:
    """A row's value of a uniqueness measure (NaN when missing); ``valid_fraction`` falls
    back to ``n_valid / n_candidates`` for rows that do not store it."""
    if measure == "identifiable":
        return identifiable_of(row)
    v = as_float(row.get(measure))
    if math.isnan(v) and measure == "valid_fraction":
        n, total = as_float(row.get("n_valid")), as_float(row.get("n_candidates"))
        v = n / total if total > 0 else math.nan
    return v


# Factor values closer than this (relative) are one level: effective ranks computed from
# different truth tables can differ in the last bits (parity3 1.9999999999999998, xor 2.0).
LEVEL_REL_TOL = 1e-9


def snap_levels(values: Iterable[float], rel_tol: float = LEVEL_REL_TOL) -> dict[float, float]:
    """``value -> level``: values within ``rel_tol`` of their neighbour share a level, the
    smallest of them (NaN values are left out)."""
    out: dict[float, float] = {}
    level = math.nan
    previous = math.nan
    for v in sorted({float(v) for v in values if not math.isnan(float(v))}):
        if math.isnan(previous) or not math.isclose(v, previous, rel_tol=rel_tol, abs_tol=1e-12):
            level = v
        out[v] = level
        previous = v
    return out


def stratum_of(row: Mapping[str, object]) -> tuple[int, int]:
    """A task's (inputs, outputs): tasks are compared on complexity only within one."""
    inputs, outputs = as_float(row.get("n_inputs")), as_float(row.get("n_outputs"))
    return (-1 if math.isnan(inputs) else int(inputs), -1 if math.isnan(outputs) else int(outputs))


def stratum_label(inputs: int, outputs: int) -> str:
    return f"{inputs} inputs, {outputs} output{'s' if outputs != 1 else ''}"


def tasks_of(rows: Iterable[Mapping[str, object]]) -> tuple[str, ...]:
    """The tasks of some rows, sorted, each once."""
    return tuple(sorted({str(r["task"]) for r in rows if r.get("task") is not None}))


def natural_key(text: str) -> list[object]:
    """Sort key putting ``2`` before ``10``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def architecture_of(row: Mapping[str, object]) -> str:
    hidden = str(row.get("hidden", "?")).replace(" ", "").replace(",", "-")
    act = row.get("activation")
    return f"{hidden} {act}" if act else hidden
