"""The exact census: every admissible circuit of a model, scored against the full model.

The engine never runs one forward pass per circuit. It uses two facts:

* given the edges into layers ``1..L-2`` (the *prefix*), the output's pre-activation is a
  sum over the last hidden layer's nodes, each contributing a term that depends only on
  that node's own edges (which senders it reads, which outputs it feeds), and
* a sum of two halves can be scored for all pairs of halves at once: by one matrix
  product for the mean squared error of an identity output (``|r_a + r_b|^2``), or by a
  compiled loop that stops at the first points that already decide a pair otherwise.

So the last hidden layer is split into an *outer* part enumerated one combination at a
time and two halves ``A`` and ``B`` scored pairwise. Admissibility (every required node
covered, the compatibility mode's exclusions) is a bitmask test on each pair. Work units
(prefix, outer combination, block of A) form shards whose union is exactly the census.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from circuit_census.activations import apply_activation
from circuit_census.circuits.circuitfile import CircuitFileWriter
from circuit_census.circuits.criteria import Criterion
from circuit_census.circuits.engine import kernels
from circuit_census.circuits.settings import CensusSettings, RunOptions
from circuit_census.circuits.space import CircuitSpace, popcount
from circuit_census.errors import InputError
from circuit_census.network import Network, check_inputs

HALF_COMBOS = 1 << 16  # most combinations held for one half
HALF_BYTES = 160 << 20  # and at most this much of their contributions
BLOCK_ELEMENTS = 1 << 22  # pairs scored per kernel call
RECHECK_BAND = 1e-11  # rounding bound (relative) within which the additive path re-sums
PAIR_LEAF = 16  # branch and bound over half B stops at families this small


@dataclass
class CensusResult:
    """The outcome of a census: counts, and the valid circuits as bitsets when collected.

    ``valid`` holds every valid circuit (sorted by size, then bitset) unless more than the
    ``collect`` limit were found; then it is ``None`` and ``n_valid`` still counts them all.
    """

    space: CircuitSpace
    network: Network
    n_candidates: int
    n_valid: int
    valid: np.ndarray | None
    settings: dict
    output: int | None = None
    seconds: float = 0.0
    shard: tuple[int, int] | None = None
    n_bounded: int = 0  # candidates decided by bounds on a whole family, not pair by pair

    def edge_masks(self, bits: np.ndarray, full_sizes: Sequence[int] | None = None) -> list:
        """Per-layer 0/1 masks of one circuit; for a per-output census, in the orientation
        of the full model's ``W_l`` when ``full_sizes`` is given (other outputs' rows 0)."""
        masks = self.space.bits_to_masks(bits)
        if full_sizes is not None and self.output is not None:
            last = np.zeros((full_sizes[-1], full_sizes[-2]), dtype=np.uint8)
            last[self.output] = masks[-1][0]
            masks[-1] = last
        return masks


@dataclass
class _Problem:
    """Everything a census needs, with data points deduplicated and ordered."""

    net: Network
    space: CircuitSpace
    x: np.ndarray  # (P, n_0) distinct points, in early-exit order
    weight: np.ndarray  # (P,) how many samples each point stands for
    reference: np.ndarray  # (P, m) full-model outputs (mse) or target bits (accuracy)
    pre_reference: np.ndarray  # (P, m) full-model output pre-activations
    means: list[np.ndarray]  # full-model mean of every node, per layer (zero ablation: zeros)
    crit: Criterion
    limit: float
    n_samples: int
    scorer: object | None = None  # a TorchScorer when the pairs are scored by PyTorch
    prune: bool = True  # decide families of circuits by bounds before scoring pairs

    @functools.cached_property
    def table(self) -> np.ndarray:
        """The output activation tabulated for the bounds (see kernels.activation_bounds)."""
        return kernels.activation_table(kernels.ACT_CODES[self.net.output_activation])

    @functools.cached_property
    def term_weight(self) -> np.ndarray:
        """Weights per (point, output) term."""
        return np.repeat(self.weight, self.net.sizes[-1])


@dataclass
class _Group:
    """All combinations of options of some units: what each covers, adds and switches on."""

    cover: np.ndarray  # (n,) int64 bitmask of required nodes fed
    bits: np.ndarray  # (n, n_words) uint64 edges
    present: np.ndarray  # (n,) int64 number of last-hidden nodes kept
    contrib: np.ndarray  # (n, P, m) float64 added to the output pre-activation


@dataclass
class _Prefix:
    bits: np.ndarray  # (n_words,) edges into layers 1..L-2
    values: np.ndarray  # (P, n_{L-2}) values of layer L-2 under the prefix circuit
    active: np.ndarray  # (n_{L-2},) bool: nodes that must be fed onward (or may be, for inputs)
    all_hidden: bool  # every hidden node of layers 1..L-2 kept


@dataclass
class _Totals:
    candidates: int = 0
    valid: int = 0
    chunks: list = field(default_factory=list)
    held: int = 0
    overflow: bool = False
    bounded: int = 0  # candidates decided by bounds on a whole family at once

    def hold(self, bits: np.ndarray, limit_held: int | None) -> None:
        """Keep ``bits`` in memory, or give up holding once more than ``limit_held``."""
        if self.overflow:
            return
        if limit_held is not None and self.held + len(bits) > limit_held:
            self.overflow = True
            self.chunks = []
        else:
            self.chunks.append(bits)
            self.held += len(bits)


def _prepare(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None,
    crit: Criterion,
    ablation: str,
) -> _Problem:
    full = network.activations(x)
    means = [h.mean(axis=0) if ablation == "mean" else np.zeros(h.shape[1]) for h in full]
    if crit.needs_targets:
        key = np.concatenate([x, y], axis=1)
    else:
        key = x
    uniq, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    del uniq
    order = np.random.default_rng(0).permutation(len(first))
    order = order[np.argsort(-counts[order], kind="stable")]  # heavy points decide first
    idx = first[order]
    m = network.sizes[-1]
    if crit.needs_targets:
        reference = y[idx]
        limit = float(crit.max_wrong(len(x)))
    else:
        reference = full[-1][idx]
        limit = crit.threshold * len(x) * m
    return _Problem(
        net=network,
        space=CircuitSpace(network.sizes, crit.compat),
        x=x[idx],
        weight=counts[order].astype(np.float64),
        reference=np.ascontiguousarray(reference, dtype=np.float64),
        pre_reference=full[-2][idx] @ network.weights[-1].T + network.biases[-1],
        means=means,
        crit=crit,
        limit=limit,
        n_samples=len(x),
    )


def _subset_masks(members: np.ndarray, width: int) -> np.ndarray:
    """All subsets of the nodes ``members`` as ``(2^k, width)`` booleans, empty set first."""
    k = len(members)
    combos = (np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1
    masks = np.zeros((2**k, width), dtype=bool)
    masks[:, members] = combos.astype(bool)
    return masks


def _node_values(
    w_row: np.ndarray, bias: float, h_prev: np.ndarray, mu_prev: np.ndarray,
    subsets: np.ndarray, act: str,
) -> np.ndarray:  # fmt: skip
    """Value of one node over the points for each set of kept in-edges: ``(S, P)``."""
    pre = bias + (subsets * w_row) @ h_prev.T + (((~subsets) * w_row) @ mu_prev)[:, None]
    return apply_activation(act, pre)


def _bitset(space: CircuitSpace, edges: Sequence[int]) -> np.ndarray:
    bits = np.zeros(space.n_words, dtype=np.uint64)
    for e in edges:
        bits[e // 64] |= np.uint64(1) << np.uint64(e % 64)
    return bits


def _prefixes(pb: _Problem) -> Iterator[_Prefix]:
    """Every admissible circuit of the layers before the last hidden one, with the values
    of layer ``L-2`` it produces."""
    net, space = pb.net, pb.space
    L = net.n_layers
    inputs_active = np.ones(net.sizes[0], dtype=bool)
    start = _Prefix(np.zeros(space.n_words, dtype=np.uint64), pb.x, inputs_active, True)
    if L <= 2:
        yield start
        return
    yield from _extend_prefix(pb, start, 1, L - 2)


def _extend_prefix(pb: _Problem, prefix: _Prefix, layer: int, last: int) -> Iterator[_Prefix]:
    net, space = pb.net, pb.space
    n_prev, n = net.sizes[layer - 1], net.sizes[layer]
    w, b = net.weights[layer - 1], net.biases[layer - 1]
    members = np.flatnonzero(prefix.active)
    subsets = _subset_masks(members, n_prev)
    values = [
        _node_values(w[j], b[j], prefix.values, pb.means[layer - 1], subsets, net.activation)
        for j in range(n)
    ]
    must_cover = layer > 1 or pb.crit.compat is not None
    edge_bits = [
        [
            _bitset(space, [space.edge_index(layer - 1, j, i) for i in np.flatnonzero(s)])
            for s in subsets
        ]
        for j in range(n)
    ]
    for choice in itertools.product(range(len(subsets)), repeat=n):
        union = np.zeros(n_prev, dtype=bool)
        for c in choice:
            union |= subsets[c]
        if must_cover and not np.array_equal(union, prefix.active):
            continue
        active = np.array([c != 0 for c in choice])
        vals = np.stack([values[j][c] for j, c in enumerate(choice)], axis=1)
        bits = prefix.bits.copy()
        for j, c in enumerate(choice):
            bits |= edge_bits[j][c]
        nxt = _Prefix(bits, vals, active, prefix.all_hidden and bool(active.all()))
        if layer == last:
            yield nxt
        else:
            yield from _extend_prefix(pb, nxt, layer + 1, last)


def _unit_options(pb: _Problem, prefix: _Prefix) -> tuple[list[_Group], int, int]:
    """Options of each unit (a last-hidden node, or an input when there is no hidden
    layer), the required cover mask, and the 'kept every hidden node' count to exclude."""
    net, space = pb.net, pb.space
    L, m = net.n_layers, net.sizes[-1]
    w_out = net.weights[-1]
    n_points = len(pb.x)
    out_sets = [o for o in range(1, 2**m)]  # non-empty sets of outputs fed, as bitmasks
    units: list[_Group] = []
    if L == 1:
        n_in = net.sizes[0]
        first = 1 if pb.crit.compat else 0
        for i in range(n_in):
            opts = list(range(first, 2**m))
            cover = np.array(opts, dtype=np.int64)
            fed = ((np.array(opts)[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)  # (k, m)
            live = pb.x[:, i][None, :, None] * w_out[:, i][None, None, :]
            dead = np.broadcast_to(pb.means[0][i] * w_out[:, i], (1, 1, m))
            contrib = np.where(fed[:, None, :], live, dead)
            bits = np.stack(
                [
                    _bitset(space, [space.edge_index(0, o, i) for o in range(m) if s >> o & 1])
                    for s in opts
                ]
            )
            units.append(_Group(cover, bits, np.zeros(len(opts), dtype=np.int64), contrib))
        return units, 2**m - 1, -1

    n_prev, k_units = net.sizes[-3], net.sizes[-2]
    w_in, b_in = net.weights[-2], net.biases[-2]
    members = np.flatnonzero(prefix.active)
    subsets = _subset_masks(members, n_prev)[1:]  # non-empty sets of senders kept
    must_cover = L > 2 or pb.crit.compat is not None
    sub_cover = (subsets.astype(np.int64) << np.arange(n_prev)).sum(axis=1) * must_cover
    mu_units = pb.means[-2]
    fed = ((np.array(out_sets)[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)
    for j in range(k_units):
        vals = _node_values(w_in[j], b_in[j], prefix.values, pb.means[-3], subsets, net.activation)
        dead = mu_units[j] * w_out[:, j]  # (m,) what each output gets with the edge ablated
        live = vals[:, :, None] * w_out[:, j][None, None, :]  # (S, P, m)
        # option (s, o): senders s, outputs o; contrib (S*O, P, m)
        contrib = np.where(fed[None, :, None, :], live[:, None, :, :], dead[None, None, None, :])
        contrib = contrib.reshape(-1, n_points, m)
        cover = (
            sub_cover[:, None] | (np.array(out_sets, dtype=np.int64)[None, :] << n_prev)
        ).reshape(-1)
        in_bits = [
            _bitset(space, [space.edge_index(L - 2, j, i) for i in np.flatnonzero(s)])
            for s in subsets
        ]
        out_bits = [
            _bitset(space, [space.edge_index(L - 1, o, j) for o in range(m) if s >> o & 1])
            for s in out_sets
        ]
        bits = np.array([ib | ob for ib in in_bits for ob in out_bits], dtype=np.uint64)
        bits = bits.reshape(-1, space.n_words)
        absent = np.broadcast_to(dead, (1, n_points, m))
        units.append(
            _Group(
                cover=np.concatenate([[0], cover]).astype(np.int64),
                bits=np.concatenate([np.zeros((1, space.n_words), np.uint64), bits]),
                present=np.concatenate([[0], np.ones(len(cover), dtype=np.int64)]),
                contrib=np.concatenate([absent, contrib]),
            )
        )
    prev_mask = (
        int((prefix.active.astype(np.int64) << np.arange(n_prev)).sum()) if must_cover else 0
    )
    required = prev_mask | ((2**m - 1) << n_prev)
    excluded = k_units if (pb.crit.compat and prefix.all_hidden) else -1
    return units, required, excluded


def _empty_group(pb: _Problem) -> _Group:
    return _Group(
        cover=np.zeros(1, dtype=np.int64),
        bits=np.zeros((1, pb.space.n_words), dtype=np.uint64),
        present=np.zeros(1, dtype=np.int64),
        contrib=np.zeros((1, len(pb.x), pb.net.sizes[-1])),
    )


def _product(pb: _Problem, units: Sequence[_Group]) -> _Group:
    """All combinations of the options of ``units`` (first unit varies slowest)."""
    g = _empty_group(pb)
    for u in units:
        g = _Group(
            cover=(g.cover[:, None] | u.cover[None, :]).reshape(-1),
            bits=(g.bits[:, None, :] | u.bits[None, :, :]).reshape(-1, g.bits.shape[1]),
            present=(g.present[:, None] + u.present[None, :]).reshape(-1),
            contrib=(g.contrib[:, None] + u.contrib[None, :]).reshape(-1, *g.contrib.shape[1:]),
        )
    return g


def _split(sizes: Sequence[int], per_combo_bytes: int) -> tuple[int, int]:
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


@dataclass
class _Head:
    outer: list[_Group]
    units_a: list[_Group]
    half_a: _Group
    half_b: _Group
    required: int
    excluded: int
    block: int
    bounds: _Bounds

    @property
    def n_outer(self) -> int:
        return math.prod(len(u.cover) for u in self.outer)

    @property
    def n_blocks(self) -> int:
        return -(-len(self.half_a.cover) // self.block)


@dataclass
class _Tree:
    """The combinations of a group of units as a tree for branch and bound (terms
    flattened over points x outputs): every option of every unit, and the least and most
    that units ``d..`` (and whatever else is free) can add."""

    options: np.ndarray  # (sum of radices, K)
    offset: np.ndarray  # first row of each unit in ``options``
    radix: np.ndarray  # options per unit
    rest_lo: np.ndarray  # (n_units + 1, K)
    rest_hi: np.ndarray


def _tree(units: list[_Group], n_terms: int, free_lo: np.ndarray, free_hi: np.ndarray) -> _Tree:
    flat = [u.contrib.reshape(len(u.cover), n_terms) for u in units]
    rest_lo, rest_hi = [free_lo], [free_hi]
    for c in reversed(flat):
        rest_lo.append(rest_lo[-1] + c.min(axis=0))
        rest_hi.append(rest_hi[-1] + c.max(axis=0))
    radix = np.array([len(u.cover) for u in units], dtype=np.int64)
    return _Tree(
        options=np.ascontiguousarray(np.concatenate(flat) if flat else np.zeros((1, n_terms))),
        offset=np.concatenate([[0], np.cumsum(radix)[:-1]]).astype(np.int64),
        radix=radix,
        rest_lo=np.ascontiguousarray(rest_lo[::-1]),
        rest_hi=np.ascontiguousarray(rest_hi[::-1]),
    )


@dataclass
class _Bounds:
    """What branch and bound needs: half A's tree (half B free), half B's tree (a row of
    A fixed), the rounding allowance on pre-activations, and the distinct (cover, present)
    values of half B with their counts."""

    tree_a: _Tree
    tree_b: _Tree
    pad: np.ndarray  # (K,)
    ucover: np.ndarray
    upresent: np.ndarray
    ucount: np.ndarray


def _bounds(pb: _Problem, units: list[_Group], i: int, j: int, half_b: _Group) -> _Bounds:
    n_terms = len(pb.x) * pb.net.sizes[-1]
    zero = np.zeros(n_terms)
    tree_b = _tree(units[j:], n_terms, zero, zero)
    tree_a = _tree(units[i:j], n_terms, tree_b.rest_lo[0], tree_b.rest_hi[0])
    scale = 1.0 + np.abs(pb.net.biases[-1]).max() + np.abs(pb.pre_reference).reshape(-1)
    for u in units:
        scale = scale + np.abs(u.contrib).max(axis=0).reshape(-1)
    keys, ucount = np.unique(
        np.stack([half_b.cover, half_b.present], axis=1), axis=0, return_counts=True
    )
    return _Bounds(
        tree_a=tree_a,
        tree_b=tree_b,
        pad=kernels.VALUE_SLACK * scale,
        ucover=np.ascontiguousarray(keys[:, 0]),
        upresent=np.ascontiguousarray(keys[:, 1]),
        ucount=ucount.astype(np.int64),
    )


def _by_spread(units: list[_Group]) -> list[_Group]:
    """Units whose options move the output most first: branch and bound fixes them first
    and keeps the small ones (bounded tightly together) in half B."""
    spread = [float(np.ptp(u.contrib, axis=0).max()) for u in units]
    return [units[i] for i in np.argsort(-np.array(spread), kind="stable")]


def _head(pb: _Problem, prefix: _Prefix, collect: bool) -> _Head:
    units, required, excluded = _unit_options(pb, prefix)
    units = _by_spread(units)
    per_combo = len(pb.x) * pb.net.sizes[-1] * 8
    i, j = _split([len(u.cover) for u in units], per_combo)
    half_b = _product(pb, units[j:])
    half_a = _product(pb, units[i:j])
    block = max(1, min(len(half_a.cover), BLOCK_ELEMENTS // len(half_b.cover)))
    if not collect:  # no pair matrix to hold: larger blocks, still fine-grained progress
        block = max(block, -(-len(half_a.cover) // 64))
    bounds = _bounds(pb, units, i, j, half_b)
    return _Head(units[:i], units[i:j], half_a, half_b, required, excluded, block, bounds)


def _outer_combos(pb: _Problem, head: _Head) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """(cover, present, bits, contrib) of each combination of the outer units."""
    ranges = [range(len(u.cover)) for u in head.outer]
    for choice in itertools.product(*ranges):
        cover, present = 0, 0
        bits = np.zeros(pb.space.n_words, dtype=np.uint64)
        contrib = np.zeros((len(pb.x), pb.net.sizes[-1]))
        for u, c in zip(head.outer, choice):
            cover |= int(u.cover[c])
            present += int(u.present[c])
            bits |= u.bits[c]
            contrib = contrib + u.contrib[c]
        yield cover, present, bits, contrib


# Squared Lipschitz constants of the output activations (sigmoid' <= 1/4).
LIPSCHITZ_SQ = {"relu": 1.0, "leaky_relu": 1.0, "tanh": 1.0, "sigmoid": 1.0 / 16.0, "identity": 1.0}


class _Additive:
    """What the additive mse kernel needs for one prefix: half B's terms, and the dot
    products of every option of every unit of half A with every combination of half B."""

    def __init__(self, pb: _Problem, head: _Head):
        n_a, n_b = len(head.half_a.cover), len(head.half_b.cover)
        self.root_w = np.sqrt(pb.weight)[:, None]
        self.Z_a = np.ascontiguousarray(head.half_a.contrib.reshape(n_a, -1))
        self.Z_b = np.ascontiguousarray(head.half_b.contrib.reshape(n_b, -1))
        self.R_a = (head.half_a.contrib * self.root_w).reshape(n_a, -1)
        R_b = (head.half_b.contrib * self.root_w).reshape(n_b, -1)
        self.R_b = R_b
        self.norm_b = np.einsum("ij,ij->i", R_b, R_b)
        self.root_b = np.sqrt(self.norm_b)
        units = [(u.contrib * self.root_w).reshape(len(u.cover), -1) for u in head.units_a]
        self.E = np.ascontiguousarray(
            np.concatenate([c @ R_b.T for c in units]) if units else np.zeros((1, n_b))
        )
        self.radix = np.array([len(u.cover) for u in head.units_a], dtype=np.int64)
        self.offset = np.concatenate([[0], np.cumsum(self.radix)[:-1]]).astype(np.int64)
        scale = np.zeros(1)
        for c in units:
            scale = (scale[:, None] + np.sqrt(np.einsum("ij,ij->i", c, c))[None, :]).reshape(-1)
        self.unit_scale = scale
        self.target = np.ascontiguousarray(pb.reference.reshape(-1))
        self.weight = np.repeat(pb.weight, pb.net.sizes[-1])
        self.order = self._decisive_first(pb)
        for name in ("Z_a", "Z_b", "target", "weight"):
            value = getattr(self, name)
            setattr(self, name, np.ascontiguousarray(value[..., self.order]))

    def _decisive_first(self, pb: _Problem) -> np.ndarray:
        """An order of the (point, output) terms, largest errors first among a seeded
        sample of pairs, so that point-by-point sums pass the limit early. The order
        changes no decision: partial sums of non-negative terms only grow."""
        rng = np.random.default_rng(0)
        a = rng.integers(0, len(self.Z_a), 512)
        b = rng.integers(0, len(self.Z_b), 512)
        constant = np.broadcast_to(pb.net.biases[-1], pb.reference.shape).reshape(-1)
        z = self.Z_a[a] + constant + self.Z_b[b]
        out = apply_activation(pb.net.output_activation, z)
        error = (self.weight * (out - self.target) ** 2).mean(axis=0)
        return np.argsort(-error, kind="stable")

    def for_outer(self, pb: _Problem, outer_contrib: np.ndarray) -> tuple:
        """Terms that depend on the outer units' combination: the constant part of the
        pre-activation, its products with half B, and half A's squared distances."""
        constant = outer_contrib + pb.net.biases[-1]
        c0 = ((constant - pb.pre_reference) * self.root_w).reshape(-1)
        shifted = self.R_a + c0
        norm_a = np.einsum("ij,ij->i", shifted, shifted)
        scale_a = self.unit_scale + np.sqrt(c0 @ c0)
        cz = np.ascontiguousarray(constant.reshape(-1)[self.order])
        return cz, self.R_b @ c0, norm_a, scale_a


