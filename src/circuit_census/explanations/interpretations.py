"""Interpretations of a circuit (SPEC, "Explanations beyond circuits"), counted exactly.

An interpretation chooses a truth table over the task's corners for every neuron of a
circuit such that each neuron is a threshold-like function of its parents' chosen tables.
The choices have product structure: a neuron's options depend only on its own table and
its parents' tables in the layer below. So the count is a chain of matrix products over
layers (a dynamic program whose state is the tables of one layer's neurons that feed the
next layer), never a list of interpretations; they are listed only on request, up to a
limit, by walking the same matrices.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import linprog

from circuit_census.circuits.ablation import ablated_activations
from circuit_census.circuits.space import MELOUX2025 as MELOUX
from circuit_census.network import Network

_INT64_SAFE = 2**62  # counts below this bound are summed in int64, larger ones as Python ints


@dataclass(frozen=True)
class NeuronTables:
    """One neuron of a circuit that has candidate tables: its layer (1..L), its index in
    that layer, its tables (``n_tables x n_corners`` booleans, one per threshold halfway
    between consecutive distinct values) and its parents (indices in layer ``layer - 1`` of
    in-circuit senders that have tables; empty in layer 1, whose neurons are free)."""

    layer: int
    index: int
    tables: np.ndarray
    parents: tuple[int, ...]


@dataclass(frozen=True)
class NeuronChoice:
    """One neuron's part of an interpretation: its table (bits over the corners, in the
    order of :func:`circuit_census.tasks.boolean.corners`) and its local gate: for layer 1
    the table itself, otherwise the bits over its parents' patterns (first parent most
    significant), ``-`` where no corner realizes the pattern (default mode)."""

    layer: int
    index: int
    table: str
    gate: str


def candidate_tables(values: np.ndarray) -> np.ndarray:
    """``[v > theta_j]`` for each threshold ``theta_j`` halfway between consecutive distinct
    values of ``values`` over the corners: ``n_tables x n_corners`` booleans (none if the
    neuron takes one value)."""
    distinct = np.unique(values)
    thresholds = (distinct[:-1] + distinct[1:]) / 2
    return values[None, :] > thresholds[:, None]


def read_output_bits(outputs: np.ndarray, compat: str | None) -> np.ndarray:
    """The output read as a bit: ``round(o)`` (half to even) in meloux2025 mode, else
    ``o >= 0.5``."""
    if compat == MELOUX:
        return np.round(outputs)
    return (outputs >= 0.5).astype(np.float64)


def circuit_tables(
    network: Network,
    masks: Sequence[np.ndarray],
    corners: np.ndarray,
    compat: str | None = None,
    ablation: str = "zero",
    means: Sequence[np.ndarray] | None = None,
) -> list[list[NeuronTables]]:
    """The neurons of circuit ``masks`` that have tables, layer by layer (``[layer 1, ...,
    layer L]``), from the ablated model's values at ``corners``."""
    h = ablated_activations(network, masks, corners, ablation, means)
    h[-1] = read_output_bits(h[-1], compat)
    layers: list[list[NeuronTables]] = []
    for layer in range(1, network.n_layers + 1):
        edges = np.asarray(masks[layer - 1]) != 0
        below = {n.index for n in layers[-1]} if layers else set()
        neurons = []
        for j in range(edges.shape[0]):
            if not edges[j].any():
                continue
            tables = candidate_tables(h[layer][:, j])
            if len(tables) == 0:
                continue
            senders = np.flatnonzero(edges[j])
            parents = () if layer == 1 else tuple(int(i) for i in senders if i in below)
            neurons.append(NeuronTables(layer, j, tables, parents))
        layers.append(neurons)
    return layers


def _table_ints(tables: np.ndarray) -> np.ndarray:
    """Each table as an integer (corner ``c`` is bit ``c``)."""
    return tables.astype(np.int64) @ (1 << np.arange(tables.shape[1], dtype=np.int64))


@lru_cache(maxsize=1 << 16)
def separable(parent_tables: tuple[int, ...], table: int, n_corners: int) -> bool:
    """Whether the neuron table ``table`` is a threshold function of the parent tables
    (integers over ``n_corners`` corners): some ``w, b`` with ``w . p(c) + b > 0`` exactly
    on the corners where the table is 1. A linear program; the same question recurs
    across circuits, so answers are kept."""
    corners = np.arange(n_corners)
    p = np.array([[(t >> c) & 1 for t in parent_tables] for c in corners], dtype=np.float64)
    sign = np.where([(table >> c) & 1 for c in corners], 1.0, -1.0)
    a_ub = -sign[:, None] * np.hstack([p, np.ones((n_corners, 1))])
    found = linprog(
        np.zeros(p.shape[1] + 1),
        A_ub=a_ub,
        b_ub=-np.ones(n_corners),
        bounds=(None, None),
        method="highs",
    )
    return found.status == 0


