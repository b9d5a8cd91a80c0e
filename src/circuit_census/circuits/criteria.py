"""Validity criteria (SPEC, "Validity"): when a circuit's outputs reproduce the model's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuit_census.circuits.space import check_compat
from circuit_census.errors import InputError

CRITERIA = ("mse", "accuracy")
DEFAULT_THRESHOLDS = {"mse": 0.05, "accuracy": 0.99}
ABLATIONS = ("zero", "mean")


def check_ablation(ablation: str) -> str:
    """Return ``ablation`` if known, else raise :class:`InputError`."""
    if ablation not in ABLATIONS:
        raise InputError(f"unknown ablation {ablation!r}; choose one of {', '.join(ABLATIONS)}")
    return ablation


@dataclass(frozen=True)
class Criterion:
    """``mse``: mean squared difference to the full model below ``threshold``;
    ``accuracy``: fraction of samples with every output bit right at least ``threshold``
    (strictly above it, with round-half-to-even bits, in the ``meloux2025`` mode)."""

    name: str = "mse"
    threshold: float = 0.05
    compat: str | None = None

    @classmethod
    def make(
        cls, name: str, threshold: float | None = None, compat: str | None = None
    ) -> Criterion:
        """Validated criterion with SPEC's default threshold when none is given."""
        if name not in CRITERIA:
            raise InputError(f"unknown criterion {name!r}; choose one of {', '.join(CRITERIA)}")
        check_compat(compat)
        t = DEFAULT_THRESHOLDS[name] if threshold is None else float(threshold)
        if not np.isfinite(t) or t < 0:
            raise InputError(f"threshold must be a non-negative number, got {threshold}")
        if name == "accuracy" and t > 1:
            raise InputError(f"an accuracy threshold is a fraction in [0, 1], got {threshold}")
        return cls(name, t, compat)

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