class _LazyAdditive:
    """The mse kernel's terms for one prefix, built the first time a pair needs them
    (bounds often decide every pair), and those of the latest outer combination."""

    def __init__(self, pb: _Problem, head: _Head):
        self.pb, self.head = pb, head
        self.prefix: _Additive | None = None
        self.key, self.outer = None, None

    def get(self, key: int, outer_contrib: np.ndarray) -> tuple:
        if self.prefix is None:
            self.prefix = _Additive(self.pb, self.head)
        if self.key != key:
            self.key, self.outer = key, self.prefix.for_outer(self.pb, outer_contrib)
        return self.prefix, self.outer


def _kernel(threaded, serial, n_pairs: int):
    """The threaded build of a kernel for large blocks, the serial one for small."""
    return threaded if n_pairs >= kernels.PARALLEL_PAIRS else serial


@dataclass
class _Outer:
    """One combination of the outer units, with what it adds to every pair."""

    cover_a: np.ndarray  # (n_a,) what each row of half A covers, with this combination
    present_a: np.ndarray  # (n_a,) last-hidden nodes each row keeps, with this combination
    bits: np.ndarray  # its edges, with the prefix's
    contrib: np.ndarray  # (P, m) added to the output pre-activation
    additive: Callable[[], tuple] | None = None  # the mse kernel's terms, made when needed


