"""The explanations stage against SPEC: interpretations, formulas and mappings agree with a
plain reference on small random networks in both modes, hand-built networks give their
known answers, and the meloux2025 mode gives the reference code's numbers on its network."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from brute_force import admissible_edge_flags
from explanation_reference import (
    intermediate_nodes,
    plain_formulas,
    plain_interpretations,
    plain_mappings,
    text,
)

from circuit_census.circuits.census import census
from circuit_census.circuits.settings import CensusSettings
from circuit_census.circuits.space import CircuitSpace
from circuit_census.errors import InputError
from circuit_census.explanations.explain import explain, hidden_sparsity, task_table
from circuit_census.explanations.formulas import candidate_formulas
from circuit_census.explanations.interpretations import (
    circuit_tables,
    count_interpretations,
    list_interpretations,
)
from circuit_census.explanations.mappings import (
    corner_pairs,
    formula_mappings,
    intervention_outputs,
)
from circuit_census.network import Network
from circuit_census.tasks.boolean import corners

MODES = [None, "meloux2025"]
XOR = np.array([0, 1, 1, 0])
FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "meloux2025-xor.npz"


def random_network(sizes, activation: str, seed: int) -> Network:
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, 1.5, (b, a)) for a, b in zip(sizes, sizes[1:])]
    bs = [rng.normal(0, 0.7, b) for b in sizes[1:]]
    return Network(tuple(ws), tuple(bs), activation, "identity")


def some_circuits(space: CircuitSpace, n: int, seed: int) -> list:
    every = [masks for _, masks in admissible_edge_flags(space)]
    picked = np.random.default_rng(seed).permutation(len(every))[:n]
    return [every[i] for i in picked]


@pytest.mark.parametrize("compat", MODES)
@pytest.mark.parametrize(
    "sizes, activation",
    [
        ((2, 3, 1), "tanh"),
        ((2, 2, 2, 1), "relu"),
        ((2, 3, 2, 1), "leaky_relu"),
        ((3, 2, 2, 1), "tanh"),
        ((2, 2, 3, 1), "sigmoid"),
    ],
)
def test_interpretation_counts_match_the_plain_reference(sizes, activation, compat):
    seen = []
    for seed in range(3):
        net = random_network(sizes, activation, seed)
        x = corners(sizes[0])
        for masks in some_circuits(CircuitSpace(sizes, compat), 40 // sizes[0] ** 2, seed):
            fast = count_interpretations(circuit_tables(net, masks, x, compat), compat)
            assert fast == plain_interpretations(net, masks, compat), masks
            seen.append(fast)
    assert len(set(seen)) > 2  # the comparison covered circuits with different counts


@pytest.mark.parametrize("compat", MODES)
def test_listed_interpretations_are_the_counted_ones(compat):
    sizes = (2, 2, 2, 1)
    checked = 0
    for seed in range(4):
        net = random_network(sizes, "tanh", seed)
        for masks in some_circuits(CircuitSpace(sizes, compat), 15, seed):
            layers = circuit_tables(net, masks, corners(2), compat)
            n = count_interpretations(layers, compat)
            if n > 300:
                continue
            listed = list_interpretations(layers, compat, limit=1000)
            assert len(listed) == n and len(set(listed)) == n
            assert len(list_interpretations(layers, compat, limit=2)) == min(2, n)
            options = {
                (n.layer, n.index): {"".join("1" if b else "0" for b in t) for t in n.tables}
                for layer in layers
                for n in layer
            }
            for interpretation in listed:
                assert [(c.layer, c.index) for c in interpretation] == list(options)
                assert all(c.table in options[(c.layer, c.index)] for c in interpretation)
            checked += n
    assert checked > 20


@pytest.mark.parametrize("compat", MODES)
@pytest.mark.parametrize(
    "table, n_inputs, depth",
    [
        (XOR, 2, 2),
        (np.array([0, 0, 0, 1]), 2, 2),
        (np.array([1, 1, 0, 1]), 2, 2),
        (np.array([0, 0, 0, 1, 0, 1, 1, 1]), 3, 2),
        (np.array([0, 1, 1, 0, 1, 0, 0, 1]), 3, 1),
    ],
)
def test_formulas_match_the_plain_reference(table, n_inputs, depth, compat):
    fast = candidate_formulas(table, corners(n_inputs), depth, compat)
    plain = plain_formulas(table, n_inputs, depth, compat)
    assert [f.text for f in fast] == [text(t, neg) for t, neg in plain]
    assert [f.intermediate for f in fast] == [tuple(intermediate_nodes(t, n)) for t, n in plain]


def test_counts_beyond_int64_are_exact():
    # Seven copies of AND feed an output that computes AND: every neuron has one table,
    # and the output's seven parents realize only 2 of 2^7 patterns, so the meloux2025
    # mode counts 2^126 completions; the default mode one threshold extension.
    scales = np.arange(1.0, 8.0)
    net = Network(
        (np.repeat(scales[:, None], 2, axis=1), np.ones((1, 7))),
        (-scales, np.zeros(1)),
        "relu",
    )
    masks = [np.ones((7, 2)), np.ones((1, 7))]
    layers = circuit_tables(net, masks, corners(2), "meloux2025")
    assert count_interpretations(layers, "meloux2025") == 2**126
    assert count_interpretations(circuit_tables(net, masks, corners(2)), None) == 1


def xor_network(extra: int = 0, seed: int = 0) -> Network:
    """A 2-(2+extra)-1 ReLU network computing XOR: h1 = A + B, h2 = relu(A + B - 1),
    o = h1 - 2 h2; ``extra`` neurons with small random weights into the output."""
    rng = np.random.default_rng(seed)
    w0 = np.vstack([[[1.0, 1.0], [1.0, 1.0]], rng.normal(0, 1, (extra, 2))])
    b0 = np.concatenate([[0.0, -1.0], rng.normal(0, 0.5, extra)])
    w1 = np.concatenate([[1.0, -2.0], rng.normal(0, 0.05, extra)])[None, :]
    return Network((w0, w1), (b0, np.zeros(1)), "relu", "identity")


def deep_xor_network(seed: int) -> Network:
    """A 2-2-2-1 ReLU network computing XOR with slightly perturbed weights."""
    rng = np.random.default_rng(seed)
    w0 = np.array([[1.0, 1.0], [1.0, 1.0]]) + rng.normal(0, 0.05, (2, 2))
    w1 = np.array([[1.0, -2.0], [0.0, 1.0]]) + rng.normal(0, 0.05, (2, 2))
    w2 = np.array([[1.0, -0.5]]) + rng.normal(0, 0.05, (1, 2))
    return Network((w0, w1, w2), (np.array([0.0, -1.0]), np.zeros(2), np.zeros(1)), "relu")


@functools.cache
def plain_xor_formulas(depth: int, compat: str | None) -> dict:
    """The plain reference's XOR formulas by their text (slow at depth 3, so kept)."""
    return {text(t, n): (t, n) for t, n in plain_formulas(XOR, 2, depth, compat)}


