"""Mappings of a formula onto neurons (SPEC, "Explanations beyond circuits"), by
interchange interventions.

A formula's intermediate node passes on a set of neurons of one hidden layer when patching
those neurons with their values on a source corner makes the full network follow the
formula with that node patched, on every pair of corners. Whether a node passes depends on
that node alone, so each node's accepted sets are found on their own, all at once: the
network's output under every candidate set of a layer and every corner pair is one batched
forward pass shared by all formulas. A mapping picks pairwise disjoint accepted sets; the
minimal mappings are exactly the disjoint picks of inclusion-minimal accepted sets, so both
are counted by a dynamic program over the neurons already used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from circuit_census.activations import apply_activation
from circuit_census.circuits.space import MELOUX2025 as MELOUX
from circuit_census.errors import InputError
from circuit_census.explanations.formulas import Formula
from circuit_census.network import Network

MAX_LAYER_WIDTH = 20  # every non-empty subset of a hidden layer is tried


def corner_pairs(n_inputs: int, compat: str | None = None) -> np.ndarray:
    """``(source, base)`` pairs of corner indices (in :func:`corners` order): every ordered
    pair of distinct corners, or in meloux2025 mode the pairs ``(c_i, c_j)``, ``i < j``, with
    corners ordered first input fastest (``00, 10, 01, 11``), as the reference runs them."""
    n = 1 << n_inputs
    if compat == MELOUX:
        order = [
            sum(((i >> j) & 1) << (n_inputs - 1 - j) for j in range(n_inputs)) for i in range(n)
        ]
        return np.array([(order[i], order[j]) for i in range(n) for j in range(i + 1, n)])
    return np.array([(s, b) for s in range(n) for b in range(n) if s != b])


@dataclass(frozen=True)
class LayerInterventions:
    """The full network's output bits (``o > 0.5``) with every non-empty set of neurons of
    hidden layer ``layer`` patched from source to base: ``sets`` (``S x width`` booleans,
    set ``i`` is the bits of ``i + 1``), ``outputs`` (``S x P`` booleans, one per pair)."""

    layer: int
    sets: np.ndarray
    outputs: np.ndarray


def intervention_outputs(
    network: Network, corners: np.ndarray, pairs: np.ndarray
) -> list[LayerInterventions]:
    """Every hidden layer's :class:`LayerInterventions`, each one batched forward pass."""
    h = network.activations(corners)
    found = []
    for layer in range(1, network.n_layers):
        width = network.sizes[layer]
        if width > MAX_LAYER_WIDTH:
            raise InputError(
                f"hidden layer {layer} has {width} neurons; mappings try every subset "
                f"of a layer of at most {MAX_LAYER_WIDTH}"
            )
        codes = np.arange(1, 1 << width)
        sets = ((codes[:, None] >> np.arange(width)[None, :]) & 1).astype(bool)
        source, base = h[layer][pairs[:, 0]], h[layer][pairs[:, 1]]
        x = np.where(sets[:, None, :], source[None], base[None])
        for later in range(layer, network.n_layers):
            x = apply_activation(
                network.layer_activation(later),
                x @ network.weights[later].T + network.biases[later],
            )
        found.append(LayerInterventions(layer, sets, x[..., 0] > 0.5))
    return found


