"""Brute force shared by tests: every edge subset of a small circuit space, one by one."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from circuit_census.circuits.space import CircuitSpace


def admissible_edge_flags(space: CircuitSpace) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
    """Each admissible circuit as (flat edge flags, per-layer edge masks), by trying
    all 2^n_edges subsets of edges against the space's admissibility rule."""
    offs = space.edge_offsets
    for k in range(1 << space.n_edges):
        flags = np.array([(k >> e) & 1 for e in range(space.n_edges)], dtype=bool)
        masks = [
            flags[offs[i] : offs[i + 1]].reshape(shape)
            for i, shape in enumerate(space.layer_shapes)
        ]
        if space.is_admissible(masks):
            yield flags, masks


def valid_and_minimal(network, x, y, settings) -> tuple[set, set]:
    """Every valid circuit (as tuples of flat edge flags) by judging each admissible
    circuit with ``evaluate_circuit``, and the minimal ones by SPEC's definition read
    literally: valid, and no valid circuit is a proper subset."""
    from circuit_census.circuits.ablation import evaluate_circuit

    space = CircuitSpace(network.sizes)
    valid = {
        tuple(flags.tolist())
        for flags, masks in admissible_edge_flags(space)
        if evaluate_circuit(network, masks, x, y, settings).valid
    }
    minimal = {
        c for c in valid if not any(o != c and all(a <= b for a, b in zip(o, c)) for o in valid)
    }
    return valid, minimal
