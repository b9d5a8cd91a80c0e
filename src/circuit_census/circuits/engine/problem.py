"""The prepared census problem: the evaluation points deduplicated and ordered, the full
model's reference outputs, what an ablated edge's sender carries at each point, and the
criterion's budget.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from circuit_census.activations import TABLE
from circuit_census.circuits.criteria import Criterion
from circuit_census.circuits.engine import kernels
from circuit_census.circuits.engine.structures import ACCURACY, ACCURACY_ROUNDED, MSE, Rule
from circuit_census.circuits.settings import CensusSettings
from circuit_census.circuits.space import CircuitSpace
from circuit_census.errors import InputError
from circuit_census.network import Network, check_inputs


@dataclass
class Problem:
    """Everything a census needs, with the data points deduplicated and ordered."""

    network: Network
    space: CircuitSpace
    x: np.ndarray  # (P, n_0) distinct points, heaviest first (they decide early exits)
    weight: np.ndarray  # (P,) how many samples (or resample pairs) each point stands for
    reference: np.ndarray  # (P, m) full-model outputs (mse) or target bits (accuracy)
    pre_reference: np.ndarray  # (P, m) full-model output pre-activations
    replacement: list[np.ndarray]
    """Per layer ``(P, n_l)``: the value an ablated edge's sender carries at each point:
    zero, the full model's node mean, or (resample) the full model's value on ``x'``."""
    criterion: Criterion
    budget: float
    """What the criterion allows over all samples: for mse, the summed squared error a valid
    circuit stays strictly below (threshold x samples x outputs); for accuracy, the most
    samples it may get wrong (inclusive)."""
    n_samples: int
    scorer: object | None = None  # a TorchScorer when the pairs are scored by PyTorch
    prune: bool = True  # decide families of circuits by bounds before scoring pairs

    @property
    def n_out(self) -> int:
        return self.network.sizes[-1]

    @property
    def n_terms(self) -> int:
        """Terms of the output pre-activation: points x outputs."""
        return len(self.x) * self.n_out

    @functools.cached_property
    def criterion_code(self) -> int:
        """The criterion as the kernels name it (``structures.MSE``, ...)."""
        if self.criterion.name == "mse":
            return MSE
        return ACCURACY_ROUNDED if self.criterion.compat else ACCURACY

    @functools.cached_property
    def rule(self) -> Rule:
        """How the kernels judge a circuit's outputs (weights per term for mse, per point
        for accuracy)."""
        code = TABLE[self.network.output_activation].code
        per_term = self.criterion_code == MSE
        return Rule(
            activation=code,
            table=_bounds_table(code),
            criterion=self.criterion_code,
            budget=self.budget,
            n_out=self.n_out,
            target=self.reference.reshape(-1),
            weight=np.repeat(self.weight, self.n_out) if per_term else self.weight,
        )


def _bounds_table(code: int) -> np.ndarray:
    """The table the kernels read to bound an output activation: only tanh and sigmoid
    are tabulated (the others are never looked up, and their table is not compiled)."""
    if code in (kernels.TANH, kernels.SIGMOID):
        return kernels.activation_table(code)
    return np.zeros(2)


def prepare(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None,
    settings: CensusSettings,
    prune: bool = True,
) -> Problem:
    """The census problem of ``network`` on samples ``x`` (targets ``y`` for accuracy):
    identical samples (under resample ablation: identical pairs ``(x, x')``) merged into
    one weighted point, heavy points first."""
    criterion = settings.rule
    full = network.activations(x)
    if settings.ablation == "resample":
        clean, corrupted = settings.resample_indices(len(x))
        replaced = [h[corrupted] for h in full]
        key = np.concatenate([x[clean], x[corrupted]], axis=1)
        x, full = x[clean], [h[clean] for h in full]
        y = None if y is None else y[clean]
    else:
        use_mean = settings.ablation == "mean"
        replaced = [np.broadcast_to(h.mean(axis=0) * use_mean, h.shape) for h in full]
        key = x
    if criterion.needs_targets:
        key = np.concatenate([key, y], axis=1)
    _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    order = np.random.default_rng(0).permutation(len(first))
    order = order[np.argsort(-counts[order], kind="stable")]  # heavy points decide first
    idx = first[order]
    if criterion.needs_targets:
        reference = y[idx]
        budget = float(criterion.max_wrong(len(x)))
    else:
        reference = full[-1][idx]
        budget = criterion.threshold * len(x) * network.sizes[-1]
    return Problem(
        network=network,
        space=CircuitSpace(network.sizes, criterion.compat),
        x=x[idx],
        weight=counts[order].astype(np.float64),
        reference=np.ascontiguousarray(reference, dtype=np.float64),
        pre_reference=full[-2][idx] @ network.weights[-1].T + network.biases[-1],
        replacement=[np.ascontiguousarray(r[idx]) for r in replaced],
        criterion=criterion,
        budget=budget,
        n_samples=len(x),
        prune=prune,
    )


def select_output(
    network: Network, x, y, output, criterion: Criterion
) -> tuple[Network, np.ndarray, np.ndarray | None, int | None]:
    """Checked float64 inputs, and the network a census of ``output`` looks at: the whole
    network (one output, or ``"joint"``) or the sub-network feeding one output."""
    x = np.asarray(x, dtype=np.float64)
    if y is not None:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
    check_inputs(network, x, y)
    if criterion.needs_targets and y is None:
        raise InputError("the accuracy criterion needs targets y")
    m = network.sizes[-1]
    if output == "joint" or (output is None and m == 1):
        return network, x, y, None
    if output is None:
        raise InputError(
            f"the model has {m} outputs: take the census per output (output=0..{m - 1}, "
            "or census_outputs) or jointly (output='joint')"
        )
    if not isinstance(output, (int, np.integer)) or not 0 <= output < m:
        raise InputError(f"output must be 0..{m - 1} or 'joint', got {output!r}")
    sub_y = None if y is None else y[:, output : output + 1]
    return network.output_subnetwork(int(output)), x, sub_y, int(output)
