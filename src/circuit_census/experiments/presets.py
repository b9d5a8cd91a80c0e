"""The study's built-in experiments, as ordinary sweep documents.

Four presets, each a sweep (``circuit-census study preset NAME`` prints its TOML), each
experiment declaring the finding it tests (``finding = N``; docs/definitions.md, Findings):

- ``l1`` (finding 1): XOR, L1 strength from 0 up to the largest level at which most seeds
  still converge (measured at width 4: about 60% at 0.007, 50% at 0.01), at width 4 (the
  published base, ``l1``) and at width 8 (``l1-width8``), each with its own verdict.
- ``orthogonality`` (finding 2): the same for the hidden-activation orthogonality penalty
  (about 63% converge at 0.02, 50% at 0.03), ``orthogonality`` and ``orthogonality-width8``.
- ``capacity`` (finding 3): XOR with one hidden layer of width 2 to 12, and two hidden
  layers of equal width (the report judges each depth on its own).
- ``task-complexity``: single-output tasks of 2 and of 3 inputs (finding 4; the report
  judges each input count on its own and pooled), and multi-output stacks of 1 to 6
  two-input gates (``task-complexity-stacks``, descriptive: no finding, since each stack
  size is its own (inputs, outputs) stratum), width 6.
- ``emergence``: the base setting (2-4-1 on XOR) censused at eleven points of each model's
  own training run (progress 0, 0.1, ..., 1; progress 0 is the initialization), with the
  accuracy criterion, so that a valid circuit means one that computes the task: how the
  census changes while the network learns. Descriptive, no finding.

Two scales: ``default`` (30 seeds per level) and ``quick`` (8 seeds, fewer levels). Every
quick condition is also a default condition with the same settings, so a default run in
a directory that holds a quick run reuses its rows. ``docs/study.md`` gives the measured
convergence rates and timings behind these choices.
"""

from __future__ import annotations

import copy
from typing import Any

from circuit_census.circuits.settings import CensusSettings
from circuit_census.errors import InputError
from circuit_census.experiments.sweeps import Sweep, sweep_from_dict
from circuit_census.training.config import TrainConfig

PRESET_NAMES = (
    "l1",
    "orthogonality",
    "capacity",
    "task-complexity",
    "emergence",
    "explanations",
    "discovery",
)
# What `reproduce` runs: the findings' experiments and emergence.
REPRODUCTION = ("l1", "orthogonality", "capacity", "task-complexity", "emergence")
BASE_WIDTH = 4  # the published base setting: 2-4-1 on XOR
ROBUSTNESS_WIDTH = 8
SCALES = ("default", "quick")
SEEDS = {"default": 30, "quick": 8}

# Settings shared by every preset: TrainConfig's and CensusSettings' defaults, written
# out so that a dumped preset documents them.
_TRAINING_SHOWN = (
    "optimizer",
    "lr",
    "epochs",
    "loss_target",
    "patience",
    "min_accuracy",
    "repeats",
    "val_repeats",
    "noise",
)
TRAINING: dict[str, Any] = {name: getattr(TrainConfig(), name) for name in _TRAINING_SHOWN}
CENSUS: dict[str, Any] = {
    name: getattr(CensusSettings(), name) for name in ("ablation", "criterion", "threshold")
}

L1_LEVELS = [0.0, 0.0001, 0.0003, 0.001, 0.002, 0.004, 0.007]
ORTHOGONALITY_LEVELS = [0.0, 0.001, 0.003, 0.006, 0.01, 0.015, 0.02]
WIDTHS = list(range(2, 13))
DEPTH2 = [[2, 2], [3, 3], [4, 4]]
TASK_WIDTH = 6
SINGLE_TASKS = [
    "and",  # 1.0
    "or",  # 1.80
    "xor",  # 2.0
    "00000001",  # three-input AND, 1.0
    "01111111",  # three-input OR, 1.67
    "majority3",  # 1.83
    "00011110",  # 1.93
    "parity3",  # 2.0
]
# Nested stacks with strictly increasing complexity: 1.0, 1.83, 2.57, 2.79, 3.39, 3.61.
STACK = ["and", "or", "nand", "nor", "imp", "cnimp"]
STACKS = ["+".join(STACK[:k]) for k in range(1, len(STACK) + 1)]

QUICK_LEVELS: dict[str, list[Any]] = {
    "l1": [0.0, 0.001, 0.007],
    "l1-width8": [0.0, 0.001, 0.007],
    "orthogonality": [0.0, 0.003, 0.02],
    "orthogonality-width8": [0.0, 0.003, 0.02],
    "capacity": [2, 4, 6, 8, [2, 2], [3, 3]],
    "task-complexity": ["and", "or", "xor", "majority3", "parity3"],
    "task-complexity-stacks": [STACKS[0], STACKS[2], STACKS[5]],
    "emergence": [0.0, 0.2, 0.5, 1.0],
    "explanations-xor": [3, 5, [3, 3]],
    "explanations-and": [3, 5, [3, 3]],
    "discovery": [4, [3, 3]],
    "discovery-3-input": ["majority3"],
}
EXPLANATION_LEVELS = [3, 4, 5, 6, [3, 3]]
DISCOVERY_SEEDS = 5  # seeds of each discovery method per model
PROGRESS_LEVELS = [round(0.1 * k, 1) for k in range(11)]

