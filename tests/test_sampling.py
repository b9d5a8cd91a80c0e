"""The uniform circuit sampler: admissible, every circuit reachable, uniform (chi-square)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from circuit_census.circuits import sampling
from circuit_census.circuits.sampling import covering_matrix, sample_circuits
from circuit_census.circuits.space import CircuitSpace, covering_matrices


@pytest.mark.parametrize(
    ("sizes", "compat"),
    [
        ((2, 2, 1), None),
        ((2, 3, 1), None),
        ((2, 2, 2, 1), None),
        ((2, 2, 2, 1), "meloux2025"),
        ((2, 3, 1), "meloux2025"),
        ((2, 2, 1, 2, 1), "meloux2025"),
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


@pytest.mark.parametrize("accept_at_least", [0.0, 1.1])  # whole matrices; column by column
def test_covering_matrix_is_uniform(monkeypatch, accept_at_least):
    monkeypatch.setattr(sampling, "ACCEPT_AT_LEAST", accept_at_least)
    rng = np.random.default_rng(0)
    for rows, cols, covered in ((3, 2, True), (2, 3, True), (3, 2, False), (2, 4, False)):
        draws = [covering_matrix(rows, cols, covered, rng) for _ in range(3000)]
        for m in draws[:50]:
            assert m.any(axis=0).all() and (not covered or m.any(axis=1).all())
        _, counts = np.unique(np.array(draws).reshape(3000, -1), axis=0, return_counts=True)
        assert counts.size == covering_matrices(rows, cols, covered)
        assert stats.chisquare(counts).pvalue > 1e-3


def test_meloux2025_draws_never_keep_every_hidden_node_of_a_deep_network():
    # the mode leaves such circuits out; they are most of the space it starts from
    space = CircuitSpace((2, 8, 8, 1), "meloux2025")
    for row in sample_circuits(space, 300, seed=2):
        masks = space.bits_to_masks(row)
        assert space.is_admissible(masks)
        assert not all(masks[layer].any(axis=1).all() for layer in (0, 1))


def test_sampler_is_seeded_and_works_past_64_bit_counts():
    space = CircuitSpace((2, 32, 1))
    assert space.count() == 4**32 - 1 > 2**63
    a, b = sample_circuits(space, 5, seed=3), sample_circuits(space, 5, seed=3)
    assert np.array_equal(a, b) and not np.array_equal(a, sample_circuits(space, 5, seed=4))
    deep = CircuitSpace((2, 8, 8, 1))
    for row in sample_circuits(deep, 20, seed=0):
        assert deep.is_admissible(deep.bits_to_masks(row))


# ------------------------------------------------------------------ estimates


def _network(sizes, seed):
    from circuit_census.network import Network

    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, 1, (sizes[i + 1], sizes[i])) for i in range(len(sizes) - 1)]
    bs = [rng.normal(0, 0.3, sizes[i + 1]) for i in range(len(sizes) - 1)]
    return Network(tuple(ws), tuple(bs), "relu", "identity")


def test_estimate_interval_covers_the_exact_fraction_at_the_stated_rate():
    from circuit_census.circuits.census import census
    from circuit_census.circuits.estimate import estimate_census
    from circuit_census.circuits.settings import CensusSettings, RunOptions

    net = _network((2, 3, 1), 0)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    settings = CensusSettings(threshold=0.05)
    exact = census(net, x, None, settings, RunOptions())
    truth = exact.n_valid / exact.n_candidates
    assert 0.1 < truth < 0.9  # a fraction the interval can miss on either side
    runs = [estimate_census(net, x, None, settings, 60, seed=s) for s in range(200)]
    covered = sum(e.fraction_low <= truth <= e.fraction_high for e in runs)
    # Wilson 95%: coverage over 200 seeds within a binomial margin of 0.95
    assert stats.binomtest(covered, 200, 0.95).pvalue > 1e-3
    assert all(e.n_candidates == 63 and e.n_sampled == 60 for e in runs)
    e = runs[0]
    assert e.n_valid == round(e.valid_fraction * 63)
    low, high = e.n_valid_interval
    assert low <= e.fraction_low * 63 < low + 1 and high - 1 < e.fraction_high * 63 <= high
    assert e.to_dict()["estimate"] is True