def _score_block(
    pb: _Problem, head: _Head, a0: int, a1: int, outer: _Outer, collect: bool,
    totals: _Totals, limit_held: int | None, sink: Callable[[np.ndarray], None] | None,
) -> int:  # fmt: skip
    """Count the candidates among rows ``a0 <= a < a1`` of half A (with all of half B),
    and count and keep the valid ones. Branch and bound over half A first gives a verdict
    to whole rows, settled by counting alone; the pair kernels score the other rows (in
    chunks of bounded size), skipping the pairs already decided."""
    bd = head.bounds
    cover_a, present_a = outer.cover_a[a0:a1], outer.present_a[a0:a1]
    groups = (bd.ucover, bd.upresent, bd.ucount, head.required, head.excluded)
    n_cand = int(kernels.count_candidates(cover_a, present_a, *groups))
    verdicts = np.zeros(a1 - a0, dtype=np.int8)
    base = (outer.contrib + pb.net.biases[-1]).reshape(-1)
    if pb.prune:
        _branch_and_bound(pb, bd.tree_a, bd.pad, base, a0, a1, 1, verdicts)
    want = sink is not None or (collect and not totals.overflow)
    step = max(1, BLOCK_ELEMENTS // len(head.half_b.cover))
    for c0 in range(0, a1 - a0, step):
        c1 = min(c0 + step, a1 - a0)
        chunk = verdicts[c0:c1]
        for verdict in (-1, 1):
            rows = np.flatnonzero(chunk == verdict) + c0
            if len(rows) == 0:
                continue
            n_decided = int(kernels.count_candidates(cover_a[rows], present_a[rows], *groups))
            totals.bounded += n_decided
            if verdict == 1:
                totals.valid += n_decided
                if want and n_decided:
                    valid_mask = _admissible(head, outer, slice(a0 + c0, a0 + c1))
                    valid_mask[chunk != 1] = False
                    _keep(head, a0 + c0, valid_mask, outer.bits, collect, totals, limit_held, sink)
        if not chunk.all():
            _score_rows(pb, head, a0 + c0, chunk, outer, base, collect, want, totals,
                        limit_held, sink)  # fmt: skip
    totals.candidates += n_cand
    return n_cand


def _admissible(head: _Head, outer: _Outer, rows: np.ndarray | slice) -> np.ndarray:
    """Which pairs of the given rows of half A with half B are candidates."""
    hb = head.half_b
    covered = (outer.cover_a[rows, None] | hb.cover[None, :]) == head.required
    return covered & ((outer.present_a[rows, None] + hb.present[None, :]) != head.excluded)


def _bound_terms(pb: _Problem) -> tuple:
    """Targets, weights, outputs, activation, criterion and limit, as the bound kernels
    take them."""
    crit = _criterion_code(pb)
    weight = pb.weight if crit != kernels.MSE else pb.term_weight
    act = kernels.ACT_CODES[pb.net.output_activation]
    return pb.reference.reshape(-1), weight, pb.net.sizes[-1], act, pb.table, crit, pb.limit


def _branch_and_bound(
    pb: _Problem, tree: _Tree, pad: np.ndarray, base: np.ndarray, lo: int, hi: int, leaf: int,
    state: np.ndarray,
) -> None:  # fmt: skip
    """Verdicts of the combinations ``lo <= c < hi`` of ``tree`` by bounds (see
    :func:`kernels.branch_and_bound`), written to ``state``."""
    kernels.branch_and_bound(
        tree.options, tree.offset, tree.radix, tree.rest_lo, tree.rest_hi, pad, base, lo, hi,
        leaf, *_bound_terms(pb), state,
    )  # fmt: skip


def _score_rows(
    pb: _Problem, head: _Head, a0: int, verdicts: np.ndarray, outer: _Outer, base: np.ndarray,
    collect: bool, want: bool, totals: _Totals, limit_held: int | None,
    sink: Callable[[np.ndarray], None] | None,
) -> None:  # fmt: skip
    """Score the pairs of the rows ``a0 <= a < a0 + len(verdicts)`` of half A that have no
    verdict yet. Where a pair costs more than a bound (any output activation but identity,
    or accuracy), each such row's pairs are first decided by branch and bound over half B
    as far as it goes."""
    a1 = a0 + len(verdicts)
    n_b = len(head.half_b.cover)
    pair_state = np.zeros((1, 1), dtype=np.int8)
    every_pair_decided = False
    cheap_pairs = pb.crit.name == "mse" and pb.net.output_activation == "identity"
    if pb.prune and pb.scorer is None and not cheap_pairs:
        pair_state = np.zeros((a1 - a0, n_b), dtype=np.int8)  # rows with a verdict stay 0
        bd, t = head.bounds, head.bounds.tree_b
        kernels.branch_and_bound_rows(
            t.options, t.offset, t.radix, t.rest_lo, t.rest_hi, bd.pad, base,
            head.half_a.contrib[a0:a1].reshape(a1 - a0, -1), PAIR_LEAF, *_bound_terms(pb),
            verdicts, pair_state,
        )  # fmt: skip
        open_rows = np.flatnonzero(verdicts == 0)
        admissible = _admissible(head, outer, a0 + open_rows)
        states = pair_state[open_rows]
        n_decided = int(np.count_nonzero(admissible & (states != 0)))
        totals.bounded += n_decided
        every_pair_decided = n_decided == np.count_nonzero(admissible)
    if every_pair_decided:
        valid_mask = np.zeros((a1 - a0, n_b), dtype=bool)
        valid_mask[open_rows] = admissible & (states == 1)
        n_valid = int(np.count_nonzero(valid_mask))
    else:
        n_valid, valid_mask = _score_pairs(pb, head, a0, a1, outer, want, verdicts, pair_state)
    totals.valid += n_valid
    if want and n_valid:
        _keep(head, a0, valid_mask, outer.bits, collect, totals, limit_held, sink)


def _criterion_code(pb: _Problem) -> int:
    if pb.crit.name == "mse":
        return kernels.MSE
    return kernels.ACCURACY_ROUNDED if pb.crit.compat else kernels.ACCURACY


def _score_pairs(
    pb: _Problem, head: _Head, a0: int, a1: int, outer: _Outer, want: bool,
    verdicts: np.ndarray, pair_state: np.ndarray,
) -> tuple[int, np.ndarray | None]:  # fmt: skip
    """Score the pairs of rows ``a0 <= a < a1`` of half A with half B, but those of rows
    with a verdict (``verdicts``, -1 or 1) and those decided in ``pair_state`` (when it is
    not the 1 x 1 placeholder): the number of valid pairs and, when ``want``, their mask."""
    use_state = pair_state.shape != (1, 1)
    ha, hb = head.half_a, head.half_b
    cover_a, present_a = outer.cover_a, outer.present_a
    act = kernels.ACT_CODES[pb.net.output_activation]
    admissibility = (hb.cover, hb.present, head.required, head.excluded)
    n_pairs = (a1 - a0) * len(hb.cover)
    if pb.crit.name == "mse":
        add, per_outer = outer.additive()
        lipschitz_sq = LIPSCHITZ_SQ[pb.net.output_activation]
        if pb.scorer is not None:
            ok = pb.scorer.additive(
                add, per_outer, a0, a1, cover_a, present_a, *admissibility,
                pb.limit, RECHECK_BAND, act, lipschitz_sq,
            )  # fmt: skip
            return _open_rows_only(ok.cpu().numpy(), verdicts)
        cz, E0, norm_a, scale_a = per_outer
        out_valid = np.zeros((a1 - a0, len(hb.cover)) if want else (1, 1), dtype=np.uint8)
        kernel = _kernel(kernels.score_pairs_additive, kernels.score_pairs_additive_serial, n_pairs)
        valid = kernel(
            add.E, E0, add.offset, add.radix, a0, a1, norm_a, scale_a, add.norm_b, add.root_b,
            cover_a, hb.cover, present_a, hb.present,
            head.required, head.excluded, pb.limit, RECHECK_BAND, add.Z_a, cz, add.Z_b,
            add.target, add.weight, act, lipschitz_sq, want, out_valid,
            pb.table, verdicts, use_state, pair_state,
        )  # fmt: skip
        return int(valid.sum()), out_valid
    crit = _criterion_code(pb)
    U = np.ascontiguousarray(ha.contrib[a0:a1] + outer.contrib + pb.net.biases[-1])
    if pb.scorer is not None:
        ok = pb.scorer.general(
            U, hb.contrib, cover_a[a0:a1], present_a[a0:a1], *admissibility,
            pb.weight, pb.reference, act, crit, pb.limit,
        )  # fmt: skip
        return _open_rows_only(ok.cpu().numpy(), verdicts)
    out_valid = np.zeros((a1 - a0, len(hb.cover)) if want else (1, 1), dtype=np.uint8)
    kernel = _kernel(kernels.score_pairs_general, kernels.score_pairs_general_serial, n_pairs)
    _, valid = kernel(
        U, hb.contrib, cover_a[a0:a1], hb.cover, present_a[a0:a1], hb.present,
        head.required, head.excluded, pb.weight, pb.reference, act, crit, pb.limit,
        want, out_valid, verdicts, use_state, pair_state,
    )  # fmt: skip
    return int(valid.sum()), out_valid


def _open_rows_only(valid_mask: np.ndarray, verdicts: np.ndarray) -> tuple[int, np.ndarray]:
    """A device's valid mask without the rows already settled by a verdict."""
    valid_mask[verdicts != 0] = False
    return int(np.count_nonzero(valid_mask)), valid_mask


def _keep(
    head: _Head, a0: int, valid_mask: np.ndarray, base_bits: np.ndarray, collect: bool,
    totals: _Totals, limit_held: int | None, sink: Callable[[np.ndarray], None] | None,
) -> None:  # fmt: skip
    """Turn a block's valid pairs into circuit bitsets: stream them, and hold them."""
    rows, cols = np.nonzero(valid_mask)
    bits = head.half_a.bits[a0 + rows] | head.half_b.bits[cols] | base_bits
    if sink is not None:
        sink(bits)
    if collect:
        totals.hold(bits, limit_held)


def _run(
    pb: _Problem, shard: tuple[int, int] | None, collect: bool, limit_held: int | None,
    sink: Callable[[np.ndarray], None] | None, progress: Callable[[int], None] | None,
) -> _Totals:  # fmt: skip
    totals = _Totals()
    index, (me, of) = 0, shard or (0, 1)
    for prefix in _prefixes(pb):
        head = _head(pb, prefix, collect or sink is not None)
        if pb.scorer is not None:
            pb.scorer.forget()
        n_items = head.n_outer * head.n_blocks
        if (me - index) % of >= n_items:  # none of this prefix's work is ours
            index += n_items
            continue
        terms = _LazyAdditive(pb, head)
        for n, (cover, present, obits, contrib) in enumerate(_outer_combos(pb, head)):
            outer = _Outer(
                cover_a=head.half_a.cover | cover,
                present_a=head.half_a.present + present,
                bits=prefix.bits | obits,
                contrib=contrib,
                additive=functools.partial(terms.get, n, contrib),
            )
            for blk in range(head.n_blocks):
                if index % of == me:
                    a0 = blk * head.block
                    a1 = min(a0 + head.block, len(head.half_a.cover))
                    done = _score_block(pb, head, a0, a1, outer, collect, totals, limit_held, sink)
                    if progress is not None:
                        progress(done)
                index += 1
    return totals


def _sorted(bits: np.ndarray) -> np.ndarray:
    """Circuits by size, then by bitset (a canonical order)."""
    if len(bits) == 0:
        return bits
    keys = [bits[:, w] for w in range(bits.shape[1] - 1, -1, -1)] + [popcount(bits)]
    return bits[np.lexsort(keys)]


def _resolve(
    network: Network, x, y, output, crit: Criterion
) -> tuple[Network, np.ndarray, np.ndarray | None, int | None]:
    x = np.asarray(x, dtype=np.float64)
    if y is not None:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
    check_inputs(network, x, y)
    if crit.needs_targets and y is None:
        raise InputError("the accuracy criterion needs targets y")
    m = network.sizes[-1]
    if output == "joint" or (output is None and m == 1):
        return network, x, y, None
    if output is None:
        raise InputError(
            f"the model has {m} outputs: take the census per output (output=0..{m - 1}, "
            "or census_outputs) or jointly (output='joint')"
        )
    if not isinstance(output, (int, np.integer)) or not 0 <= output < m:
        raise InputError(f"output must be 0..{m - 1} or 'joint', got {output!r}")
    sub_y = None if y is None else y[:, output : output + 1]
    return network.output_subnetwork(int(output)), x, sub_y, int(output)


def census(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None = None,
    settings: CensusSettings = CensusSettings(),
    options: RunOptions = RunOptions(),
    *,
    output: int | str | None = None,
) -> CensusResult:
    """Exact census of ``network`` on evaluation inputs ``x`` (targets ``y`` for accuracy).

    ``settings`` says what is computed (criterion, threshold, ablation, compat mode),
    ``options`` how the work runs (shards, workers, device, what is kept; see
    :class:`RunOptions`). ``output``: an output index for a per-output census of a
    multi-output model, or ``"joint"``.
    """
    started = time.perf_counter()
    crit = settings.rule
    net, x, y, out = _resolve(network, x, y, output, crit)
    if settings.compat and net.n_layers < 2:
        raise InputError("the meloux2025 mode needs at least one hidden layer")
    space = CircuitSpace(net.sizes, settings.compat)
    total = space.count()
    if options.max_candidates is not None and total > options.max_candidates:
        raise InputError(
            f"{total:,} candidate circuits exceed the limit of {options.max_candidates:,}; "
            "raise it (--max-candidates) if you mean it"
        )
    shard, collect, limit_held = options.shard, options.collect, options.limit_held
    progress, path = options.progress, options.circuits_file
    writer = CircuitFileWriter(path, space, {"output": out}) if path else None
    try:
        if options.workers > 1 and shard is None:
            totals = _run_workers(
                net, x, y, settings, options.prune, options.workers, limit_held, writer,
                progress, total,
            )  # fmt: skip
        else:
            pb = _prepare(net, x, y, crit, settings.ablation)
            pb.prune = options.prune
            if options.use_torch:
                from circuit_census.circuits.engine.torch_pairs import TorchScorer

                pb.scorer = TorchScorer(options.device)
            tick = None
            if progress is not None:
                state = {"done": 0}

                def tick(n: int) -> None:
                    state["done"] += n
                    progress(state["done"], total)

            totals = _run(
                pb, shard, collect is not False, limit_held, writer.add if writer else None, tick
            )
        if writer:
            writer.close()
    except BaseException:
        if writer:
            writer.discard()
        raise
    if shard is None and totals.candidates != total:
        raise RuntimeError(f"engine scored {totals.candidates} candidates, expected {total}")
    valid = None
    if collect is not False and not totals.overflow:
        chunks = totals.chunks or [np.zeros((0, space.n_words), dtype=np.uint64)]
        valid = _sorted(np.concatenate(chunks))
    return CensusResult(
        space=space,
        network=net,
        n_candidates=totals.candidates,
        n_valid=totals.valid,
        valid=valid,
        settings={
            "ablation": settings.ablation,
            "criterion": crit.name,
            "threshold": crit.threshold,
            "compat": settings.compat,
            "output": "joint" if output == "joint" else out,
            "n_samples": int(len(x)),
            "device": options.device,
            "n_unique_points": int(len(np.unique(x, axis=0))),
        },
        output=out,
        seconds=time.perf_counter() - started,
        shard=shard,
        n_bounded=totals.bounded,
    )


def _shard_job(args) -> tuple[int, int, int, np.ndarray | None, bool]:
    net, x, y, settings, prune, shard, limit_held, n_threads = args
    try:
        import numba

        numba.set_num_threads(n_threads)
    except (ImportError, ValueError):
        pass
    pb = _prepare(net, x, y, settings.rule, settings.ablation)
    pb.prune = prune
    totals = _run(pb, shard, True, limit_held, None, None)
    bits = None
    if not totals.overflow:
        bits = np.concatenate(totals.chunks) if totals.chunks else None
    return totals.candidates, totals.valid, totals.bounded, bits, totals.overflow


def _run_workers(
    net, x, y, settings, prune, workers, limit_held, writer, progress, total
) -> _Totals:
    import multiprocessing
    import os

    n_threads = max(1, (os.cpu_count() or 1) // workers)
    # a streaming file needs every circuit back; otherwise only what is kept in memory
    held = None if writer is not None else limit_held
    jobs = [(net, x, y, settings, prune, (i, workers), held, n_threads) for i in range(workers)]
    totals = _Totals()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for cand, valid, bounded, bits, overflow in pool.map(_shard_job, jobs):
            totals.candidates += cand
            totals.valid += valid
            totals.bounded += bounded
            if progress is not None:
                progress(totals.candidates, total)
            if bits is not None and writer is not None:
                writer.add(bits)
            if overflow:
                totals.overflow = True
                totals.chunks = []
            elif bits is not None:
                totals.hold(bits, limit_held)
    return totals


def combine_results(parts: Sequence[CensusResult]) -> CensusResult:
    """Join the shards of one census into exactly the whole census."""
    if not parts:
        raise InputError("no census shards to combine")
    first = parts[0]
    shards = sorted(p.shard or (0, 1) for p in parts)
    n = shards[0][1]
    if shards != [(i, n) for i in range(n)]:
        raise InputError(f"shards {shards} are not exactly 0..{n - 1} of {n}")
    valid = None
    if all(p.valid is not None for p in parts):
        valid = _sorted(np.concatenate([p.valid for p in parts]))
    return replace(
        first,
        n_candidates=sum(p.n_candidates for p in parts),
        n_valid=sum(p.n_valid for p in parts),
        n_bounded=sum(p.n_bounded for p in parts),
        valid=valid,
        seconds=sum(p.seconds for p in parts),
        shard=None,
    )


def census_outputs(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None = None,
    settings: CensusSettings = CensusSettings(),
    options: RunOptions = RunOptions(),
) -> list[CensusResult]:
    """One census per output of a (multi-output) model."""
    return [census(network, x, y, settings, options, output=o) for o in range(network.sizes[-1])]
