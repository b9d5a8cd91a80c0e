"""How a prefix's census is cut into work: the options of each last-hidden unit, the outer
units and halves A and B (the prefixes themselves come from ``families``).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from circuit_census.activations import apply_activation
from circuit_census.circuits.engine.problem import Problem
from circuit_census.circuits.space import CircuitSpace

HALF_COMBOS = 1 << 16  # most combinations held for one half
HALF_BYTES = 160 << 20  # and at most this much of their contributions
BLOCK_ELEMENTS = 1 << 22  # pairs scored per kernel call


@dataclass
class Group:
    """All combinations of options of some units: what each covers, adds and switches on."""

    cover: np.ndarray  # (n,) int64 bitmask of required nodes fed
    bits: np.ndarray  # (n, n_words) uint64 edges
    present: np.ndarray  # (n,) int64 number of last-hidden nodes kept
    contrib: np.ndarray  # (n, P, m) float64 added to the output pre-activation

    def __len__(self) -> int:
        return len(self.cover)


@dataclass
class Prefix:
    """An admissible circuit of the layers before the last hidden one."""

    bits: np.ndarray  # (n_words,) edges into layers 1..L-2
    values: np.ndarray  # (P, n_{L-2}) values of layer L-2 under the prefix circuit
    active: np.ndarray  # (n_{L-2},) bool: nodes that must be fed onward (or may be, for inputs)
    all_hidden: bool  # every hidden node of layers 1..L-2 kept


def subset_masks(members: np.ndarray, width: int) -> np.ndarray:
    """All subsets of the nodes ``members`` as ``(2^k, width)`` booleans, empty set first."""
    k = len(members)
    combos = (np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1
    masks = np.zeros((2**k, width), dtype=bool)
    masks[:, members] = combos.astype(bool)
    return masks


def node_values(
    w_row: np.ndarray,
    bias: float,
    h_prev: np.ndarray,
    replaced_prev: np.ndarray,
    subsets: np.ndarray,
    act: str,
) -> np.ndarray:
    """Value of one node over the points for each set of kept in-edges: ``(S, P)``; an
    ablated in-edge carries its sender's ``replaced_prev`` value at each point ``(P, n)``."""
    pre = bias + (subsets * w_row) @ h_prev.T + ((~subsets) * w_row) @ replaced_prev.T
    return apply_activation(act, pre)


def _bitset(n_words: int, edges: Iterable[int]) -> np.ndarray:
    words = [0] * n_words
    for e in edges:
        words[e >> 6] |= 1 << (e & 63)
    return np.array(words, dtype=np.uint64)


def in_edges(space: CircuitSpace, layer: int, receiver: int, senders: np.ndarray) -> np.ndarray:
    """Bitset of the edges of ``W_layer`` into ``receiver`` from the ``senders`` (booleans)."""
    first = space.edge_index(layer, receiver, 0)
    return _bitset(space.n_words, (first + i for i in np.flatnonzero(senders).tolist()))


def _out_edges(space: CircuitSpace, layer: int, sender: int, receivers: int) -> np.ndarray:
    """Bitset of the edges of ``W_layer`` from ``sender`` to the ``receivers`` (bitmask)."""
    first, stride = space.edge_index(layer, 0, sender), space.sizes[layer]
    n = space.sizes[layer + 1]
    return _bitset(space.n_words, (first + o * stride for o in range(n) if receivers >> o & 1))


# ----------------------------------------------------------------------------- units


