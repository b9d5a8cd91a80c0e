"""The mse census with an identity output decides rows and pairs through ball trees of half A
and half B (engine/pair_tree.py). Its verdicts must be those of scoring every pair (checked
against the plain reference in test_census.py) and of the plain reference itself, counted
and listed, with outer units, silent (dead) nodes, and many pairs at the threshold's edge.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_census import as_flags, random_network, reference_census, xor_like_data

from circuit_census.circuits.ablation import evaluate_circuit
from circuit_census.circuits.census import census, combine_results
from circuit_census.circuits.engine import plan
from circuit_census.circuits.engine.families import root_prefix
from circuit_census.circuits.engine.pair_tree import make_pair_tree, uses_pair_tree
from circuit_census.circuits.engine.problem import prepare
from circuit_census.circuits.settings import CensusSettings, RunOptions
from circuit_census.network import Network


def with_dead_nodes(net: Network, dead: list[int]) -> Network:
    """``net`` with the hidden nodes ``dead`` switched off for every input of the data
    (relu of a very negative pre-activation): their options all add the same."""
    w_in, b_in = net.weights[0].copy(), net.biases[0].copy()
    w_in[dead] = -np.abs(w_in[dead])
    b_in[dead] = -50.0
    return Network((w_in, net.weights[1]), (b_in, net.biases[1]), "relu", "identity")


def with_twins(net: Network, pairs: list[tuple[int, int]]) -> Network:
    """``net`` with each hidden node ``j`` of ``pairs`` a copy of node ``i``: circuits that
    swap them have the same error, so many sit at one value."""
    w_in, b_in, w_out = net.weights[0].copy(), net.biases[0].copy(), net.weights[1].copy()
    for i, j in pairs:
        w_in[j], b_in[j], w_out[:, j] = w_in[i], b_in[i], w_out[:, i]
    return Network((w_in, w_out), (b_in, net.biases[1]), "relu", "identity")


def assert_same_census(net, x, settings, output=None):
    """The tree's census (listed and counted only) equals scoring every pair."""
    tree = census(net, x, settings=settings, output=output)
    every_pair = census(net, x, settings=settings, options=RunOptions(prune=False), output=output)
    counted = census(net, x, settings=settings, options=RunOptions(collect=False), output=output)
    assert tree.n_candidates == every_pair.n_candidates == counted.n_candidates
    assert tree.n_valid == every_pair.n_valid == counted.n_valid
    assert np.array_equal(tree.valid, every_pair.valid)
    assert counted.n_bounded == tree.n_bounded
    return tree


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
@pytest.mark.parametrize("compat", [None, "meloux2025"])
@pytest.mark.parametrize("half_combos", [plan.HALF_COMBOS, 16])
def test_tree_census_equals_scoring_every_pair(ablation, compat, half_combos, monkeypatch):
    monkeypatch.setattr(plan, "HALF_COMBOS", half_combos)  # 16: outer units, small halves
    rng = np.random.default_rng(len(ablation) + 10 * (compat is None) + half_combos)
    bounded = valid = invalid = 0
    for sizes, dead in [((2, 6, 1), [4, 5]), ((2, 7, 1), []), ((3, 5, 1), [2]), ((2, 5, 2), [])]:
        net = random_network(rng, sizes, "relu", "identity")
        if dead:
            net = with_dead_nodes(net, dead)
        x, _ = xor_like_data(rng, sizes[0], sizes[-1], repeats=5)
        threshold = 0.5 * float(np.var(net.forward(x)))
        settings = CensusSettings("mse", threshold, ablation, compat=compat)
        output = "joint" if sizes[-1] > 1 else None
        result = assert_same_census(net, x, settings, output)
        bounded += result.n_bounded
        valid += result.n_valid
        invalid += result.n_candidates - result.n_valid
    assert bounded > 0 and valid > 0 and invalid > 0


