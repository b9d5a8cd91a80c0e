"""evaluate_circuit, the one-circuit path users call on a circuit they propose, reaches the
census's verdict on every admissible circuit (and refuses what is not a circuit)."""

from __future__ import annotations

import numpy as np
import pytest

from circuit_census.circuits.ablation import evaluate_circuit
from circuit_census.circuits.census import census
from circuit_census.circuits.settings import CensusSettings, RunOptions
from circuit_census.errors import InputError
from circuit_census.network import Network


def _network(rng, sizes, hidden, out_act) -> Network:
    ws = tuple(rng.normal(size=(b, a)) for a, b in zip(sizes[:-1], sizes[1:]))
    bs = tuple(rng.normal(scale=0.3, size=b) for b in sizes[1:])
    return Network(ws, bs, hidden, out_act)


def _admissible_masks(space) -> list[list[np.ndarray]]:
    """Every admissible circuit of a small space, as per-layer 0/1 edge masks."""
    found = []
    for n in range(1, 1 << space.n_edges):
        flags = np.array([(n >> e) & 1 for e in range(space.n_edges)], dtype=np.uint8)
        masks, at = [], 0
        for rows, cols in space.layer_shapes:
            masks.append(flags[at : at + rows * cols].reshape(rows, cols))
            at += rows * cols
        if space.is_admissible(masks):
            found.append(masks)
    return found


@pytest.mark.parametrize("criterion", ["mse", "accuracy"])
@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
@pytest.mark.parametrize("out_act", ["identity", "sigmoid", "tanh"])
def test_evaluate_circuit_agrees_with_the_census_on_every_circuit(criterion, ablation, out_act):
    rng = np.random.default_rng(sum(map(ord, criterion + ablation + out_act)))
    net = _network(rng, (2, 3, 1), "relu", out_act)
    x = np.repeat(np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), 3, axis=0)
    x = x + rng.normal(scale=0.1, size=x.shape)
    y = (net.forward(x) >= 0.5).astype(float)
    y[::4] = 1 - y[::4]  # some samples wrong, so that accuracy can fail
    threshold = 0.5 * float(np.var(net.forward(x))) if criterion == "mse" else 0.7
    pairs = "all" if out_act == "tanh" else "seeded"
    settings = CensusSettings(criterion, threshold, ablation, resample_pairs=pairs)
    result = census(net, x, y, settings, RunOptions(prune=False))
    valid = {tuple(b) for b in result.valid}
    verdicts = {True: 0, False: 0}
    for masks in _admissible_masks(result.space):
        judged = evaluate_circuit(net, masks, x, y, settings)
        assert judged.valid == (tuple(result.space.masks_to_bits(masks)) in valid)
        verdicts[judged.valid] += 1
    assert verdicts[True] + verdicts[False] == result.n_candidates


def test_evaluate_circuit_refuses_masks_that_are_not_a_circuit():
    net = _network(np.random.default_rng(0), (2, 2, 1), "relu", "identity")
    dangling = [np.array([[1, 0], [0, 0]]), np.array([[0, 1]])]  # node 0 fed, node 1 read
    with pytest.raises(InputError, match="admissible"):
        evaluate_circuit(net, dangling, np.zeros((3, 2)))


def test_resample_ablation_carries_the_corrupted_input_s_activations():
    """A circuit with one input edge ablated: that edge carries W * x'_i, x' the partner of
    x in the seeded permutation (identity network, so the output is a sum of edges)."""
    net = Network((np.array([[2.0, 3.0]]),), (np.array([0.5]),), "relu", "identity")
    x = np.arange(10.0).reshape(5, 2)
    settings = CensusSettings(ablation="resample", resample_seed=3)
    clean, corrupted = settings.resample_indices(len(x))
    assert sorted(corrupted.tolist()) == list(range(5))  # a permutation of X
    keep_first = [np.array([[1, 0]])]
    expected = 2.0 * x[:, 0] + 3.0 * x[corrupted, 1] + 0.5
    judged = evaluate_circuit(net, keep_first, x, settings=settings)
    full = 2.0 * x[:, 0] + 3.0 * x[:, 1] + 0.5
    assert judged.mse == pytest.approx(np.mean((expected - full) ** 2)) and judged.mse > 0
    every = CensusSettings(ablation="resample", resample_pairs="all")
    clean, corrupted = every.resample_indices(3)
    assert list(zip(clean.tolist(), corrupted.tolist())) == [
        (i, j) for i in range(3) for j in range(3)
    ]
