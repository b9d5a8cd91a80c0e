"""The activation functions, in one table that every stage reads (NumPy, kernels, PyTorch).

Each entry names the function as users write it, gives its float64 NumPy form, the integer
code the compiled census kernels dispatch on, its largest slope (a Lipschitz bound) and the
range of its values (the census bounds saturating activations by their limits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from circuit_census.errors import InputError

LEAKY_SLOPE = 0.01  # slope of leaky_relu below zero (docs/definitions.md, "Network")


@dataclass(frozen=True)
class Activation:
    """One activation: its name, NumPy form, kernel code, largest slope, and the infimum
    ``lower`` and supremum ``upper`` of its values."""

    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    code: int
    max_slope: float
    lower: float = -math.inf
    upper: float = math.inf


def _leaky_relu(z: np.ndarray) -> np.ndarray:
    return np.where(z >= 0.0, z, LEAKY_SLOPE * z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|


TABLE: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("relu", lambda z: np.maximum(z, 0.0), 0, 1.0, lower=0.0),
        Activation("leaky_relu", _leaky_relu, 1, 1.0),
        Activation("tanh", np.tanh, 2, 1.0, lower=-1.0, upper=1.0),
        Activation("sigmoid", _sigmoid, 3, 0.25, lower=0.0, upper=1.0),
        Activation("identity", lambda z: z, 4, 1.0),
    )
}
ACTIVATIONS = tuple(TABLE)


def check_activation(name: str) -> str:
    """Return ``name`` if it is a known activation, else raise :class:`InputError`."""
    if name not in TABLE:
        raise InputError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return name


def apply_activation(name: str, z: np.ndarray) -> np.ndarray:
    """Apply activation ``name`` elementwise (float64, NumPy)."""
    return TABLE[check_activation(name)].apply(z)
