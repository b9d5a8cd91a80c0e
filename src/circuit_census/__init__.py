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
    "InputError": "circuit_census.errors",
    "Task": "circuit_census.tasks.boolean",
    "make_task": "circuit_census.tasks.boolean",
    "builtin_tasks": "circuit_census.tasks.boolean",
    "task_complexity": "circuit_census.tasks.boolean",
    "train_validation": "circuit_census.tasks.boolean",
    "effective_rank": "circuit_census.tasks.complexity",
    "load_model": "circuit_census.training.modelfiles",
    "save_model": "circuit_census.training.modelfiles",
    "load_data": "circuit_census.training.modelfiles",
    "TrainConfig": "circuit_census.training.config",
    "TrainedModel": "circuit_census.training.loop",
    "train_models": "circuit_census.training.loop",
    "CircuitSpace": "circuit_census.circuits.space",
    "CensusResult": "circuit_census.circuits.census",
    "CensusSettings": "circuit_census.circuits.settings",
    "RunOptions": "circuit_census.circuits.settings",
    "Criterion": "circuit_census.circuits.criteria",
    "census": "circuit_census.circuits.census",
    "census_outputs": "circuit_census.circuits.census",
    "combine_results": "circuit_census.circuits.census",
    "evaluate_circuit": "circuit_census.circuits.ablation",
    "read_circuits": "circuit_census.circuits.circuitfile",
    "minimal_circuits": "circuit_census.measures.uniqueness",
    "circuit_measures": "circuit_census.measures.uniqueness",
    "census_measures": "circuit_census.measures.uniqueness",
    "DiscoveryOptions": "circuit_census.discovery.methods",
    "discover": "circuit_census.discovery.methods",
    "discover_and_grade": "circuit_census.discovery.grading",
    "method_summaries": "circuit_census.discovery.grading",
    "Explanation": "circuit_census.explanations.explain",
    "ExplanationSummary": "circuit_census.explanations.explain",
    "explain": "circuit_census.explanations.explain",
    "explain_summary": "circuit_census.explanations.explain",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'circuit_census' has no attribute {name!r}")