def local_weights(table: np.ndarray, parent_tables: np.ndarray, compat: str | None) -> np.ndarray:
    """For each row of ``parent_tables`` (``K x m x n_corners``: one table per parent), how
    many local functions make ``table`` a function of them: 0 or 1 by default (consistent
    and extendable to a threshold function); in meloux2025 mode the number of completions on
    unrealized parent patterns (not XOR or XNOR for two parents). Int64, or Python ints
    where a count may not fit."""
    k, m, n_corners = parent_tables.shape
    codes = (parent_tables.astype(np.int64) << np.arange(m)[None, :, None]).sum(axis=1)
    a, b = np.nonzero(np.triu(table[:, None] != table[None, :]))
    consistent = ~(codes[:, a] == codes[:, b]).any(axis=1)
    if compat == MELOUX:
        ordered = np.sort(codes, axis=1)
        realized = 1 + (np.diff(ordered, axis=1) != 0).sum(axis=1)
        missing = (1 << m) - realized
        if missing.max(initial=0) > 61:
            weights = np.array([1 << int(n) for n in missing], dtype=object)
        else:
            weights = np.left_shift(1, missing).astype(np.int64)
        if m == 2:
            parity = parent_tables[:, 0] ^ parent_tables[:, 1]
            weights = weights - (parity == table).all(axis=1) - (parity != table).all(axis=1)
        return np.where(consistent, weights, 0)
    weights = consistent.astype(np.int64)
    if m >= 2 and consistent.any():
        ints = np.sort(_table_ints(parent_tables.reshape(k * m, n_corners)).reshape(k, m), axis=1)
        rows, inverse = np.unique(ints, axis=0, return_inverse=True)
        target = int(_table_ints(table[None])[0])
        ok = np.array([separable(tuple(sorted(set(r.tolist()))), target, n_corners) for r in rows])
        weights &= ok[inverse.reshape(-1)]
    return weights


@dataclass(frozen=True)
class _Layer:
    """One layer's part of the dynamic program: its neurons, which of them feed the next
    layer (``kept``), and ``weights[u]``: ``S_prev x n_tables`` options of neuron ``u``
    given the kept tables of the layer below (state ``s`` of ``S_prev``)."""

    neurons: list[NeuronTables]
    kept: list[int]
    weights: list[np.ndarray]
    transition: np.ndarray  # S_prev x S: ways to go from a state below to a kept state here


def _states(counts: Sequence[int]) -> np.ndarray:
    """Every state of a layer's kept neurons (``S x q`` table indices, C order)."""
    if not counts:
        return np.zeros((1, 0), dtype=np.int64)
    return np.indices(counts).reshape(len(counts), -1).T


def _build(layers: list[list[NeuronTables]], compat: str | None) -> list[_Layer]:
    """The dynamic program's matrices, layer by layer."""
    built: list[_Layer] = []
    prev_neurons: list[NeuronTables] = []
    prev_kept: list[int] = []
    for depth, neurons in enumerate(layers):
        above = layers[depth + 1] if depth + 1 < len(layers) else []
        feeding = {p for n in above for p in n.parents}
        kept = [i for i, n in enumerate(neurons) if n.index in feeding]
        states = _states([len(prev_neurons[i].tables) for i in prev_kept])
        where = {prev_neurons[i].index: col for col, i in enumerate(prev_kept)}
        weights = []
        for n in neurons:
            if not n.parents:
                weights.append(
                    np.ones((len(states), len(n.tables)), dtype=np.int64)
                    if depth == 0
                    else np.zeros((len(states), len(n.tables)), dtype=np.int64)
                )
                continue
            cols = [where[p] for p in n.parents]
            tables = [prev_neurons[prev_kept[c]].tables for c in cols]
            parent_tables = np.stack([t[states[:, c]] for t, c in zip(tables, cols)], axis=1)
            weights.append(
                np.stack([local_weights(t, parent_tables, compat) for t in n.tables], axis=1)
            )
        built.append(_Layer(neurons, kept, weights, _transition(weights, kept)))
        prev_neurons, prev_kept = neurons, kept
    return built


