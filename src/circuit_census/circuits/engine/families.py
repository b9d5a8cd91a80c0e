"""Families of prefixes decided before their members exist.

A deep network's prefixes (edges into hidden layers ``1..L-2``) are chosen node by node,
layer by layer: each node keeps a set of the previous layer's kept nodes as senders (the
empty set leaves it out). A *family* fixes the choices of the first nodes and leaves the
rest, the last hidden layer's edges and the output edges free. Interval propagation
through the layers bounds every output pre-activation of every member (every activation
is monotone), so the criterion can decide the whole family at once; its admissible
members are then counted by the dynamic program of ``CircuitSpace.count``, never listed.
Undecided families are split on their next node; a family that fixes the whole prefix
and is still undecided goes to the one-hidden-layer machinery (``plan.make_halves``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from math import comb
from typing import NamedTuple

import numpy as np

from circuit_census.activations import apply_activation
from circuit_census.circuits.engine import kernels
from circuit_census.circuits.engine.plan import (
    Halves,
    Outer,
    Prefix,
    in_edges,
    make_halves,
    node_values,
    outer_combinations,
    subset_masks,
)
from circuit_census.circuits.engine.problem import Problem
from circuit_census.circuits.space import covering_matrices

# ----------------------------------------------------------------------------- counting


@cache
def completions(sizes: tuple[int, ...], layer: int, active: int, all_hidden: bool) -> int:
    """Admissible ways to choose the edges of layers ``layer+1..L`` when layer ``layer``
    keeps one given set of ``active`` nodes (``all_hidden``: every later hidden node kept).
    The same dynamic program over active-set sizes as ``CircuitSpace.count``."""
    ways = {active: 1}
    for nxt in range(layer + 1, len(sizes)):
        n, last = sizes[nxt], nxt == len(sizes) - 1
        targets = [n] if (last or all_hidden) else range(n + 1)
        first = nxt == layer + 1  # the given set is one set: no choice of which nodes
        ways = {
            b: sum(
                (1 if first else comb(sizes[nxt - 1], a)) * w * covering_matrices(a, b, True)
                for a, w in ways.items()
            )
            for b in targets
        }
    return ways[sizes[-1]]


@cache
def covering_choices(senders: int, uncovered: int, receivers: int, must_cover: bool) -> int:
    """Ways for ``receivers`` nodes to each keep a non-empty set of ``senders`` nodes so
    that (when ``must_cover``) together they feed ``uncovered`` given ones of them."""
    if not must_cover:
        return (2**senders - 1) ** receivers
    return sum(
        (-1) ** k * comb(uncovered, k) * (2 ** (senders - k) - 1) ** receivers
        for k in range(uncovered + 1)
    )


class FamilyShape(NamedTuple):
    """What the number of a family's admissible members depends on."""

    layer: int  # the layer whose nodes are being chosen (1..L-2)
    senders: int  # kept nodes of the layer before
    uncovered: int  # of them, those no fixed node of ``layer`` feeds yet
    fixed_active: int  # fixed nodes of ``layer`` kept
    free: int  # nodes of ``layer`` not chosen yet
    must_cover: bool  # whether the senders must all be fed (hidden senders, or meloux2025)
    all_hidden_so_far: bool  # every fixed hidden node kept (meloux2025 excludes all kept)


def family_count(sizes: tuple[int, ...], compat: bool, shape: FamilyShape) -> int:
    """Exact number of admissible circuits in a family: over how many free nodes of its
    layer are kept, the ways to choose their senders times the completions after it."""
    s = shape
    total = sum(
        comb(s.free, t)
        * covering_choices(s.senders, s.uncovered, t, s.must_cover)
        * completions(sizes, s.layer, s.fixed_active + t, False)
        for t in range(s.free + 1)
    )
    if compat and s.all_hidden_so_far:  # minus the members keeping every hidden node
        total -= covering_choices(s.senders, s.uncovered, s.free, s.must_cover) * completions(
            sizes, s.layer, sizes[s.layer], True
        )
    return total


