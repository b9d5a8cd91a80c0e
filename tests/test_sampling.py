"""The uniform circuit sampler: admissible, every circuit reachable, uniform (chi-square)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from circuit_census.circuits.sampling import covering_matrix, sample_circuits
from circuit_census.circuits.space import CircuitSpace, covering_matrices


@pytest.mark.parametrize(
    ("sizes", "compat"),
    [
        ((2, 2, 1), None),
        ((2, 3, 1), None),
        ((2, 2, 2, 1), None),
        ((2, 2, 2, 1), "meloux2025"),
        ((3, 2, 2), None),
    ],
)
def test_sampler_is_uniform_over_the_admissible_circuits(sizes, compat):
    space = CircuitSpace(sizes, compat)
    total = space.count()
    n = 40 * total
    bits = sample_circuits(space, n, seed=1)
    for row in bits[:200]:
        assert space.is_admissible(space.bits_to_masks(row))
    _, counts = np.unique(bits, axis=0, return_counts=True)
    assert counts.size == total  # every admissible circuit is drawn
    assert stats.chisquare(counts).pvalue > 1e-3


def test_covering_matrix_is_uniform():
    rng = np.random.default_rng(0)
    for rows, cols, covered in ((3, 2, True), (2, 3, True), (3, 2, False)):
        draws = [covering_matrix(rows, cols, covered, rng) for _ in range(3000)]
        for m in draws[:50]:
            assert m.any(axis=0).all() and (not covered or m.any(axis=1).all())
        _, counts = np.unique(np.array(draws).reshape(3000, -1), axis=0, return_counts=True)
        assert counts.size == covering_matrices(rows, cols, covered)
        assert stats.chisquare(counts).pvalue > 1e-3


def test_sampler_is_seeded_and_works_past_64_bit_counts():
    space = CircuitSpace((2, 32, 1))
    assert space.count() == 4**32 - 1 > 2**63
    a, b = sample_circuits(space, 5, seed=3), sample_circuits(space, 5, seed=3)
    assert np.array_equal(a, b) and not np.array_equal(a, sample_circuits(space, 5, seed=4))
    deep = CircuitSpace((2, 8, 8, 1))
    for row in sample_circuits(deep, 20, seed=0):
        assert deep.is_admissible(deep.bits_to_masks(row))
