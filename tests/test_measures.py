"""Minimal circuits and uniqueness measures against brute force over plain Python sets."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from brute_force import admissible_edge_flags

from circuit_census.circuits.space import CircuitSpace, bits_to_bools, bools_to_bits, popcount
from circuit_census.errors import InputError
from circuit_census.measures.uniqueness import (
    census_measures,
    circuit_measures,
    hidden_effective_rank,
    minimal_circuits,
    pair_overlap,
    sort_circuits,
)
from circuit_census.network import Network
from circuit_census.tasks.boolean import corners
from circuit_census.tasks.complexity import effective_rank

# ----------------------------------------------------------------- brute-force reference


def admissible_sets(space: CircuitSpace) -> list[frozenset[int]]:
    """Every admissible circuit of a small space, as a set of edge indices."""
    return [frozenset(int(e) for e in np.flatnonzero(f)) for f, _ in admissible_edge_flags(space)]


def to_bits(sets: list[frozenset[int]], space: CircuitSpace) -> np.ndarray:
    flags = np.zeros((len(sets), space.n_edges), dtype=bool)
    for r, s in enumerate(sets):
        flags[r, sorted(s)] = True
    return bools_to_bits(flags, space.n_words)


def to_sets(bits: np.ndarray, space: CircuitSpace) -> list[frozenset[int]]:
    out = []
    for row in bits:
        edges = [
            w * 64 + b for w in range(space.n_words) for b in range(64) if (int(row[w]) >> b) & 1
        ]
        out.append(frozenset(edges))
    return out


def brute_minimal(sets: list[frozenset[int]]) -> set[frozenset[int]]:
    return {c for c in sets if not any(o < c for o in sets)}


def brute_pairs(sets: list[frozenset[int]]) -> tuple[float, float, int, int]:
    pairs = list(itertools.combinations(sets, 2))
    jac = sum(len(a & b) / len(a | b) for a, b in pairs) / len(pairs)
    nested = sum(a <= b or b <= a for a, b in pairs) / len(pairs)
    disjoint = sum(not (a & b) for a, b in pairs)
    return jac, nested, disjoint, len(pairs)


def edge_layer(space: CircuitSpace, e: int) -> tuple[int, int, int]:
    offs = space.edge_offsets
    layer = max(i for i in range(space.n_layers) if offs[i] <= e)
    j, i = divmod(e - offs[layer], space.sizes[layer])
    return layer, j, i


def brute_nodes(c: frozenset[int], space: CircuitSpace) -> set[tuple[int, int]]:
    nodes = set()
    for e in c:
        layer, j, i = edge_layer(space, e)
        nodes.add((layer, i))
        nodes.add((layer + 1, j))
    return nodes


SPACES = [CircuitSpace((2, 3, 1)), CircuitSpace((2, 2, 2, 1)), CircuitSpace((2, 4, 1))]


@pytest.fixture(scope="module")
def admissible() -> dict[tuple[int, ...], list[frozenset[int]]]:
    return {sp.sizes: admissible_sets(sp) for sp in SPACES}


def test_brute_force_enumeration_matches_spec_counts(admissible) -> None:
    assert [len(admissible[sp.sizes]) for sp in SPACES] == [63, 99, 255]


# ----------------------------------------------------------------- minimal circuits


@pytest.mark.parametrize("space", SPACES, ids=lambda s: "-".join(map(str, s.sizes)))
@pytest.mark.parametrize("trial", range(4))
def test_minimal_equals_brute_force(space: CircuitSpace, trial: int, admissible) -> None:
    rng = np.random.default_rng(trial)
    pool = admissible[space.sizes]
    k = int(rng.integers(1, len(pool) + 1))
    sets = [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
    bits = to_bits(sets, space)[rng.permutation(k)]
    got = minimal_circuits(bits)
    assert got.dtype == np.uint64 and got.shape[1] == space.n_words
    assert set(to_sets(got, space)) == brute_minimal(sets)
    assert len(to_sets(got, space)) == got.shape[0]  # no duplicates


def test_minimal_on_multiword_bitsets_with_structure() -> None:
    """Random edge sets over 88 edges (two words): supersets of a few seeds plus noise."""
    space = CircuitSpace((2, 8, 8, 1))
    rng = np.random.default_rng(7)
    seeds = [
        frozenset(rng.choice(88, size=int(rng.integers(2, 8)), replace=False)) for _ in range(6)
    ]
    sets = list(seeds)
    for _ in range(300):
        base = seeds[int(rng.integers(len(seeds)))] if rng.random() < 0.7 else frozenset()
        extra = frozenset(int(e) for e in rng.choice(88, size=int(rng.integers(1, 30))))
        sets.append(base | extra)
    sets = list(dict.fromkeys(sets))
    bits = to_bits(sets, space)
    assert set(to_sets(minimal_circuits(bits), space)) == brute_minimal(sets)


def test_minimal_order_is_canonical_and_duplicates_count_once() -> None:
    space = CircuitSpace((2, 3, 1))
    sets = [frozenset({1, 6, 8}), frozenset({0, 6}), frozenset({0, 2, 6, 7}), frozenset({2, 7})]
    bits = to_bits(sets + sets[:2], space)
    got = to_sets(minimal_circuits(bits[::-1]), space)
    # popcount first, then the sorted edge lists lexicographically
    assert got == [frozenset({0, 6}), frozenset({2, 7}), frozenset({1, 6, 8})]
    again = to_sets(minimal_circuits(bits), space)
    assert again == got


def test_sort_circuits_order() -> None:
    space = CircuitSpace((2, 3, 1))
    sets = [frozenset({3, 4}), frozenset({1, 5}), frozenset({0}), frozenset({1, 2, 3})]
    got = to_sets(sort_circuits(to_bits(sets, space)), space)
    assert got == [frozenset({0}), frozenset({1, 5}), frozenset({3, 4}), frozenset({1, 2, 3})]


@pytest.mark.parametrize("n_words", [1, 2, 3])
def test_the_one_canonical_order_is_size_then_sorted_edge_lists(n_words: int) -> None:
    """``sort_circuits`` (the order of census results, shards combined, and minimal
    circuits) equals its definition on random bitsets, multi-word ones included."""
    from circuit_census.circuits import census, space

    assert sort_circuits is space.sort_circuits is census.sort_circuits
    rng = np.random.default_rng(n_words)
    n_edges = 64 * n_words - int(rng.integers(0, 8))
    for density in (0.03, 0.3, 0.5, 0.95):
        flags = rng.random((600, n_edges)) < density
        flags[400:500] = flags[:100]  # duplicates
        # rows that agree on all but their last edges: ties broken in the last word
        flags[500:, : n_edges - 5] = flags[100:200, : n_edges - 5]
        flags[0] = False  # the empty set
        flags[1, n_edges - 1] = True
        bits = bools_to_bits(flags, n_words)
        ordered = bits_to_bools(sort_circuits(bits), n_edges)
        got = [[int(e) for e in np.flatnonzero(f)] for f in ordered]
        lists = [[int(e) for e in np.flatnonzero(f)] for f in flags]
        assert got == sorted(lists, key=lambda edges: (len(edges), edges))


def test_minimal_of_empty_and_bad_input() -> None:
    assert minimal_circuits(np.zeros((0, 2), dtype=np.uint64)).shape == (0, 2)
    with pytest.raises(InputError):
        minimal_circuits(np.zeros(3, dtype=np.uint64))


def test_minimal_is_fast_on_a_large_upward_closed_set() -> None:
    """200k valid circuits with few minimal ones: far from all-pairs cost."""
    rng = np.random.default_rng(0)
    n_edges = 60
    seeds = rng.random((20, n_edges)) < 0.08
    flags = seeds[rng.integers(0, 20, 200_000)] | (rng.random((200_000, n_edges)) < 0.3)
    flags[:20] = seeds
    bits = bools_to_bits(flags, 1)
    got = minimal_circuits(bits)
    expected = {frozenset(np.flatnonzero(s)) for s in seeds}
    expected = {c for c in expected if not any(o < c for o in expected)}
    got_sets = {frozenset(np.flatnonzero(r)) for r in bits_to_bools(got, n_edges)}
    assert got_sets == expected


# ----------------------------------------------------------------- measures


@pytest.mark.parametrize("space", SPACES, ids=lambda s: "-".join(map(str, s.sizes)))
@pytest.mark.parametrize("trial", range(3))
def test_measures_equal_brute_force(space: CircuitSpace, trial: int, admissible) -> None:
    rng = np.random.default_rng(100 + trial)
    pool = admissible[space.sizes]
    k = int(rng.integers(2, min(len(pool), 120)))
    sets = [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
    m = circuit_measures(to_bits(sets, space), space)

    minimal = brute_minimal(sets)
    jac, nested, disjoint, n_pairs = brute_pairs(sets)
    assert m.n_valid == k
    assert m.n_minimal == len(minimal)
    assert m.identifiable == (len(minimal) == 1)
    assert m.n_pairs == n_pairs == k * (k - 1) // 2
    assert not m.pairs_estimated and m.n_pairs_sampled == n_pairs
    assert m.mean_jaccard == pytest.approx(jac, rel=1e-12)
    assert m.nested_fraction == pytest.approx(nested, rel=1e-12)
    assert m.n_disjoint_pairs == disjoint
    assert m.min_edges == min(len(c) for c in sets)
    assert m.min_nodes == min(len(brute_nodes(c, space)) for c in sets)
    assert m.size_counts == [sum(len(c) == s for c in sets) for s in range(space.n_edges + 1)]
    for layer, (rows, cols) in enumerate(space.layer_shapes):
        expect = np.zeros((rows, cols))
        for c in sets:
            for e in c:
                lay, j, i = edge_layer(space, e)
                if lay == layer:
                    expect[j, i] += 1
        np.testing.assert_allclose(m.edge_frequency[layer], expect / k)
    for layer, n in enumerate(space.sizes):
        expect = [sum((layer, i) in brute_nodes(c, space) for c in sets) / k for i in range(n)]
        np.testing.assert_allclose(m.node_frequency[layer], expect)
    if len(minimal) >= 2:
        mjac, _, mdis, _ = brute_pairs(sorted(minimal, key=sorted))
        assert m.minimal_mean_jaccard == pytest.approx(mjac)
        assert m.minimal_n_disjoint_pairs == mdis
    else:
        assert m.minimal_mean_jaccard is None and m.minimal_n_disjoint_pairs == 0


def test_sampled_pairs_are_close_to_exact_and_flagged(admissible) -> None:
    space = CircuitSpace((2, 4, 1))
    sets = admissible[space.sizes]
    bits = to_bits(sets, space)
    exact = circuit_measures(bits, space)
    est = circuit_measures(bits, space, max_pairs=1000, sample_pairs=200_000, seed=3)
    assert not exact.pairs_estimated
    assert est.pairs_estimated and est.n_pairs_sampled == 200_000
    assert est.n_pairs == exact.n_pairs == 255 * 254 // 2
    assert est.mean_jaccard == pytest.approx(exact.mean_jaccard, abs=0.005)
    assert est.nested_fraction == pytest.approx(exact.nested_fraction, abs=0.005)
    assert exact.n_disjoint_pairs > 500
    assert est.n_disjoint_pairs == pytest.approx(exact.n_disjoint_pairs, rel=0.06)
    # seeded: the same seed gives the same estimate, another seed another one
    again = circuit_measures(bits, space, max_pairs=1000, sample_pairs=200_000, seed=3)
    other = circuit_measures(bits, space, max_pairs=1000, sample_pairs=200_000, seed=4)
    assert again.mean_jaccard == est.mean_jaccard
    assert other.mean_jaccard != est.mean_jaccard
    assert est.to_dict()["pairs_estimated"] is True
    assert "estimated" in " ".join(est.summary_lines())


def test_pair_overlap_disjoint_and_nested_by_hand() -> None:
    space = CircuitSpace((2, 3, 1))
    sets = [frozenset({0, 6}), frozenset({0, 6, 3, 7}), frozenset({5, 8})]
    o = pair_overlap(to_bits(sets, space))
    # pairs: (a,b) nested, J=2/4; (a,c) disjoint, J=0; (b,c) disjoint, J=0
    assert o.n_pairs == 3 and not o.estimated
    assert o.mean_jaccard == pytest.approx(0.5 / 3)
    assert o.nested_fraction == pytest.approx(1 / 3)
    assert o.n_disjoint_pairs == 2


@pytest.mark.parametrize("k", [0, 1])
def test_measures_without_pairs(k: int) -> None:
    space = CircuitSpace((2, 2, 1))
    bits = to_bits([frozenset({0, 2, 4})][:k], space)
    m = circuit_measures(bits, space)
    assert m.n_valid == k and m.n_pairs == 0 and m.n_disjoint_pairs == 0
    assert m.mean_jaccard is None and m.nested_fraction is None
    assert m.n_minimal == k and m.identifiable == (k == 1)
    d = m.to_dict()
    json.dumps(d, allow_nan=False)  # JSON-friendly: no NaN anywhere
    if k == 0:
        assert m.min_edges is None and m.min_nodes is None
        assert all(math.isnan(v) for f in m.edge_frequency for v in f.ravel())
        assert d["edge_frequency"][0][0][0] is None
    else:
        assert (m.min_edges, m.min_nodes) == (3, 4)
        assert d["edge_frequency"] == [[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0]]]
        assert d["node_frequency"] == [[1.0, 0.0], [1.0, 1.0], [1.0]]


def test_to_dict_round_trips_through_json(admissible) -> None:
    space = CircuitSpace((2, 3, 1))
    m = circuit_measures(to_bits(admissible[space.sizes][:20], space), space)
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert d["n_valid"] == 20 and d["n_minimal"] == m.n_minimal
    assert np.array(d["edge_frequency"][0]).shape == (3, 2)
    assert [len(v) for v in d["node_frequency"]] == [2, 3, 1]


def test_passing_minimal_gives_the_same_measures(admissible) -> None:
    space = CircuitSpace((2, 3, 1))
    bits = to_bits(admissible[space.sizes][10:50], space)
    a = circuit_measures(bits, space)
    b = circuit_measures(bits, space, minimal=minimal_circuits(bits))
    assert a.to_dict() == b.to_dict()


def test_measures_reject_bitsets_of_another_space() -> None:
    with pytest.raises(InputError):
        circuit_measures(np.zeros((2, 2), dtype=np.uint64), CircuitSpace((2, 3, 1)))


def test_census_measures_needs_collected_circuits() -> None:
    class Result:
        space = CircuitSpace((2, 2, 1))
        valid = None

    with pytest.raises(InputError):
        census_measures(Result())
    Result.valid = to_bits([frozenset({0, 2, 4}), frozenset({0, 2, 4, 5, 3})], Result.space)
    m, minimal = census_measures(Result())
    assert m.n_valid == 2 and m.n_minimal == 1 and popcount(minimal).tolist() == [3]


# ----------------------------------------------------------------- hidden effective rank


def test_hidden_effective_rank_of_the_xor_network() -> None:
    xor = Network(
        (np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([[1.0, -2.0]])),
        (np.array([0.0, -1.0]), np.array([0.0])),
    )
    x = corners(2)
    np.testing.assert_allclose(xor.forward(x)[:, 0], [0, 1, 1, 0])
    h = np.maximum(x @ np.array([[1.0, 1.0], [1.0, 1.0]]).T + [0.0, -1.0], 0.0)
    assert hidden_effective_rank(xor, x) == [pytest.approx(effective_rank(h))]
    # the hidden activations [[0,0],[1,0],[1,0],[2,1]] use two directions, unequally
    assert 1.0 < hidden_effective_rank(xor, x)[0] < 2.0


def test_hidden_effective_rank_per_layer() -> None:
    eye = np.eye(2)
    net = Network((eye, np.ones((1, 2)), np.ones((1, 1))), (np.zeros(2), np.zeros(1), np.zeros(1)))
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    got = hidden_effective_rank(net, x)
    assert got == [pytest.approx(2.0), pytest.approx(1.0)]
    with pytest.raises(InputError):
        hidden_effective_rank(net, np.zeros((3, 3)))