def test_tree_census_equals_the_plain_reference():
    rng = np.random.default_rng(3)
    for sizes, dead in [((2, 4, 1), [3]), ((2, 5, 1), [])]:
        net = (
            with_dead_nodes(random_network(rng, sizes), dead)
            if dead
            else random_network(rng, sizes)
        )
        x, y = xor_like_data(rng, 2, 1)
        threshold = 0.5 * float(np.var(net.forward(x)))
        for ablation in ("zero", "mean"):
            n_ref, valid_ref = reference_census(net, x, y, ablation, "mse", threshold)
            result = census(net, x, y, CensusSettings("mse", threshold, ablation))
            assert result.n_candidates == n_ref
            assert as_flags(result) == valid_ref
            assert 0 < len(valid_ref) < n_ref


def test_trailing_dead_nodes_make_points_of_the_tree():
    rng = np.random.default_rng(5)
    net = with_dead_nodes(random_network(rng, (2, 8, 1)), [5, 6, 7])
    x, _ = xor_like_data(rng, 2, 1)
    problem = prepare(net, x, None, CensusSettings())
    assert uses_pair_tree(problem)
    halves = plan.make_halves(problem, root_prefix(problem), keep=True)
    tree = make_pair_tree(problem, halves).kernel
    assert tree.live < len(halves.units_b)  # the dead nodes end half B
    assert tree.radius[tree.live] == 0.0 and tree.radius[0] > 0.0
    assert tree.size[0] == len(halves.half_b)
    assert tree.key_count[tree.key_start[0] : tree.key_start[1]].sum() == len(halves.half_b)


@pytest.mark.parametrize("ablation", ["zero", "mean"])
def test_many_pairs_at_the_threshold_edge_are_judged_like_every_pair(ablation, monkeypatch):
    monkeypatch.setattr(plan, "HALF_COMBOS", 64)
    rng = np.random.default_rng(11)
    net = with_twins(random_network(rng, (2, 7, 1)), [(0, 1), (0, 2), (3, 4)])
    net = with_dead_nodes(net, [6])
    x, _ = xor_like_data(rng, 2, 1)
    # the threshold is the error of one circuit: its twins share that error
    every_settings = CensusSettings("mse", 1e9, ablation)
    every = census(net, x, settings=every_settings)
    assert every.n_valid == every.n_candidates
    errors = sorted(
        evaluate_circuit(net, every.space.bits_to_masks(bits), x, settings=every_settings).mse
        for bits in every.valid[:: max(1, every.n_valid // 200)]
    )
    threshold = errors[len(errors) // 2]
    settings = CensusSettings("mse", threshold, ablation)
    assert_same_census(net, x, settings)
    below = census(net, x, settings=CensusSettings("mse", threshold * (1 - 1e-9), ablation))
    above = census(net, x, settings=CensusSettings("mse", threshold * (1 + 1e-9), ablation))
    assert above.n_valid - below.n_valid >= 8  # many circuits sit at the edge


def test_shards_of_many_outer_combinations_add_up_to_the_census(monkeypatch):
    monkeypatch.setattr(plan, "HALF_COMBOS", 16)  # 2-8-1: four outer units, 256 combinations
    rng = np.random.default_rng(13)
    net = with_dead_nodes(random_network(rng, (2, 8, 1)), [7])
    x, _ = xor_like_data(rng, 2, 1)
    settings = CensusSettings("mse", 0.5 * float(np.var(net.forward(x))))
    whole = census(net, x, settings=settings)
    assert 0 < whole.n_valid < whole.n_candidates
    for collect in (True, False):  # blocks of a whole outer combination when counting only
        parts = [
            census(net, x, settings=settings, options=RunOptions(shard=(i, 3), collect=collect))
            for i in range(3)
        ]
        assert sum(p.n_candidates for p in parts) == whole.n_candidates
        assert sum(p.n_valid for p in parts) == whole.n_valid
        assert sum(p.n_bounded for p in parts) == whole.n_bounded
        if collect:
            assert np.array_equal(combine_results(parts).valid, whole.valid)