def expected_outputs(formula: Formula, corners: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """``U x P``: the formula's output on each pair's base corner with intermediate node
    ``u`` fixed to its value on the source corner."""
    units = np.array(formula.intermediate, dtype=np.int64)
    if len(units) == 0:
        return np.zeros((0, len(pairs)), dtype=bool)
    plain = formula.evaluate(corners)[0]
    fixed = np.repeat(units, 2)
    values = np.tile(np.array([False, True]), len(units))
    roots = formula.evaluate(corners, fixed, values)[:, 0, :].reshape(len(units), 2, -1)
    source_values = plain[units][:, pairs[:, 0]].astype(np.int64)
    return roots[np.arange(len(units))[:, None], source_values, pairs[None, :, 1]]


def accepted_sets(
    formula: Formula,
    layers: Sequence[LayerInterventions],
    corners: np.ndarray,
    pairs: np.ndarray,
    offsets: Sequence[int],
) -> list[np.ndarray]:
    """For each intermediate node, the neuron sets it passes on, as bitmasks over all hidden
    neurons (neuron ``j`` of hidden layer ``l`` is bit ``offsets[l - 1] + j``)."""
    expected = expected_outputs(formula, corners, pairs)
    found: list[list[np.ndarray]] = [[] for _ in range(len(expected))]
    for li in layers:
        ok = (li.outputs[None, :, :] == expected[:, None, :]).all(axis=2)
        codes = np.arange(1, len(li.sets) + 1, dtype=np.int64) << offsets[li.layer - 1]
        for u in range(len(expected)):
            found[u].append(codes[ok[u]])
    return [np.concatenate(f) if f else np.zeros(0, dtype=np.int64) for f in found]


def minimal_sets(masks: np.ndarray) -> np.ndarray:
    """The inclusion-minimal bitmasks among ``masks``."""
    if len(masks) == 0:
        return masks
    inside = (masks[:, None] & masks[None, :]) == masks[:, None]  # [i, j]: i within j
    np.fill_diagonal(inside, False)
    return masks[~inside.any(axis=0)]


def count_disjoint(candidates: Sequence[np.ndarray]) -> int:
    """The number of ways to pick one mask per node, pairwise disjoint (exactly, as a
    Python int): a dynamic program over the set of neurons already used."""
    if any(len(c) == 0 for c in candidates):
        return 0
    ways: dict[int, int] = {0: 1}
    for options in candidates:
        nxt: dict[int, int] = {}
        opts = [int(m) for m in options]
        for used, n in ways.items():
            for m in opts:
                if not used & m:
                    nxt[used | m] = nxt.get(used | m, 0) + n
        ways = nxt
        if not ways:
            return 0
    return sum(ways.values())


def list_disjoint(candidates: Sequence[np.ndarray], limit: int) -> list[tuple[int, ...]]:
    """Up to ``limit`` pairwise disjoint picks of one mask per node."""
    found: list[tuple[int, ...]] = []

    def walk(depth: int, used: int, picked: tuple[int, ...]) -> None:
        if len(found) >= limit:
            return
        if depth == len(candidates):
            found.append(picked)
            return
        for m in candidates[depth]:
            if not used & int(m):
                walk(depth + 1, used | int(m), picked + (int(m),))

    if limit > 0:
        walk(0, 0, ())
    return found


@dataclass(frozen=True)
class NodeMapping:
    """One intermediate node's neurons in a mapping: the node (preorder id and its
    sub-formula) and the neurons of one hidden layer it is mapped to."""

    node: int
    formula: str
    layer: int
    neurons: tuple[int, ...]


@dataclass(frozen=True)
class FormulaMappings:
    """A formula's mappings: how many are valid and how many minimal (exact counts), and
    up to the listing limit of each."""

    formula: Formula
    n_valid_mappings: int
    n_minimal_mappings: int
    minimal_mappings: list[tuple[NodeMapping, ...]]
    valid_mappings: list[tuple[NodeMapping, ...]]


def _decode(mask: int, offsets: Sequence[int], sizes: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """A bitmask within one hidden layer as (layer, neuron indices)."""
    for layer, (offset, width) in enumerate(zip(offsets, sizes), start=1):
        inside = (mask >> offset) & ((1 << width) - 1)
        if inside:
            return layer, tuple(j for j in range(width) if (inside >> j) & 1)
    raise ValueError("empty neuron set")


def formula_mappings(
    formula: Formula,
    layers: Sequence[LayerInterventions],
    corners: np.ndarray,
    pairs: np.ndarray,
    hidden_sizes: Sequence[int],
    limit: int = 100,
) -> FormulaMappings:
    """Count the valid and minimal mappings of ``formula`` and list up to ``limit`` of each.
    A formula without intermediate nodes has one mapping, the empty one."""
    offsets = np.concatenate([[0], np.cumsum(hidden_sizes)]).astype(int).tolist()
    accepted = accepted_sets(formula, layers, corners, pairs, offsets)
    minimal = [minimal_sets(a) for a in accepted]
    n_valid = count_disjoint(accepted)
    n_minimal = count_disjoint(minimal) if n_valid else 0

    def named(picks: tuple[int, ...]) -> tuple[NodeMapping, ...]:
        return tuple(
            NodeMapping(node, formula.node_text(node), *_decode(m, offsets, hidden_sizes))
            for node, m in zip(formula.intermediate, picks)
        )

    return FormulaMappings(
        formula,
        n_valid,
        n_minimal,
        [named(p) for p in list_disjoint(minimal, limit)] if n_valid else [],
        [named(p) for p in list_disjoint(accepted, limit)] if n_valid else [],
    )
