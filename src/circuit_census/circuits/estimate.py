"""Past the exact frontier: estimate a census from circuits drawn uniformly.

Where an exact census would take too long, :func:`estimate_census` draws ``n`` circuits
uniformly from the admissible space (:mod:`circuit_census.circuits.sampling`), judges each
one exactly (one forward pass of its ablated model, as :func:`evaluate_circuit` does), and
reports the valid fraction with a 95% Wilson interval, and the number of valid circuits as
that fraction of the exact number of candidates. It is an estimate and says so.

Counts stay exact Python integers at any size: the estimated number of valid circuits is
the sampled fraction times the candidates, rounded to a whole circuit, and its interval is
rounded outwards (floats would overflow past 10^308 candidates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from math import ceil, floor

import numpy as np
from scipy import stats

from circuit_census.circuits.ablation import evaluate_circuit
from circuit_census.circuits.engine.problem import select_output
from circuit_census.circuits.sampling import sample_blocks
from circuit_census.circuits.settings import CensusSettings
from circuit_census.circuits.space import CircuitSpace
from circuit_census.errors import InputError
from circuit_census.network import Network

CONFIDENCE = 0.95


@dataclass(frozen=True)
class CensusEstimate:
    """A census estimated from ``n_sampled`` uniform draws (with replacement)."""

    n_candidates: int  # exact
    n_sampled: int
    n_valid_sampled: int
    seed: int
    valid_fraction: float
    fraction_low: float  # 95% Wilson interval of the valid fraction
    fraction_high: float

    @property
    def n_valid(self) -> int:
        """The estimated number of valid circuits (to the nearest circuit, exactly)."""
        return round(Fraction(self.n_valid_sampled, self.n_sampled) * self.n_candidates)

    @property
    def n_valid_interval(self) -> tuple[int, int]:
        """The 95% interval of the number of valid circuits, rounded outwards."""
        return (
            floor(Fraction(self.fraction_low) * self.n_candidates),
            ceil(Fraction(self.fraction_high) * self.n_candidates),
        )

    def to_dict(self) -> dict[str, object]:
        low, high = self.n_valid_interval
        return {
            "estimate": True,
            "method": "uniform sample of admissible circuits, each judged exactly; "
            "95% Wilson interval",
            "n_candidates": self.n_candidates,
            "n_sampled": self.n_sampled,
            "n_valid_sampled": self.n_valid_sampled,
            "seed": self.seed,
            "valid_fraction": self.valid_fraction,
            "valid_fraction_ci": [self.fraction_low, self.fraction_high],
            "n_valid_estimate": self.n_valid,
            "n_valid_ci": [low, high],
        }


def wilson(k: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of ``k`` successes in ``n`` draws."""
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def estimate_census(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None,
    settings: CensusSettings,
    n: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    *,
    output: int | str | None = None,
) -> CensusEstimate:
    """Estimate the valid fraction and count of ``network``'s circuits from ``n`` uniform
    draws, each judged exactly; ``progress(done, n)`` after each block of draws.
    ``output``: one output of a multi-output model, or ``"joint"``, as for ``census``."""
    if n < 1:
        raise InputError(f"--estimate needs at least one circuit to draw, got {n}")
    network, x, y, _ = select_output(network, x, y, output, settings.rule)
    space = CircuitSpace(network.sizes, settings.compat)
    valid = done = 0
    for bits in sample_blocks(space, n, seed=seed):  # the draws of sample_circuits
        for row in bits:
            valid += evaluate_circuit(network, space.bits_to_masks(row), x, y, settings).valid
        done += len(bits)
        if progress is not None:
            progress(done, n)
    low, high = wilson(valid, n)
    return CensusEstimate(space.count(), n, valid, seed, valid / n, low, high)