def _bound(weights: list[np.ndarray]) -> int:
    """An upper bound on any entry of the layer's transition, as a Python int."""
    bound = 1
    for w in weights:
        bound *= w.shape[1] * max(1, int(w.max(initial=0)))
    return bound


def _transition(weights: list[np.ndarray], kept: list[int]) -> np.ndarray:
    """``S_prev x S``: for each state below and each kept state here, the product of the
    kept neurons' options times the summed options of the neurons that feed nobody."""
    dtype = np.int64 if _bound(weights) < _INT64_SAFE else object
    n_prev = weights[0].shape[0] if weights else 1
    out = np.ones((n_prev, 1), dtype=dtype)
    for u, w in enumerate(weights):
        w = w.astype(dtype)
        if u in kept:
            out = (out[:, :, None] * w[:, None, :]).reshape(n_prev, -1)
        else:
            out = out * w.sum(axis=1, keepdims=True)
    return out


def count_interpretations(layers: list[list[NeuronTables]], compat: str | None = None) -> int:
    """The exact number of interpretations of a circuit given its neurons' tables."""
    built = _build(layers, compat)
    f: np.ndarray = np.ones(1, dtype=np.int64)
    for layer in built:
        m = layer.transition
        if m.dtype == object or f.dtype == object:
            f = f.astype(object) @ m.astype(object)
        else:
            bound = int(f.max(initial=0)) * int(m.max(initial=0)) * max(1, m.shape[0])
            f = f @ m if bound < _INT64_SAFE else f.astype(object) @ m.astype(object)
    return int(f.astype(object).sum())


def _gates(
    neuron: NeuronTables, table: int, parents: list[np.ndarray], compat: str | None
) -> Iterator[str]:
    """The local gates of ``neuron`` with its table ``table`` given its parents' chosen
    tables (see :class:`NeuronChoice`)."""
    bits = neuron.tables[table]
    if not parents:
        yield "".join("1" if b else "0" for b in bits)
        return
    m = len(parents)
    codes = sum(p.astype(np.int64) << (m - 1 - i) for i, p in enumerate(parents))
    local = {int(c): int(b) for c, b in zip(codes, bits)}
    missing = [c for c in range(1 << m) if c not in local]
    if compat != MELOUX:
        yield "".join(str(local[c]) if c in local else "-" for c in range(1 << m))
        return
    for fill in itertools.product((0, 1), repeat=len(missing)):
        full = {**local, **dict(zip(missing, fill))}
        gate = "".join(str(full[c]) for c in range(1 << m))
        if m == 2 and gate in ("0110", "1001"):
            continue
        yield gate


def list_interpretations(
    layers: list[list[NeuronTables]], compat: str | None = None, limit: int = 100
) -> list[tuple[NeuronChoice, ...]]:
    """Up to ``limit`` interpretations, each neuron's table and local gate, walking the
    dynamic program so that no partial choice is a dead end."""
    built = _build(layers, compat)
    ahead = [np.ones(1, dtype=object)]  # ways to complete the layers above, per kept state
    for layer in reversed(built[1:]):
        ahead.insert(0, layer.transition.astype(object) @ ahead[0])
    found: list[tuple[NeuronChoice, ...]] = []

    def walk(depth: int, state: int, chosen: list[NeuronChoice], tables: dict) -> bool:
        if depth == len(built):
            found.append(tuple(chosen))
            return len(found) >= limit
        layer = built[depth]
        options = [np.flatnonzero(w[state] > 0) for w in layer.weights]
        sizes = [len(layer.neurons[u].tables) for u in layer.kept]
        for pick in itertools.product(*options):
            kept_state = (
                int(np.ravel_multi_index([pick[u] for u in layer.kept], sizes)) if sizes else 0
            )
            if ahead[depth][kept_state] == 0:
                continue
            here = {(n.layer, n.index): n.tables[t] for n, t in zip(layer.neurons, pick)}
            gate_lists = [
                _gates(n, t, [tables[(n.layer - 1, p)] for p in n.parents], compat)
                for n, t in zip(layer.neurons, pick)
            ]
            for gates in itertools.product(*gate_lists):
                step = [
                    NeuronChoice(
                        n.layer, n.index, "".join("1" if b else "0" for b in n.tables[t]), g
                    )
                    for n, t, g in zip(layer.neurons, pick, gates)
                ]
                if walk(depth + 1, kept_state, chosen + step, {**tables, **here}):
                    return True
        return False

    if limit > 0:
        walk(0, 0, [], {})
    return found
