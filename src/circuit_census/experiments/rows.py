"""The row schema of a study, written once: :class:`Row`, one per (condition, seed).

The store's SQL columns (:data:`COLUMNS`), its boolean and JSON columns and the column
order of exports are all derived from :class:`Row`'s fields: a field's Python type gives
its SQLite type (``str`` TEXT, ``int`` and ``bool`` INTEGER, ``float`` REAL, a ``dict``
TEXT holding canonical JSON), and a field's ``constraint`` metadata is added after it.
``docs/study.md`` says what every column means.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple, NewType

import numpy as np

Json = dict[str, Any]
# A count that must stay exact at any size (candidates can pass 2^64, interpretations
# 2^126): stored as the decimal text of the integer, read back as int.
ExactCount = NewType("ExactCount", int)


def _constraint(text: str) -> Any:
    return field(metadata={"constraint": text})


@dataclass(frozen=True)
class Row:
    """One stored result: a trained model of one condition, its census and measures."""

    key: str = _constraint("PRIMARY KEY")  # run_key of ``settings``
    experiment: str = _constraint("NOT NULL")
    factor: str  # the row factor (task sweeps: task_complexity)
    factor_value: float | None  # numeric reading of the level (None: categorical)
    factor_label: str
    level: int  # index of the level within the experiment
    task: str
    task_complexity: float
    n_inputs: int
    n_outputs: int
    hidden: str  # "4", "3,3"
    width: int  # widest hidden layer
    depth: int
    activation: str
    l1: float
    l2: float
    orthogonality: float
    dropout: float
    seed: int
    converged: bool
    final_loss: float | None  # None when not finite
    val_accuracy: float
    epochs: int
    # The uniqueness measures, per output and averaged over outputs (one output: its own).
    n_candidates: ExactCount  # admissible circuits of one output's census
    n_valid: float
    n_minimal: float | None  # None: estimated (no minimal circuits without the census)
    valid_fraction: float  # n_valid / n_candidates, per output, averaged
    identifiable: float | None  # fraction of outputs with exactly one minimal circuit
    # An estimated row (experiments with ``estimate = N``, past the exact limit): n_valid
    # and valid_fraction come from N uniform draws, with the fraction's 95% Wilson
    # interval (averaged over outputs); None on exact rows.
    estimated: bool
    valid_fraction_low: float | None
    valid_fraction_high: float | None
    # The joint census of all outputs together (one output: the same census); None where
    # its space exceeds work.JOINT_MAX_CANDIDATES.
    n_candidates_joint: ExactCount | None
    n_valid_joint: ExactCount | None
    n_minimal_joint: ExactCount | None
    identifiable_joint: bool | None
    # Explanations beyond circuits (experiments with ``explanations = true``; one output):
    # interpretations of the valid circuits (in all; median per circuit), formulas with a
    # valid mapping, and their minimal mappings in all. None where not computed.
    interpretations_total: ExactCount | None
    interpretations_median: float | None
    n_formulas: int | None
    minimal_mappings_total: ExactCount | None
    measures: Json
    settings: Json  # run_description(condition, seed)
    valid_stored: int
    train_seconds: float
    census_seconds: float
    created_at: str | None = None  # set by the store when written

    def to_dict(self) -> dict[str, Any]:
        """The row as ``{column: value}`` (JSON columns still as dicts)."""
        return {name: getattr(self, name) for name in COLUMN_NAMES}


class CircuitSet(NamedTuple):
    """Circuits stored with a row: one output's minimal or valid circuits."""

    output: int
    kind: str  # "minimal" or "valid"
    n_total: int  # how many there are
    bits: np.ndarray  # the stored ones, (n_stored, n_words) uint64 bitsets


_SQL_TYPES = {
    str: "TEXT",
    int: "INTEGER",
    bool: "INTEGER",
    float: "REAL",
    dict: "TEXT",
    ExactCount: "TEXT",
}


def _base_type(hint: Any) -> type:
    """``float | None`` -> float, ``dict[str, Any]`` -> dict, ``int`` -> int."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return typing.get_origin(hint) or hint


_TYPES = {name: _base_type(hint) for name, hint in typing.get_type_hints(Row).items()}

# (name, SQLite type) of every column, in order.
COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (f.name, " ".join(filter(None, (_SQL_TYPES[_TYPES[f.name]], f.metadata.get("constraint")))))
    for f in fields(Row)
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)
BOOL_COLUMNS = tuple(name for name in COLUMN_NAMES if _TYPES[name] is bool)
JSON_COLUMNS = tuple(name for name in COLUMN_NAMES if _TYPES[name] is dict)
EXACT_COLUMNS = tuple(name for name in COLUMN_NAMES if _TYPES[name] is ExactCount)
# The columns of an export, in order: every column but the JSON ones.
SCALAR_COLUMNS = tuple(name for name in COLUMN_NAMES if name not in JSON_COLUMNS)
