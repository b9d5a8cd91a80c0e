"""Circuit discovery (acdc, eap, eap-ig, magnitude) on networks whose circuits are known,
its gradients against finite differences, and its grades against the brute-force oracle."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from brute_force import admissible_edge_flags, valid_and_minimal

from circuit_census.activations import apply_activation
from circuit_census.circuits.ablation import evaluate_circuit
from circuit_census.circuits.settings import CensusSettings
from circuit_census.circuits.space import CircuitSpace
from circuit_census.discovery.grading import (
    census_truth,
    discover_and_grade,
    faithfulness_curve,
    grade,
    method_summaries,
)
from circuit_census.discovery.methods import (
    METHODS,
    DiscoveryOptions,
    discover,
    eap_ig_scores,
    eap_scores,
    rank_edges,
)
from circuit_census.discovery.patching import flags_to_masks, patching, remove_dangling
from circuit_census.errors import InputError
from circuit_census.network import Network

CORNERS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
X = np.repeat(CORNERS, 5, axis=0)
Y = (X.sum(axis=1, keepdims=True) == 1).astype(float)

# Edges of a 2-2-1 network in the space's order: x0->h0, x1->h0, x0->h1, x1->h1, h0->o, h1->o.


def one_minimal() -> Network:
    """out = h0 + 0.01 h1, h0 = relu(x0 + x1), h1 = relu(0.01 (x0 + x1)): only the path
    through h0 matters, so {x0->h0, x1->h0, h0->o} is the one minimal circuit."""
    return Network(
        (np.array([[1.0, 1.0], [0.01, 0.01]]), np.array([[1.0, 0.01]])),
        (np.zeros(2), np.zeros(1)),
        "relu",
    )


def two_disjoint_minimal() -> Network:
    """out = sigmoid(10 h0 + 10 h1 - 5) with h0 = h1 = relu(x0): either path alone saturates
    the output, so {x0->h0, h0->o} and {x0->h1, h1->o} are the two minimal circuits."""
    return Network(
        (np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[10.0, 10.0]])),
        (np.zeros(2), np.array([-5.0])),
        "relu",
        "sigmoid",
    )


ONLY_H0 = [1, 1, 0, 0, 1, 0]
VIA_H0, VIA_H1 = [1, 0, 0, 0, 1, 0], [0, 0, 1, 0, 0, 1]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
def test_every_method_finds_the_one_minimal_circuit(method, ablation):
    settings = CensusSettings(ablation=ablation)
    report = discover_and_grade(one_minimal(), X, Y, settings, DiscoveryOptions(method), seeds=3)
    assert report.n_minimal == 1
    for run in report.runs:
        assert run.discovered.flags.astype(int).tolist() == ONLY_H0
        g = run.grade
        assert g.valid and g.minimal and g.size_excess == 0 and g.jaccard == 1.0
        assert g.contained_minimal == (0,)
    assert report.coverage.returned == report.coverage.contained == 1


def test_acdc_edge_orders_reach_both_disjoint_minimal_circuits():
    report = discover_and_grade(
        two_disjoint_minimal(), X, Y, CensusSettings(), DiscoveryOptions("acdc"), seeds=8
    )
    assert report.n_minimal == 2
    found = {tuple(r.discovered.flags.astype(int).tolist()) for r in report.runs}
    assert found == {tuple(VIA_H0), tuple(VIA_H1)}
    assert all(r.grade.minimal and r.grade.valid for r in report.runs)
    assert report.coverage.returned == 2 and report.coverage.n_minimal == 2


@pytest.mark.parametrize("method", ["eap", "eap-ig", "magnitude"])
def test_deterministic_methods_return_one_of_the_disjoint_minimal_circuits(method):
    report = discover_and_grade(
        two_disjoint_minimal(), X, Y, CensusSettings(), DiscoveryOptions(method), seeds=2
    )
    for run in report.runs:
        assert run.discovered.flags.astype(int).tolist() in (VIA_H0, VIA_H1)
        assert run.grade.minimal and len(run.grade.contained_minimal) == 1
    assert report.coverage.returned == 1  # no seed changes their answer under zero ablation


def test_a_circuit_holding_both_pathways_contains_both_minimal_circuits():
    net = two_disjoint_minimal()
    truth = census_truth(net, X, Y, CensusSettings())
    both = np.array([1, 0, 1, 0, 1, 1], dtype=bool)
    g = grade(net, X, Y, CensusSettings(), both, truth)
    assert g.valid and not g.minimal
    assert sorted(g.contained_minimal) == [0, 1]
    assert g.size_excess == 2 and g.jaccard == pytest.approx(0.5)


# ----------------------------------------------------------------------------- gradients


def random_network(rng, sizes, hidden, out_act) -> Network:
    ws = tuple(rng.normal(0, 1.0, size=(b, a)) for a, b in zip(sizes[:-1], sizes[1:]))
    bs = tuple(rng.normal(0, 0.5, size=b) for b in sizes[1:])
    return Network(ws, bs, hidden, out_act)


def perturbed_mse(net, inputs, reference, layer, receiver, push, eps) -> float:
    """mse against ``reference`` of the full model on ``inputs`` with ``eps * push`` (one
    value per sample) added to the pre-activation of ``receiver`` in weight layer ``layer``."""
    h = inputs
    for at, (w, b) in enumerate(zip(net.weights, net.biases)):
        z = h @ w.T + b
        if at == layer:
            z[:, receiver] += eps * push
        h = apply_activation(net.layer_activation(at), z)
    return float(np.mean((h - reference) ** 2))


def finite_difference_scores(problem, levels, eps=1e-6) -> np.ndarray:
    """Each edge i -> j: d/d eps of the mse when j's pre-activation gets eps x (h_i(x) - r_i)
    x W[j, i], by central differences, averaged over runs on x' + a (x - x')."""
    net, scores = problem.network, []
    corrupted = problem.replaced[0]
    for layer, w in enumerate(net.weights):
        diff = problem.clean[layer] - problem.replaced[layer]
        for j, i in itertools.product(range(w.shape[0]), range(w.shape[1])):
            push = diff[:, i] * w[j, i]
            total = 0.0
            for a in levels:
                inputs = corrupted + a * (problem.x - corrupted)
                up = perturbed_mse(net, inputs, problem.reference, layer, j, push, eps)
                down = perturbed_mse(net, inputs, problem.reference, layer, j, push, -eps)
                total += (up - down) / (2 * eps)
            scores.append(total / len(levels))
    return np.array(scores)


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
@pytest.mark.parametrize("hidden, out_act", [("tanh", "identity"), ("sigmoid", "sigmoid")])
def test_eap_and_eap_ig_scores_equal_finite_differences(ablation, hidden, out_act):
    rng = np.random.default_rng(sum(map(ord, ablation + hidden)))
    net = random_network(rng, (2, 3, 2, 1), hidden, out_act)
    x = X + rng.normal(0, 0.1, size=X.shape)
    problem = patching(net, x, None, CensusSettings(ablation=ablation))
    eap = eap_scores(problem)
    assert np.allclose(eap, finite_difference_scores(problem, [0.0]), rtol=1e-5, atol=1e-10)
    ig = eap_ig_scores(problem, steps=4)
    levels = [0.125, 0.375, 0.625, 0.875]
    assert np.allclose(ig, finite_difference_scores(problem, levels), rtol=1e-5, atol=1e-10)
    assert np.abs(eap).max() > 1e-5 and not np.allclose(eap, ig)  # both say something


# ----------------------------------------------------------------------------- grading


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
def test_grades_equal_the_brute_force_oracle(ablation):
    rng = np.random.default_rng({"zero": 1, "mean": 2, "resample": 3}[ablation])
    seen_minimal = seen_not_minimal = 0
    for sizes in [(2, 2, 1), (2, 3, 1), (2, 1, 2, 1)]:
        net = random_network(rng, sizes, "relu", "identity")
        x = X + rng.normal(0, 0.1, size=X.shape)
        threshold = float(max(0.01, 0.3 * np.var(net.forward(x))))
        settings = CensusSettings(threshold=threshold, ablation=ablation)
        valid, minimal = valid_and_minimal(net, x, None, settings)
        truth = census_truth(net, x, None, settings)
        assert len(truth.valid) == len(valid) and len(truth.minimal) == len(minimal)
        minimal_list = [truth.space.bits_to_masks(b) for b in truth.minimal]
        minimal_flags = [tuple(np.concatenate([m.reshape(-1) for m in ms])) for ms in minimal_list]
        assert set(minimal_flags) == minimal
        smallest = min((sum(c) for c in valid), default=None)
        for flags, _ in admissible_edge_flags(CircuitSpace(net.sizes)):
            g = grade(net, x, None, settings, flags, truth)
            key = tuple(int(v) for v in flags)
            assert g.valid == (key in valid)
            assert g.minimal == (key in minimal)
            inside = {i for i, m in enumerate(minimal_flags) if all(a <= b for a, b in zip(m, key))}
            assert set(g.contained_minimal) == inside
            assert g.size_excess == (None if smallest is None else sum(key) - smallest)
            if minimal:
                best = max(
                    sum(a & b for a, b in zip(m, key)) / sum(a | b for a, b in zip(m, key))
                    for m in minimal_flags
                )
                assert g.jaccard == pytest.approx(best)
            seen_minimal += g.minimal
            seen_not_minimal += not g.minimal
    assert seen_minimal > 0 and seen_not_minimal > 0


def test_faithfulness_curve_judges_every_top_k_circuit_as_evaluate_circuit_does():
    rng = np.random.default_rng(5)
    net = random_network(rng, (2, 3, 1), "relu", "identity")
    x = X + rng.normal(0, 0.1, size=X.shape)
    settings = CensusSettings(threshold=float(0.3 * np.var(net.forward(x))))
    problem = patching(net, x, None, settings)
    ranking = rank_edges(eap_ig_scores(problem))
    truth = census_truth(net, x, None, settings)
    curve = faithfulness_curve(problem, ranking, truth)
    assert [p.k for p in curve.points] == list(range(1, problem.n_edges + 1))
    for p in curve.points:
        flags = np.zeros(problem.n_edges, dtype=bool)
        flags[ranking[: p.k]] = True
        flags = remove_dangling(problem.space, flags)
        masks = flags_to_masks(problem.space, flags)
        assert p.admissible == problem.space.is_admissible(masks)
        if p.admissible:
            judged = evaluate_circuit(net, masks, x, None, settings)
            assert (p.valid, p.mse) == (judged.valid, pytest.approx(judged.mse))
    assert curve.points[-1].valid  # the full network is valid
    first = next(p for p in curve.points if p.valid)
    assert curve.smallest_valid_k == first.k and curve.smallest_valid_k_edges == first.n_edges
    assert curve.census_smallest_valid == truth.smallest_valid <= first.n_edges


def test_remove_dangling_gives_the_largest_admissible_part():
    space = CircuitSpace((2, 2, 2, 1))
    rng = np.random.default_rng(0)
    for _ in range(200):
        flags = rng.random(space.n_edges) < 0.5
        kept = remove_dangling(space, flags)
        assert not np.any(kept & ~flags)  # only removes
        assert np.array_equal(remove_dangling(space, kept), kept)  # a fixed point
        masks = flags_to_masks(space, kept)
        if all(m.any() for m in masks[-1]):
            assert space.is_admissible(masks)


def test_k_and_threshold_select_the_top_of_the_ranking():
    net = one_minimal()
    found = discover(net, X, Y, CensusSettings(), DiscoveryOptions("eap-ig", k=1))
    # the top edge (h0->o) is not a circuit by itself; the next one (x0->h0) makes one
    assert found.k == 2 and found.flags.astype(int).tolist() == VIA_H0
    found = discover(net, X, Y, CensusSettings(), DiscoveryOptions("eap-ig", k=3))
    assert found.k == 3 and found.flags.astype(int).tolist() == ONLY_H0
    every = discover(net, X, Y, CensusSettings(), DiscoveryOptions("eap-ig", score_threshold=0))
    assert every.k == 6 and every.flags.all()


def test_without_a_census_the_grade_says_what_it_could_not_compute():
    report = discover_and_grade(
        one_minimal(), X, Y, CensusSettings(), DiscoveryOptions("magnitude"), max_candidates=10
    )
    g = report.runs[0].grade
    assert g.valid and g.minimal is None and g.size_excess is None
    assert "minimal" in g.not_computed and "coverage" in report.not_computed
    assert report.coverage is None


def test_method_summaries_give_one_row_per_method():
    rows = method_summaries(two_disjoint_minimal(), X, Y, CensusSettings(), seeds=4)
    assert [r.method for r in rows] == list(METHODS)
    by = {r.method: r for r in rows}
    assert by["acdc"].coverage == 2 and by["magnitude"].coverage == 1
    assert all(r.n == 4 and r.n_minimal == 2 for r in rows)
    assert by["magnitude"].fraction_valid == 1.0 and by["magnitude"].median_size_excess == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "sae"}, "unknown discovery method"),
        ({"tau": -1.0}, "tau"),
        ({"method": "eap", "k": 0}, "positive integer"),
        ({"method": "eap", "k": 2, "score_threshold": 0.1}, "not both"),
        ({"method": "eap-ig", "steps": 0}, "steps"),
        ({"method": "acdc", "k": 3}, "not acdc"),
    ],
)
def test_bad_discovery_options_are_refused_when_made(kwargs, message):
    with pytest.raises(InputError, match=message):
        DiscoveryOptions(**kwargs)


@pytest.mark.parametrize("method", METHODS)
def test_methods_under_the_accuracy_criterion_grade_with_the_targets(method):
    """Network one computes x0 + x1; read as a bit (>= 0.5) it is OR, and zero ablation of
    x1->h0 breaks it on (0, 1) only: a quarter of the samples wrong."""
    net, y_or = one_minimal(), (X.sum(axis=1, keepdims=True) >= 1).astype(float)
    settings = CensusSettings("accuracy", 0.9)
    report = discover_and_grade(net, X, y_or, settings, DiscoveryOptions(method), seeds=2)
    valid, minimal = valid_and_minimal(net, X, y_or, settings)
    assert report.n_valid == len(valid) and report.n_minimal == len(minimal)
    for run in report.runs:
        key = tuple(int(v) for v in run.discovered.flags)
        assert run.grade.valid == (key in valid) and run.grade.minimal == (key in minimal)
    with pytest.raises(InputError, match="needs targets"):
        discover(net, X, None, settings, DiscoveryOptions(method))


def test_no_seeds_is_refused():
    with pytest.raises(InputError, match="seeds must be at least 1"):
        discover_and_grade(one_minimal(), X, Y, seeds=0)
