"""Validity criteria (see docs/definitions.md): when a circuit's outputs reproduce the model's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuit_census.circuits.space import check_compat
from circuit_census.errors import InputError

CRITERIA = ("mse", "accuracy")
DEFAULT_THRESHOLDS = {"mse": 0.05, "accuracy": 0.99}


@dataclass(frozen=True)
class Criterion:
    """``mse``: mean squared difference to the full model below ``threshold``;
    ``accuracy``: fraction of samples with every output bit right at least ``threshold``
    (strictly above it, with round-half-to-even bits, in the ``meloux2025`` mode).

    Checked when made; ``threshold=None`` takes the criterion's default (0.05 or 0.99).
    """

    name: str = "mse"
    threshold: float | None = None
    compat: str | None = None

    def __post_init__(self) -> None:
        if self.name not in CRITERIA:
            raise InputError(
                f"unknown criterion {self.name!r}; choose one of {', '.join(CRITERIA)}"
            )
        check_compat(self.compat)
        given = self.threshold
        try:
            t = DEFAULT_THRESHOLDS[self.name] if given is None else float(given)
        except (TypeError, ValueError):
            raise InputError(f"threshold must be a number, got {given!r}") from None
        if not np.isfinite(t) or t < 0:
            raise InputError(f"threshold must be a non-negative number, got {given}")
        if self.name == "accuracy" and t > 1:
            raise InputError(f"an accuracy threshold is a fraction in [0, 1], got {given}")
        object.__setattr__(self, "threshold", t)

    @property
    def needs_targets(self) -> bool:
        return self.name == "accuracy"

    def max_wrong(self, n_samples: int) -> int:
        """Most samples that may be wrong for the accuracy criterion to pass
        (evaluated with the same float expression as :meth:`accuracy_passes`)."""
        allowed = -1
        for wrong in range(n_samples + 1):
            if self.accuracy_passes((n_samples - wrong) / n_samples):
                allowed = wrong
            else:
                break
        return allowed

    def accuracy_passes(self, fraction: float) -> bool:
        return fraction > self.threshold if self.compat else fraction >= self.threshold

    def output_bits_right(self, outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per sample: whether every output, read as a bit, equals the target."""
        if self.compat:
            bits = np.round(outputs)  # NumPy rounds half to even, as torch.round does
        else:
            bits = (outputs >= 0.5).astype(np.float64)
        return np.all(bits == y, axis=1)

    def is_valid(self, outputs: np.ndarray, reference: np.ndarray, y: np.ndarray | None) -> bool:
        """Plain reading of the criterion for one circuit's outputs (samples x outputs)."""
        if self.name == "mse":
            return bool(np.mean((outputs - reference) ** 2) < self.threshold)
        if y is None:
            raise InputError("the accuracy criterion needs targets y")
        return self.accuracy_passes(float(np.mean(self.output_bits_right(outputs, y))))
