"""What the discovery methods score: the ablated model of a set of edges, and the
gradients of the metric at every receiver.

An ablated edge ``i -> j`` carries ``W[j, i] * r_i`` with ``r_i`` zero, the full model's
mean of node ``i``, or its value on the corrupted partner ``x'`` (resample ablation), as in
the census (:func:`circuits.ablation.ablated_forward`). The metric is the mse of the
ablated model against the full model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from circuit_census.circuits.ablation import ablated_forward, layer_means
from circuit_census.circuits.settings import CensusSettings
from circuit_census.circuits.space import CircuitSpace, bits_to_bools, bools_to_bits
from circuit_census.errors import InputError
from circuit_census.network import Network, check_inputs
from circuit_census.training.models import torch_activation


@dataclass(frozen=True)
class Patching:
    """A network, its evaluation pairs and ablation: what every discovery method scores.

    ``x`` holds the clean inputs (under resample ablation, the first member of each pair),
    ``corrupted`` their partners ``x'`` (resample only), ``replaced[l]`` what an ablated
    edge out of layer ``l`` carries at each sample, ``reference`` the full model's outputs.
    """

    network: Network
    space: CircuitSpace
    settings: CensusSettings
    x: np.ndarray
    y: np.ndarray | None
    corrupted: np.ndarray | None
    means: list[np.ndarray] | None
    replaced: list[np.ndarray]
    clean: list[np.ndarray]
    reference: np.ndarray

    @property
    def n_edges(self) -> int:
        return self.space.n_edges


def patching(
    network: Network, x: np.ndarray, y: np.ndarray | None, settings: CensusSettings
) -> Patching:
    """The evaluation pairs of ``settings`` (its ablation, and for resample its pairs and
    seed) on samples ``x`` with targets ``y`` (needed for the accuracy criterion)."""
    x = np.asarray(x, dtype=np.float64)
    if y is not None:
        y = np.asarray(y, dtype=np.float64).reshape(len(x), -1)
    check_inputs(network, x, y)
    if settings.rule.needs_targets and y is None:
        raise InputError("the accuracy criterion needs targets y")
    if settings.compat is not None:
        raise InputError("circuit discovery works in the default circuit space, not compat mode")
    corrupted = means = None
    if settings.ablation == "resample":
        clean_idx, other = settings.resample_indices(len(x))
        x, corrupted = x[clean_idx], x[other]
        y = None if y is None else y[clean_idx]
    clean = network.activations(x)
    if settings.ablation == "resample":
        replaced = network.activations(corrupted)
    elif settings.ablation == "mean":
        means = layer_means(network, x)
        replaced = [np.broadcast_to(mu, h.shape) for mu, h in zip(means, clean)]
    else:
        replaced = [np.zeros_like(h) for h in clean]
    return Patching(
        network=network,
        space=CircuitSpace(network.sizes),
        settings=settings,
        x=x,
        y=y,
        corrupted=corrupted,
        means=means,
        replaced=replaced,
        clean=clean,
        reference=clean[-1],
    )


def flags_to_masks(space: CircuitSpace, flags: np.ndarray) -> list[np.ndarray]:
    """Per-layer masks (``W_l`` orientation) from one value per edge in the space's order."""
    offs = space.edge_offsets
    values = np.asarray(flags)
    return [values[offs[i] : offs[i + 1]].reshape(s) for i, s in enumerate(space.layer_shapes)]


def masks_to_flags(space: CircuitSpace, masks: Sequence[np.ndarray]) -> np.ndarray:
    """One boolean per edge, in the space's edge order."""
    return bits_to_bools(space.masks_to_bits(masks)[None, :], space.n_edges)[0]


def flags_to_bits(space: CircuitSpace, flags: np.ndarray) -> np.ndarray:
    """The bitset of a circuit given as one boolean per edge."""
    return bools_to_bits(np.asarray(flags, dtype=bool)[None, :], space.n_words)[0]


def outputs(problem: Patching, mask_values: np.ndarray) -> np.ndarray:
    """Outputs of the model with edge masks ``mask_values`` (one value in ``[0, 1]`` per
    edge; 0/1 masks give the ablated model of that circuit)."""
    masks = flags_to_masks(problem.space, np.asarray(mask_values, dtype=np.float64))
    return ablated_forward(
        problem.network,
        masks,
        problem.x,
        problem.settings.ablation,
        means=problem.means,
        corrupted=problem.corrupted,
    )