# ----------------------------------------------------------------------------- bounds


class LayerBounds(NamedTuple):
    """What a layer's nodes can carry over a family: their value when kept (between
    ``lo`` and ``hi`` at each point) and whether each can be kept at all."""

    lo: np.ndarray  # (P, n)
    hi: np.ndarray  # (P, n)
    can_keep: np.ndarray  # (n,) bool


def _receiver_bounds(
    senders: LayerBounds, replaced: np.ndarray, w: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pre-activation bounds ``(lo, hi, pad)`` of free receivers (``w``: ``(n_out, n_in)``):
    each edge from a sender that can be kept carries its value or its replacement, an edge
    from a left-out sender only the replacement. ``pad`` covers float64 rounding."""
    live_a = senders.lo[:, None, :] * w[None]
    live_b = senders.hi[:, None, :] * w[None]
    dead = replaced[:, None, :] * w[None]
    keep = senders.can_keep[None, None, :]
    lo = np.where(keep, np.minimum(np.minimum(live_a, live_b), dead), dead).sum(axis=2) + b
    hi = np.where(keep, np.maximum(np.maximum(live_a, live_b), dead), dead).sum(axis=2) + b
    magnitude = np.maximum(np.abs(live_a), np.abs(live_b)) + np.abs(dead)
    pad = kernels.VALUE_SLACK * (1.0 + np.abs(b) + magnitude.sum(axis=2))
    return lo, hi, pad


def _activated(act: str, lo: np.ndarray, hi: np.ndarray, pad: np.ndarray):
    """Value bounds of nodes whose pre-activation lies in ``[lo, hi]`` (widened by
    ``pad``): a monotone activation at both ends, widened by the value slack."""
    v_lo = apply_activation(act, lo - pad)
    v_hi = apply_activation(act, hi + pad)
    return (
        v_lo - kernels.VALUE_SLACK * (1.0 + np.abs(v_lo)),
        v_hi + kernels.VALUE_SLACK * (1.0 + np.abs(v_hi)),
    )


def family_verdict(problem: Problem, first_free: LayerBounds, layer: int) -> int:
    """The criterion's verdict on every member of a family whose layer ``layer`` carries
    ``first_free`` (its fixed nodes exactly, its free ones bounded) and whose later layers
    are free: -1 all invalid, 1 all valid, 0 undecided."""
    net = problem.network
    senders = first_free
    for nxt in range(layer + 1, net.n_layers):
        lo, hi, pad = _receiver_bounds(
            senders, problem.replacement[nxt - 1], net.weights[nxt - 1], net.biases[nxt - 1]
        )
        v_lo, v_hi = _activated(net.activation, lo, hi, pad)
        senders = LayerBounds(v_lo, v_hi, np.ones(net.sizes[nxt], dtype=bool))
    lo, hi, pad = _receiver_bounds(
        senders, problem.replacement[-2], net.weights[-1], net.biases[-1]
    )
    n_terms = problem.n_terms
    return int(
        kernels.interval_decision(
            np.zeros(n_terms), lo.reshape(-1), hi.reshape(-1), pad.reshape(-1), problem.rule
        )
    )


# ----------------------------------------------------------------------------- the tree


class LayerChoices(NamedTuple):
    """Every node's options in a layer once the layers before it are fixed: a set of the
    previous layer's kept nodes as senders (option 0, the empty set, leaves it out)."""

    layer: int
    subsets: np.ndarray  # (S, n_prev) bool, the empty set first
    values: list[np.ndarray]  # per node (S, P): its value with each set of senders
    edges: list[np.ndarray]  # per node (S, n_words): its in-edges with each set
    free: LayerBounds  # every node's value bounds over all its options


def layer_choices(problem: Problem, prefix: Prefix, layer: int) -> LayerChoices:
    """The options of layer ``layer``'s nodes after ``prefix`` (layers before it fixed)."""
    net, space = problem.network, problem.space
    n_prev, n = net.sizes[layer - 1], net.sizes[layer]
    w, b = net.weights[layer - 1], net.biases[layer - 1]
    subsets = subset_masks(np.flatnonzero(prefix.active), n_prev)
    replaced = problem.replacement[layer - 1]
    values = [
        node_values(w[j], b[j], prefix.values, replaced, subsets, net.activation) for j in range(n)
    ]
    edges = [np.stack([in_edges(space, layer - 1, j, s) for s in subsets]) for j in range(n)]
    senders = LayerBounds(prefix.values, prefix.values, prefix.active)
    lo, hi, pad = _receiver_bounds(senders, replaced, w, b)
    v_lo, v_hi = _activated(net.activation, lo, hi, pad)
    return LayerChoices(layer, subsets, values, edges, LayerBounds(v_lo, v_hi, np.ones(n, bool)))


@dataclass(frozen=True)
class Family:
    """The circuits extending ``prefix`` (layers before ``choices.layer`` fixed) whose first
    nodes of that layer take the options ``picked``; everything after them is free."""

    prefix: Prefix
    choices: LayerChoices
    picked: tuple[int, ...]

    @property
    def complete(self) -> bool:
        """Whether every node of the layer is chosen."""
        return len(self.picked) == len(self.choices.values)

    def union(self) -> np.ndarray:
        """The senders fed by the chosen nodes."""
        fed = np.zeros(self.choices.subsets.shape[1], dtype=bool)
        for c in self.picked:
            fed |= self.choices.subsets[c]
        return fed

    def shape(self, problem: Problem) -> FamilyShape:
        layer = self.choices.layer
        kept = [c != 0 for c in self.picked]
        return FamilyShape(
            layer=layer,
            senders=int(self.prefix.active.sum()),
            uncovered=int((self.prefix.active & ~self.union()).sum()),
            fixed_active=sum(kept),
            free=len(self.choices.values) - len(self.picked),
            must_cover=layer > 1 or problem.criterion.compat is not None,
            all_hidden_so_far=self.prefix.all_hidden and all(kept),
        )

    def bounds(self) -> LayerBounds:
        """The layer's values over the family: chosen nodes exactly, the others bounded."""
        free = self.choices.free
        lo, hi, keep = free.lo.copy(), free.hi.copy(), free.can_keep.copy()
        for j, c in enumerate(self.picked):
            lo[:, j] = hi[:, j] = self.choices.values[j][c]
            keep[j] = c != 0
        return LayerBounds(lo, hi, keep)

    def next_prefix(self, problem: Problem) -> Prefix:
        """The prefix a complete family fixes up to and including its layer."""
        bits = self.prefix.bits.copy()
        for j, c in enumerate(self.picked):
            bits |= self.choices.edges[j][c]
        active = np.array([c != 0 for c in self.picked])
        values = np.stack([self.choices.values[j][c] for j, c in enumerate(self.picked)], axis=1)
        return Prefix(bits, values, active, self.prefix.all_hidden and bool(active.all()))


@dataclass
class Decided:
    """A family decided by bounds: its number of admissible members and their verdict."""

    family: Family
    count: int
    verdict: int  # -1 every member invalid, 1 every member valid


def root_prefix(problem: Problem) -> Prefix:
    """The empty prefix: the inputs, all of them kept."""
    inputs_active = np.ones(problem.network.sizes[0], dtype=bool)
    return Prefix(np.zeros(problem.space.n_words, dtype=np.uint64), problem.x, inputs_active, True)


@dataclass
class Base:
    """An open family that fixes every layer before the last two hidden ones: the compiled
    kernels (``last_layers``) take it whole, or it is split like any other family."""

    family: Family  # the next-to-last hidden layer's family with no node chosen yet


def compiled_bases(problem: Problem) -> bool:
    """Whether the prefix tree stops at :class:`Base` families for the compiled kernels
    (a deep network, bounds on, scored on the CPU)."""
    return problem.network.n_layers >= 3 and problem.prune and problem.scorer is None


def prefix_families(problem: Problem) -> Iterator[Decided | Prefix | Base]:
    """The prefix tree in a fixed order: families decided by bounds (with their member
    counts), the bases left open for the compiled kernels, and the complete prefixes left
    open (every prefix without pruning)."""
    start = root_prefix(problem)
    if problem.network.n_layers <= 2:
        yield start
        return
    first = Family(start, layer_choices(problem, start, 1), ())
    yield from _walk(problem, first, problem.prune, problem.prune, compiled_bases(problem))


def split_base(problem: Problem, base: Base) -> Iterator[Decided | Prefix]:
    """A base's families and open prefixes, as the Python walk finds them."""
    yield from _walk(problem, base.family, False, problem.prune, False)  # type: ignore[misc]


def _walk(
    problem: Problem, family: Family, check: bool, prune: bool, bases: bool = False
) -> Iterator[Decided | Prefix | Base]:
    """Decide ``family`` by bounds (``check``, with ``prune``) or split it on its next
    node (or stop at a :class:`Base`, with ``bases``); families without admissible
    members are skipped."""
    sizes, compat = problem.network.sizes, problem.criterion.compat is not None
    count = family_count(sizes, compat, family.shape(problem))
    if count == 0:
        return
    if check:
        verdict = family_verdict(problem, family.bounds(), family.choices.layer)
        if verdict != 0:
            yield Decided(family, count, verdict)
            return
    if bases and not family.picked and family.choices.layer == problem.network.n_layers - 2:
        yield Base(family)
        return
    if family.complete:
        prefix = family.next_prefix(problem)
        layer = family.choices.layer + 1
        if layer == problem.network.n_layers - 1:
            yield prefix
            return
        # the same circuits as a family of the next layer: no new bounds to check
        nxt = Family(prefix, layer_choices(problem, prefix, layer), ())
        yield from _walk(problem, nxt, False, prune, bases)
        return
    for c in range(len(family.choices.subsets)):
        child = Family(family.prefix, family.choices, (*family.picked, c))
        yield from _walk(problem, child, prune, prune, bases)


def members(problem: Problem, family: Family) -> Iterator[Prefix]:
    """Every complete prefix of ``family``, without bounds (to list a valid family)."""
    yield from _walk(problem, family, False, False)  # type: ignore[misc]


# ----------------------------------------------------------------------------- work units


@dataclass
class WorkUnit:
    """Rows ``a0 <= a < a1`` of half A, with one outer combination, of one prefix."""

    halves: Halves
    outer: Outer
    a0: int
    a1: int


def _block(halves: Halves, outer: Outer, blk: int) -> WorkUnit:
    a0 = blk * halves.block
    return WorkUnit(halves, outer, a0, min(a0 + halves.block, len(halves.half_a)))


def prefix_units(problem: Problem, prefix: Prefix, keep: bool) -> Iterator[WorkUnit]:
    """Every work unit of one prefix, in order (outer combinations, then blocks of A)."""
    halves = make_halves(problem, prefix, keep)
    for outer in outer_combinations(problem, prefix, halves):
        for blk in range(halves.n_blocks):
            yield _block(halves, outer, blk)


def work_units(
    problem: Problem, shard: tuple[int, int] | None, keep: bool
) -> Iterator[WorkUnit | Decided | Base]:
    """The work of shard ``(i, n)`` (all of it without a shard). Work is numbered in a
    fixed order (the prefix tree's decided families and bases, each one unit, and its open
    prefixes, each cut into outer combinations and blocks of half A) and unit ``k``
    belongs to shard ``k mod n``, so the shards' union is exactly the census."""
    me, of = shard or (0, 1)
    index = 0
    for item in prefix_families(problem):
        if isinstance(item, (Decided, Base)):
            if index % of == me:
                yield item
            index += 1
            continue
        halves = make_halves(problem, item, keep)
        n_units = halves.n_outer * halves.n_blocks
        if (me - index) % of >= n_units:  # none of this prefix's work is ours
            index += n_units
            continue
        for outer in outer_combinations(problem, item, halves):
            for blk in range(halves.n_blocks):
                if index % of == me:
                    yield _block(halves, outer, blk)
                index += 1