def _fed_outputs(out_sets: Sequence[int], m: int) -> np.ndarray:
    """``(len(out_sets), m)`` booleans: which outputs each bitmask of outputs feeds."""
    return ((np.array(out_sets)[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)


def _input_units(problem: Problem) -> list[Group]:
    """Without a hidden layer, each input is a unit: which outputs it feeds."""
    net, space = problem.network, problem.space
    m, w_out = net.sizes[-1], net.weights[-1]
    units = []
    for i in range(net.sizes[0]):
        opts = list(range(1 if problem.criterion.compat else 0, 2**m))
        live = problem.x[:, i][None, :, None] * w_out[:, i][None, None, :]
        dead = problem.replacement[0][:, i][None, :, None] * w_out[:, i][None, None, :]
        contrib = np.where(_fed_outputs(opts, m)[:, None, :], live, dead)
        bits = np.stack([_out_edges(space, 0, i, s) for s in opts])
        present = np.zeros(len(opts), dtype=np.int64)
        units.append(Group(np.array(opts, dtype=np.int64), bits, present, contrib))
    return units


@functools.lru_cache(maxsize=1 << 12)
def _unit_wiring(
    space: CircuitSpace, j: int, active: tuple[bool, ...], must_cover: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Last-hidden node ``j``'s options as wiring, the same for every prefix that keeps the
    nodes ``active`` before it: what each covers, its edges, whether it keeps ``j``. Option
    0 leaves ``j`` out; then come (senders ``s``, outputs ``o``), ``o`` fastest."""
    n_layers, m = space.n_layers, space.sizes[-1]
    n_prev = space.sizes[-3]
    subsets = subset_masks(np.flatnonzero(active), n_prev)[1:]
    sub_cover = (subsets.astype(np.int64) << np.arange(n_prev)).sum(axis=1) * must_cover
    out_sets = np.arange(1, 2**m, dtype=np.int64)
    cover = (sub_cover[:, None] | (out_sets[None, :] << n_prev)).reshape(-1)
    in_bits = [in_edges(space, n_layers - 2, j, s) for s in subsets]
    out_bits = [_out_edges(space, n_layers - 1, j, int(s)) for s in out_sets]
    bits = np.array([ib | ob for ib in in_bits for ob in out_bits], dtype=np.uint64)
    bits = bits.reshape(-1, space.n_words)
    return (
        np.concatenate([[0], cover]).astype(np.int64),
        np.concatenate([np.zeros((1, space.n_words), np.uint64), bits]),
        np.concatenate([[0], np.ones(len(cover), dtype=np.int64)]),
    )


def _hidden_unit(problem: Problem, prefix: Prefix, j: int, subsets: np.ndarray) -> Group:
    """Last-hidden node ``j``'s options: left out, or a non-empty set of senders ``s``
    (``subsets``) and a non-empty set of outputs ``o`` (option ``(s, o)``, ``o`` fastest)."""
    net = problem.network
    m, n_points = net.sizes[-1], len(problem.x)
    w_in, b_in, w_out = net.weights[-2], net.biases[-2], net.weights[-1]
    out_sets = np.arange(1, 2**m, dtype=np.int64)  # non-empty sets of outputs fed, as bitmasks
    vals = node_values(
        w_in[j], b_in[j], prefix.values, problem.replacement[-3], subsets, net.activation
    )
    # (P, m) what each output gets at each point with the edge from j ablated
    dead = problem.replacement[-2][:, j][:, None] * w_out[:, j][None, :]
    live = vals[:, :, None] * w_out[:, j][None, None, :]  # (S, P, m)
    fed = _fed_outputs(out_sets, m)
    contrib = np.where(fed[None, :, None, :], live[:, None, :, :], dead[None, None, :, :])
    contrib = contrib.reshape(-1, n_points, m)
    must_cover = net.n_layers > 2 or problem.criterion.compat is not None
    key = tuple(bool(a) for a in prefix.active)
    cover, bits, present = _unit_wiring(problem.space, j, key, must_cover)
    return Group(cover, bits, present, np.concatenate([dead[None], contrib]))


def unit_options(problem: Problem, prefix: Prefix) -> tuple[list[Group], int, int]:
    """Options of each unit (a last-hidden node, or an input when there is no hidden
    layer), the required cover mask, and the 'kept every hidden node' count to exclude."""
    net = problem.network
    n_layers, m = net.n_layers, net.sizes[-1]
    if n_layers == 1:
        return _input_units(problem), 2**m - 1, -1
    n_prev = net.sizes[-3]
    subsets = subset_masks(np.flatnonzero(prefix.active), n_prev)[1:]  # non-empty sender sets
    must_cover = n_layers > 2 or problem.criterion.compat is not None
    units = [_hidden_unit(problem, prefix, j, subsets) for j in range(net.sizes[-2])]
    prev_mask = (
        int((prefix.active.astype(np.int64) << np.arange(n_prev)).sum()) if must_cover else 0
    )
    required = prev_mask | ((2**m - 1) << n_prev)
    excluded = net.sizes[-2] if (problem.criterion.compat and prefix.all_hidden) else -1
    return units, required, excluded


def product(problem: Problem, units: Sequence[Group]) -> Group:
    """All combinations of the options of ``units`` (first unit varies slowest)."""
    g = Group(
        cover=np.zeros(1, dtype=np.int64),
        bits=np.zeros((1, problem.space.n_words), dtype=np.uint64),
        present=np.zeros(1, dtype=np.int64),
        contrib=np.zeros((1, len(problem.x), problem.n_out)),
    )
    for u in units:
        g = Group(
            cover=(g.cover[:, None] | u.cover[None, :]).reshape(-1),
            bits=(g.bits[:, None, :] | u.bits[None, :, :]).reshape(-1, g.bits.shape[1]),
            present=(g.present[:, None] + u.present[None, :]).reshape(-1),
            contrib=(g.contrib[:, None] + u.contrib[None, :]).reshape(-1, *g.contrib.shape[1:]),
        )
    return g


def unit_offsets(radix: np.ndarray) -> np.ndarray:
    """Where each unit's options start when the options of units with ``radix`` options
    each are laid end to end."""
    return np.concatenate([[0], np.cumsum(radix)[:-1]]).astype(np.int64)


# ----------------------------------------------------------------------------- halves


def split(sizes: Sequence[int], per_combo_bytes: int) -> tuple[int, int]:
    """Split units ``[0, k)`` as outer ``[0, i)``, half A ``[i, j)``, half B ``[j, k)``:
    halves about equally large (pairs cost one step each, a half's combinations cost
    memory), outer units only when the halves would exceed what is held at once."""
    cap = max(2, min(HALF_COMBOS, HALF_BYTES // max(per_combo_bytes, 1)))
    target = min(cap, max(2.0, math.sqrt(math.prod(sizes)) * 1.000001))
    j, prod = len(sizes), 1
    while j > 0 and prod * sizes[j - 1] <= target:
        j -= 1
        prod *= sizes[j]
    if j == len(sizes) and sizes:  # a single unit larger than the target: B holds it alone
        j -= 1
    i, prod = j, 1
    while i > 0 and prod * sizes[i - 1] <= cap:
        i -= 1
        prod *= sizes[i]
    return i, j


def by_spread(units: list[Group]) -> list[Group]:
    """Units whose options move the output most first: branch and bound fixes them first
    and keeps the small ones (bounded tightly together) in half B."""
    spread = [float(np.ptp(u.contrib, axis=0).max()) for u in units]
    return [units[i] for i in np.argsort(-np.array(spread), kind="stable")]


@dataclass
class Halves:
    """One prefix's last hidden layer, cut into outer units (one combination at a time) and
    halves A and B (scored pairwise), with what a pair must cover to be a candidate."""

    outer_units: list[Group]
    units_a: list[Group]
    units_b: list[Group]
    half_a: Group  # every combination of units_a
    half_b: Group  # every combination of units_b
    required: int  # cover bitmask a candidate must reach
    excluded: int  # number of kept last-hidden nodes that is not allowed (-1: none)
    block: int  # rows of half A per work unit
    chunk_rows: int  # rows of half A whose pairs are decided at once within a block

    @property
    def units(self) -> list[Group]:
        return self.outer_units + self.units_a + self.units_b

    @property
    def n_outer(self) -> int:
        return math.prod(len(u) for u in self.outer_units)

    @property
    def n_blocks(self) -> int:
        return -(-len(self.half_a) // self.block)


def make_halves(problem: Problem, prefix: Prefix, keep: bool) -> Halves:
    """Cut ``prefix``'s units into outer units and halves (``keep``: valid pairs are
    listed, so a block's pair matrix must stay small)."""
    units, required, excluded = unit_options(problem, prefix)
    units = by_spread(units)
    i, j = split([len(u) for u in units], problem.n_terms * 8)
    half_b = product(problem, units[j:])
    half_a = product(problem, units[i:j])
    chunk_rows = max(1, BLOCK_ELEMENTS // len(half_b))
    block = max(1, min(len(half_a), chunk_rows))
    if not keep:  # no pair matrix to hold: larger blocks, still about 64 work units or more
        n_outer = math.prod(len(u) for u in units[:i])
        block = max(block, -(-len(half_a) // max(1, 64 // n_outer)))
    return Halves(
        units[:i], units[i:j], units[j:], half_a, half_b, required, excluded, block, chunk_rows
    )


# ----------------------------------------------------------------------------- work units


@dataclass
class Outer:
    """One combination of the outer units, with what it adds to every row of half A."""

    number: int  # its place among the prefix's outer combinations
    cover_a: np.ndarray  # (n_a,) what each row of half A covers, with this combination
    present_a: np.ndarray  # (n_a,) last-hidden nodes each row keeps, with this combination
    bits: np.ndarray  # its edges, with the prefix's
    contrib: np.ndarray  # (P, m) added to the output pre-activation


def outer_combinations(problem: Problem, prefix: Prefix, halves: Halves) -> Iterator[Outer]:
    """Every combination of the outer units, in mixed-radix order (first unit slowest)."""
    ranges = [range(len(u)) for u in halves.outer_units]
    for number, choice in enumerate(itertools.product(*ranges)):
        cover, present = 0, 0
        outer_bits = np.zeros(problem.space.n_words, dtype=np.uint64)
        contrib = np.zeros((len(problem.x), problem.n_out))
        for u, c in zip(halves.outer_units, choice):
            cover |= int(u.cover[c])
            present += int(u.present[c])
            outer_bits |= u.bits[c]
            contrib = contrib + u.contrib[c]
        yield Outer(
            number=number,
            cover_a=halves.half_a.cover | cover,
            present_a=halves.half_a.present + present,
            bits=prefix.bits | outer_bits,
            contrib=contrib,
        )
