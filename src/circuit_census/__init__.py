"""circuit-census: exact censuses of every circuit in small MLPs trained on Boolean tasks.

The public API is importable from here; modules load on first use, so that
``import circuit_census`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Network": "circuit_census.network",
    "InputError": "circuit_census.network",
    "Task": "circuit_census.tasks",
    "make_task": "circuit_census.tasks",
    "builtin_tasks": "circuit_census.tasks",
    "task_complexity": "circuit_census.tasks",
    "train_validation": "circuit_census.tasks",
    "effective_rank": "circuit_census.rank",
    "load_model": "circuit_census.modelio",
    "save_model": "circuit_census.modelio",
    "load_data": "circuit_census.modelio",
    "TrainConfig": "circuit_census.training",
    "TrainedModel": "circuit_census.training",
    "train_models": "circuit_census.training",
    "CircuitSpace": "circuit_census.circuits.space",
    "CensusResult": "circuit_census.circuits.census",
    "census": "circuit_census.circuits.census",
    "census_outputs": "circuit_census.circuits.census",
    "combine_results": "circuit_census.circuits.census",
    "evaluate_circuit": "circuit_census.circuits.ablation",
    "read_circuits": "circuit_census.circuits.circuitfile",
    "minimal_circuits": "circuit_census.measures",
    "circuit_measures": "circuit_census.measures",
    "census_measures": "circuit_census.measures",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'circuit_census' has no attribute {name!r}")