def circuit_mse(problem: Patching, mask_values: np.ndarray) -> float:
    """The metric the methods use: mse of the masked model against the full model."""
    return float(np.mean((outputs(problem, mask_values) - problem.reference) ** 2))


def is_valid(problem: Patching, flags: np.ndarray) -> bool:
    """Whether the circuit ``flags`` is valid under the problem's criterion."""
    out = outputs(problem, np.asarray(flags, dtype=np.float64))
    return problem.settings.rule.is_valid(out, problem.reference, problem.y)


def remove_dangling(space: CircuitSpace, flags: np.ndarray) -> np.ndarray:
    """``flags`` without dangling edges: repeatedly drop the in-edges of hidden nodes that
    feed nobody and the out-edges of hidden nodes that nothing feeds (a fixed point)."""
    masks = [m.astype(bool) for m in flags_to_masks(space, np.asarray(flags, dtype=bool))]
    changed = True
    while changed:
        changed = False
        for layer in range(1, len(masks)):
            fed = masks[layer - 1].any(axis=1)
            read = masks[layer].any(axis=0)
            drop_in, drop_out = fed & ~read, read & ~fed
            if drop_in.any() or drop_out.any():
                masks[layer - 1][drop_in] = False
                masks[layer][:, drop_out] = False
                changed = True
    return np.concatenate([m.reshape(-1) for m in masks])


def corrupted_inputs(problem: Patching) -> np.ndarray:
    """The input of the corrupted run: ``x'`` under resample ablation, the mean input
    under mean ablation, the zero input under zero ablation (what ablated input edges
    carry)."""
    return np.ascontiguousarray(problem.replaced[0])


def receiver_gradients(problem: Patching, levels: Sequence[float]) -> list[np.ndarray]:
    """Per weight layer ``l``, ``(len(levels), N, n_l)``: the gradient of the mse metric
    (against the full model on ``x``) with respect to every receiver's pre-activation at
    every sample, in the full model run on ``x' + a (x - x')`` for each level ``a`` (0:
    the corrupted run, 1: the clean run; ``x'`` from :func:`corrupted_inputs`). PyTorch
    autograd in float64, all levels in one batched pass."""
    net = problem.network
    alpha = torch.tensor(list(levels), dtype=torch.float64)[:, None, None]
    corrupted = torch.from_numpy(corrupted_inputs(problem))
    h = corrupted[None] + alpha * (torch.from_numpy(problem.x) - corrupted)[None]
    reference = torch.from_numpy(problem.reference)
    offsets = []  # zero, added to each pre-activation: their gradients are the receivers'
    for layer, (w, b) in enumerate(zip(net.weights, net.biases)):
        offset = torch.zeros((len(levels), len(problem.x), w.shape[0]), dtype=torch.float64)
        offsets.append(offset.requires_grad_(True))
        z = h @ torch.from_numpy(w).T + torch.from_numpy(b) + offset
        h = torch_activation(net.layer_activation(layer))(z)
    loss = ((h - reference[None]) ** 2).sum() / problem.reference.size
    return [g.numpy() for g in torch.autograd.grad(loss, offsets)]


def edge_scores(problem: Patching, levels: Sequence[float]) -> np.ndarray:
    """Per edge ``i -> j`` of layer ``l`` (the space's edge order): the sender's activation
    difference ``h_i(x) - r_i`` (full model minus what the ablated edge carries) times
    ``W_l[j, i]`` times the metric's gradient at ``j``, summed over samples and averaged
    over ``levels`` (the runs of :func:`receiver_gradients`)."""
    grads = receiver_gradients(problem, levels)
    parts = []
    for layer, w in enumerate(problem.network.weights):
        diff = problem.clean[layer] - problem.replaced[layer]  # (N, n_{l-1})
        g = grads[layer].mean(axis=0)  # (N, n_l)
        parts.append((w * (g.T @ diff)).reshape(-1))
    return np.concatenate(parts)