@pytest.mark.parametrize("compat", MODES)
@pytest.mark.parametrize(
    "net", [xor_network(), xor_network(1, 3), deep_xor_network(1), deep_xor_network(2)]
)
def test_mapping_counts_match_the_plain_reference(net, compat):
    x = corners(2)
    pairs = corner_pairs(2, compat)
    layers = intervention_outputs(net, x, pairs)
    plain = plain_xor_formulas(net.n_layers, compat)
    some_valid = False
    eligible = [
        f for f in candidate_formulas(XOR, x, net.n_layers, compat) if len(f.intermediate) <= 3
    ]
    for formula in eligible[:: max(1, len(eligible) // 120)]:  # at most about 120 of them
        fast = formula_mappings(formula, layers, x, pairs, net.sizes[1:-1], limit=1000)
        counts = plain_mappings(net, *plain[formula.text], compat)
        assert (fast.n_valid_mappings, fast.n_minimal_mappings) == counts, formula.text
        assert len(fast.minimal_mappings) == fast.n_minimal_mappings
        assert len(set(fast.valid_mappings)) == fast.n_valid_mappings
        assert set(fast.minimal_mappings) <= set(fast.valid_mappings)
        some_valid |= counts[0] > 0
    assert some_valid


def test_an_and_network_has_one_interpretation_and_a_formula_without_intermediate_nodes():
    # h1 = relu(A + B - 1) is AND, h2 = relu(A - B) feeds the output with weight 0.
    net = Network(
        (np.array([[1.0, 1.0], [1.0, -1.0]]), np.array([[1.0, 0.0]])),
        (np.array([-1.0, 0.0]), np.zeros(1)),
        "relu",
    )
    x, y = corners(2), np.array([[0.0], [0.0], [0.0], [1.0]])
    only_h1 = [np.array([[1, 1], [0, 0]]), np.array([[1, 0]])]
    with_h2 = [np.array([[1, 1], [1, 0]]), np.array([[1, 1]])]  # h2 = relu(A)
    for compat in MODES:
        assert count_interpretations(circuit_tables(net, only_h1, x, compat), compat) == 1
    # Output over (h1, h2) = (AND, A) never sees the pattern (1, 0): one threshold
    # extension, but two completions (AND and "first parent") in the meloux2025 mode.
    assert count_interpretations(circuit_tables(net, with_h2, x, None), None) == 1
    assert count_interpretations(circuit_tables(net, with_h2, x, "meloux2025"), "meloux2025") == 2
    (only,) = list_interpretations(circuit_tables(net, only_h1, x, None), None)
    assert [(c.layer, c.index, c.table, c.gate) for c in only] == [
        (1, 0, "0001", "0001"),
        (2, 0, "0001", "01"),
    ]

    found = explain(net, x, y)  # mse: h1 complete and any wiring of h2 (4 circuits)
    assert [c.n_interpretations for c in found.circuits] == [1, 1, 1, 1]
    summary = found.summary()
    assert (summary.n_valid_circuits, summary.n_single_interpretation) == (4, 4)
    by_text = {f.formula.text: f for f in found.formulas}
    assert by_text["A*B"].formula.intermediate == ()
    assert (by_text["A*B"].n_valid_mappings, by_text["A*B"].n_minimal_mappings) == (1, 1)
    assert by_text["A*B"].minimal_mappings == [()]
    meloux = explain(net, x, y, CensusSettings("accuracy", 0.99, compat="meloux2025"))
    assert [c.n_interpretations for c in meloux.circuits] == [1]  # h2 must be left out


@pytest.mark.parametrize("compat", MODES)
def test_an_xor_network_with_two_neurons_has_two_formulas(compat):
    # With two hidden neurons a formula can map at most two intermediate nodes; of XOR's
    # formulas of depth <= 2 only NOT(A*B) AND (A+B) and NOT((A*B) OR NOT(A+B)) have two,
    # and each maps in one way: the AND-like node to h2, the OR-like node to h1.
    net, x = xor_network(), corners(2)
    pairs = corner_pairs(2, compat)
    layers = intervention_outputs(net, x, pairs)
    mapped = [
        formula_mappings(f, layers, x, pairs, (2,)) for f in candidate_formulas(XOR, x, 2, compat)
    ]
    mapped = [m for m in mapped if m.n_valid_mappings]
    assert [m.formula.text for m in mapped] == ["¬(A*B)*(A+B)", "¬((A*B)+¬(A+B))"]
    assert [(m.n_valid_mappings, m.n_minimal_mappings) for m in mapped] == [(1, 1), (1, 1)]
    (mapping,) = mapped[0].minimal_mappings
    assert {(n.formula, n.layer, n.neurons) for n in mapping} == {
        ("¬(A*B)", 1, (1,)),
        ("A+B", 1, (0,)),
    }
    if compat is None:
        found = explain(net, x, XOR[:, None].astype(float))
        assert found.n_formulas == 2
        # only the full network is valid; its one interpretation: h1 = A OR B (not AND,
        # which would merge corners 00 and 01), the output h1 AND NOT h2
        assert [c.n_interpretations for c in found.circuits] == [1]


@pytest.mark.skipif(not FIXTURE.exists(), reason="the shared fixture is not beside the repo")
def test_the_meloux2025_mode_gives_the_reference_numbers_on_its_network():
    # Expected values from running the reference code (gwherb/MI-identifiability at commit
    # c08b08d, the authors' last) on this network: find_circuits on the four clean corners
    # (accuracy threshold 0.99), Circuit.ground on the same corners for every valid circuit,
    # get_formula_dataset([XOR], max_depth=3) and find_minimal_mappings for each formula,
    # with the output layer's LeakyReLU restored. Its grounding took 63 s, its mappings 1.9 s.
    d = np.load(FIXTURE)
    net = Network(
        tuple(d[f"W{i}"] for i in range(3)),
        tuple(d[f"b{i}"] for i in range(3)),
        "leaky_relu",
        "leaky_relu",
    )
    found = explain(
        net,
        corners(2),
        XOR[:, None].astype(float),
        CensusSettings("accuracy", 0.99, compat="meloux2025"),
    )
    assert sorted(c.n_interpretations for c in found.circuits) == [
        6, 18, 24, 26, 82, 192, 192, 368, 384, 384, 448, 448, 576, 576, 608, 608, 752,
        752, 800, 800, 800, 1792, 2176, 2304, 2368, 2880, 3072, 3136, 6144, 21504, 85760,
        94720,
    ]  # fmt: skip
    assert found.n_candidate_formulas == 56
    assert [(f.formula.text, f.n_minimal_mappings) for f in found.formulas] == [
        ("¬(A*B)*(A+B)", 2),
        ("¬((A*B)+¬(A+B))", 2),
        ("(¬(A*B)*(A+B))*¬(A*B)", 12),
        ("(¬(A*B)*(A+B))*¬((A*B)*B)", 12),
        ("((A*B)+(A+B))*¬(A*B)", 6),
        ("¬(¬((A*B)+(A+B))+(A*B))", 6),
        ("¬(((A*B)+¬(A+B))+¬(¬(A*B)+B))", 2),
    ]
    # the reference's two minimal mappings of the first formula, neuron by neuron
    assert {
        frozenset((n.formula, n.layer, n.neurons) for n in m)
        for m in found.formulas[0].minimal_mappings
    } == {
        frozenset({("A+B", 1, (1,)), ("¬(A*B)", 1, (0,))}),
        frozenset({("A+B", 2, (0,)), ("¬(A*B)", 1, (0,))}),
    }
    summary = found.summary()
    assert (summary.n_valid_circuits, summary.interpretations_total) == (32, 234700)
    assert (summary.n_formulas, summary.minimal_mappings_total) == (7, 42)


def test_the_meloux2025_mode_drops_what_the_reference_sparsity_filter_drops():
    net = xor_network(extra=3, seed=5)  # hidden width 5: sparsity must be above 0.3
    x, y = corners(2), XOR[:, None].astype(float)
    settings = CensusSettings("accuracy", 0.99, compat="meloux2025")
    found = explain(net, x, y, settings)
    result = census(net, x, y, settings)
    sparsities = [hidden_sparsity(result.edge_masks(bits)) for bits in result.valid]
    assert found.n_dropped_by_sparsity == sum(s <= 0.3 for s in sparsities) > 0
    assert len(found.circuits) == sum(s > 0.3 for s in sparsities) > 0
    assert all(hidden_sparsity(c.edge_masks) > 0.3 for c in found.circuits)


def test_the_task_table_is_read_from_noisy_data_and_must_cover_every_corner():
    rng = np.random.default_rng(0)
    x = np.repeat(corners(2), 20, axis=0) + rng.normal(0, 0.1, (80, 2))
    y = np.repeat(XOR, 20)[:, None].astype(float)
    assert task_table(x, y, 2).tolist() == XOR.tolist()
    with pytest.raises(InputError, match="no sample near corner 11"):
        task_table(x[:60], y[:60], 2)
    with pytest.raises(InputError, match="one-output"):
        explain(random_network((2, 2, 2), "relu", 0), x, np.hstack([y, y]))