DESCRIPTIONS = {
    "l1": "L1 regularization of the weights, width 4 (finding 1: only a weak relation)",
    "l1-width8": "L1 regularization of the weights, width 8 (finding 1 at a second width)",
    "orthogonality": "Orthogonality penalty on hidden activations, width 4 (finding 2: "
    "weak, sometimes promoting non-uniqueness)",
    "orthogonality-width8": "Orthogonality penalty on hidden activations, width 8 "
    "(finding 2 at a second width)",
    "capacity": "Hidden width, one and two hidden layers (finding 3: strongly more valid circuits)",
    "task-complexity": "Single-output tasks of 2 and of 3 inputs (finding 4, within each "
    "input count)",
    "emergence": "The census of each model of the base setting at eleven points of its own "
    "training run (accuracy criterion: a valid circuit computes the task)",
    "explanations-xor": "Interpretations, algorithms and mappings beside circuits: XOR, "
    "width 3 to 6 and 2-3-3-1 (descriptive)",
    "explanations-and": "The same on AND (descriptive)",
    "discovery": "Circuit-discovery methods graded against the census: 2-4-1, 2-8-1 and "
    "2-3-3-1 XOR (descriptive)",
    "discovery-3-input": "Circuit-discovery methods on a 3-input task, majority3, 3-6-1 "
    "(descriptive)",
    "task-complexity-stacks": "Multi-output stacks of 1 to 6 gates; per-output censuses, "
    "measures averaged over outputs (descriptive, no finding)",
}


def _regularizer(factor: str, levels: list[float], finding: int) -> dict[str, dict[str, Any]]:
    """A regularizer experiment at the base width and at the robustness width."""
    base = {"factor": factor, "levels": levels, "task": "xor", "finding": finding}
    return {
        factor: {**base, "hidden": [BASE_WIDTH]},
        f"{factor}-width{ROBUSTNESS_WIDTH}": {**base, "hidden": [ROBUSTNESS_WIDTH]},
    }


def _experiments(name: str) -> dict[str, dict[str, Any]]:
    if name == "l1":
        return _regularizer("l1", L1_LEVELS, 1)
    if name == "orthogonality":
        return _regularizer("orthogonality", ORTHOGONALITY_LEVELS, 2)
    if name == "capacity":
        levels = [*WIDTHS, *DEPTH2]
        return {"capacity": {"factor": "width", "levels": levels, "task": "xor", "finding": 3}}
    if name == "task-complexity":
        return {
            "task-complexity": {
                "factor": "task",
                "levels": SINGLE_TASKS,
                "hidden": [TASK_WIDTH],
                "finding": 4,
            },
            "task-complexity-stacks": {"factor": "task", "levels": STACKS, "hidden": [TASK_WIDTH]},
        }
    if name == "emergence":
        return {
            "emergence": {
                "factor": "progress",
                "levels": PROGRESS_LEVELS,
                "task": "xor",
                "hidden": [BASE_WIDTH],
                "census": {
                    "criterion": "accuracy",
                    "threshold": CensusSettings(criterion="accuracy").threshold,
                },
            }
        }
    if name == "explanations":
        return {
            f"explanations-{task}": {
                "factor": "width",
                "levels": EXPLANATION_LEVELS,
                "task": task,
                "explanations": True,
            }
            for task in ("xor", "and")
        }
    if name == "discovery":
        return {
            "discovery": {
                "factor": "width",
                "levels": [BASE_WIDTH, ROBUSTNESS_WIDTH, [3, 3]],
                "task": "xor",
                "discovery": DISCOVERY_SEEDS,
            },
            "discovery-3-input": {
                "factor": "task",
                "levels": ["majority3"],
                "hidden": [TASK_WIDTH],
                "discovery": DISCOVERY_SEEDS,
            },
        }
    raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")


def preset_document(names: str | list[str] | tuple[str, ...], scale: str = "default") -> dict:
    """The sweep document (nested dicts, as read from TOML) of one or several presets."""
    if scale not in SCALES:
        raise InputError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    names = [names] if isinstance(names, str) else list(names)
    experiments: dict[str, dict[str, Any]] = {}
    for name in names:
        for exp_name, exp in _experiments(name).items():
            exp = copy.deepcopy(exp)
            if scale == "quick":
                exp["levels"] = copy.deepcopy(QUICK_LEVELS[exp_name])
            experiments[exp_name] = {"description": DESCRIPTIONS[exp_name], **exp}
    title = names[0] if len(names) == 1 else "reproduction"
    return {
        "study": {
            "name": f"circuit-census {title} study ({scale} scale)",
            "description": "The built-in experiments of circuit-census (L1, "
            "orthogonality, capacity, task complexity) on fresh seeds, each testing the "
            "finding it declares.",
        },
        "defaults": {
            "activation": "relu",
            "seeds": SEEDS[scale],
            "training": dict(TRAINING),
            "census": dict(CENSUS),
        },
        "experiments": experiments,
    }


def preset_sweep(names: str | list[str] | tuple[str, ...], scale: str = "default") -> Sweep:
    return sweep_from_dict(preset_document(names, scale), source=f"preset {names}")


def reproduction_sweep(quick: bool = False) -> Sweep:
    """The findings' experiments and emergence as one study (``circuit-census reproduce``)."""
    return preset_sweep(list(REPRODUCTION), "quick" if quick else "default")
