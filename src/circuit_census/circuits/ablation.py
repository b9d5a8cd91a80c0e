"""The ablated model of one circuit, one forward pass at a time (the plain path).

:func:`evaluate_circuit` judges a single circuit a user proposes; the census engine reaches
the same verdicts for whole families of circuits at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from circuit_census.activations import apply_activation
from circuit_census.circuits.settings import CensusSettings
from circuit_census.circuits.space import CircuitSpace
from circuit_census.errors import InputError
from circuit_census.network import Network, check_inputs


def layer_means(network: Network, x: np.ndarray) -> list[np.ndarray]:
    """Mean activation of every node of the full model over ``x``: ``[mean h_0, ..., mean h_L]``."""
    return [h.mean(axis=0) for h in network.activations(x)]


def ablated_activations(
    network: Network,
    masks: Sequence[np.ndarray],
    x: np.ndarray,
    ablation: str = "zero",
    means: Sequence[np.ndarray] | None = None,
    corrupted: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Every layer's values ``[h_0 = x, h_1, ..., h_L]`` in the circuit ``masks``' model: edges
    outside it carry nothing (zero ablation), ``W[j, i] * mean h_i`` of the full model (mean
    ablation), or ``W[j, i] * h_i(x')`` of the full model on the corrupted input paired with
    each sample (resample ablation, ``corrupted``: one row ``x'`` per row of ``x``); biases
    are kept. ``ablation`` comes from a :class:`CensusSettings`, which checked it."""
    if ablation == "mean" and means is None:
        means = layer_means(network, x)
    replaced = network.activations(corrupted) if ablation == "resample" else None
    h = [np.asarray(x, dtype=np.float64)]
    for layer, (w, b) in enumerate(zip(network.weights, network.biases)):
        m = np.asarray(masks[layer], dtype=np.float64)
        z = h[-1] @ (w * m).T + b
        if ablation == "mean":
            z = z + (w * (1.0 - m)) @ means[layer]
        elif ablation == "resample":
            z = z + replaced[layer] @ (w * (1.0 - m)).T
        h.append(apply_activation(network.layer_activation(layer), z))
    return h


def ablated_forward(
    network: Network,
    masks: Sequence[np.ndarray],
    x: np.ndarray,
    ablation: str = "zero",
    means: Sequence[np.ndarray] | None = None,
    corrupted: np.ndarray | None = None,
) -> np.ndarray:
    """Outputs of the circuit ``masks``' model (see :func:`ablated_activations`)."""
    return ablated_activations(network, masks, x, ablation, means, corrupted)[-1]


@dataclass(frozen=True)
class CircuitEvaluation:
    """How one circuit does: its mse against the full model, its accuracy, and validity."""

    mse: float
    accuracy: float | None
    valid: bool


def evaluate_circuit(
    network: Network,
    masks: Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray | None = None,
    settings: CensusSettings = CensusSettings(),
) -> CircuitEvaluation:
    """Evaluate a proposed circuit (per-layer 0/1 masks in ``W_l`` orientation) one forward
    pass at a time, as the census would judge it."""
    crit = settings.rule
    x = np.asarray(x, dtype=np.float64)
    y = None if y is None else np.asarray(y, dtype=np.float64).reshape(len(x), -1)
    check_inputs(network, x, y)
    if crit.needs_targets and y is None:
        raise InputError("the accuracy criterion needs targets y")
    if not CircuitSpace(network.sizes, settings.compat).is_admissible(masks):
        raise InputError("the edge masks do not form an admissible circuit of this network")
    corrupted = None
    if settings.ablation == "resample":  # the evaluation set becomes the pairs (x, x')
        clean, other = settings.resample_indices(len(x))
        x, corrupted, y = x[clean], x[other], None if y is None else y[clean]
    reference = network.forward(x)
    out = ablated_forward(network, masks, x, settings.ablation, corrupted=corrupted)
    acc = None if y is None else float(np.mean(crit.output_bits_right(out, y)))
    return CircuitEvaluation(
        mse=float(np.mean((out - reference) ** 2)),
        accuracy=acc,
        valid=crit.is_valid(out, reference, y),
    )
