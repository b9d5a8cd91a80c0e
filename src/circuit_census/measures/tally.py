"""Measures of a census with too many valid circuits to hold: exact counts gathered as the
census streams its valid circuits out (sizes, edge and node frequencies), and a seeded
uniform sample of them for what needs circuits themselves (minimal circuits, drawings).

Hand :meth:`CircuitTally.add` to the census as ``RunOptions(stream=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from circuit_census.circuits.space import CircuitSpace, popcount, sort_circuits
from circuit_census.measures.uniqueness import (
    as_frequencies,
    frequency_counts,
    matrix_to_list,
)

#: Valid circuits kept as a uniform sample for the figures that draw circuits.
SAMPLE_SIZE = 100_000


@dataclass
class CircuitTally:
    """Counts over every valid circuit handed to :meth:`add`, and a uniform sample of
    ``sample_size`` of them (without replacement; the same for the same ``seed`` and the
    same stream)."""

    space: CircuitSpace
    sample_size: int = SAMPLE_SIZE
    seed: int = 0
    n_valid: int = 0
    min_nodes: int | None = None
    size_counts: np.ndarray = field(init=False, repr=False)
    edge_counts: list[np.ndarray] = field(init=False, repr=False)
    node_counts: list[np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.size_counts = np.zeros(self.space.n_edges + 1, dtype=np.int64)
        self.edge_counts = [np.zeros(shape, dtype=np.int64) for shape in self.space.layer_shapes]
        self.node_counts = [np.zeros(size, dtype=np.int64) for size in self.space.sizes]
        self._rng = np.random.default_rng(self.seed)
        # the sample: each circuit gets a uniform random key; the circuits with the
        # sample_size smallest keys so far are a uniform sample of those seen so far
        self._keys: list[np.ndarray] = []
        self._bits: list[np.ndarray] = []
        self._n_pending = 0
        self._threshold = np.inf  # a key at or above it can no longer enter the sample

    def add(self, bits: np.ndarray) -> None:
        """Count ``(n, n_words)`` valid circuits and offer them to the sample."""
        bits = np.ascontiguousarray(bits, dtype=np.uint64).reshape(-1, self.space.n_words)
        if bits.shape[0] == 0:
            return
        self.n_valid += bits.shape[0]
        self.size_counts += np.bincount(popcount(bits), minlength=self.space.n_edges + 1)
        edges, nodes, n_nodes = frequency_counts(bits, self.space)
        for total, part in zip(self.edge_counts + self.node_counts, edges + nodes, strict=True):
            total += part
        fewest = int(n_nodes.min())
        self.min_nodes = fewest if self.min_nodes is None else min(self.min_nodes, fewest)
        if self.sample_size > 0:
            keys = self._rng.random(bits.shape[0])
            entering = keys < self._threshold
            self._keys.append(keys[entering])
            self._bits.append(bits[entering])
            self._n_pending += int(entering.sum())
            if self._n_pending > 2 * self.sample_size:
                self._compact()

    def _compact(self) -> None:
        """Keep only the circuits with the ``sample_size`` smallest keys."""
        keys, bits = np.concatenate(self._keys), np.concatenate(self._bits)
        if len(keys) > self.sample_size:
            keep = np.argpartition(keys, self.sample_size - 1)[: self.sample_size]
            keys, bits = keys[keep], bits[keep]
            self._threshold = float(keys.max())
        self._keys, self._bits, self._n_pending = [keys], [bits], len(keys)

    @property
    def sample(self) -> np.ndarray:
        """The sampled valid circuits, in canonical order (all of them when there are at
        most ``sample_size``)."""
        if not self._keys:
            return np.zeros((0, self.space.n_words), dtype=np.uint64)
        self._compact()
        return sort_circuits(self._bits[0])

    @property
    def min_edges(self) -> int | None:
        """Fewest edges of any valid circuit (``None``: no valid circuit)."""
        sizes = np.flatnonzero(self.size_counts)
        return int(sizes[0]) if len(sizes) else None

    @property
    def edge_frequency(self) -> list[np.ndarray]:
        """Fraction of valid circuits holding each edge, per layer ``n_l x n_{l-1}``."""
        return as_frequencies(self.edge_counts, self.n_valid)

    @property
    def node_frequency(self) -> list[np.ndarray]:
        """Fraction of valid circuits touching each node, per layer (inputs first)."""
        return as_frequencies(self.node_counts, self.n_valid)

    def to_dict(self) -> dict[str, Any]:
        """The exact counts as JSON-friendly values, and the sample's size and seed."""
        return {
            "n_valid": self.n_valid,
            "size_counts": [int(c) for c in self.size_counts],
            "min_edges": self.min_edges,
            "min_nodes": self.min_nodes,
            "edge_frequency": [matrix_to_list(m) for m in self.edge_frequency],
            "node_frequency": [matrix_to_list(v) for v in self.node_frequency],
            "n_sampled": min(self.n_valid, self.sample_size),
            "seed": self.seed,
        }
