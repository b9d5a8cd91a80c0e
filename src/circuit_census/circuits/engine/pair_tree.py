"""Deciding the pairs of an open row by families of half B (mse criterion, identity output).

With weighted residuals ``r`` (a half's pre-activation minus the full model's, times the
square root of each point's weight), a pair's summed squared error is ``|v0 + r_a + r_b|^2``
(``v0``: the outer combination's and the bias's part). Half B's combinations form a tree
(fix its first unit, then its second, ...); every member of a node lies within a radius
of the node's center, so its error lies between ``(|c| - radius)^2`` and
``(|c| + radius)^2``, with ``c`` the row's residual plus the center. ``|c|^2`` is a sum of
dot products precomputed per prefix and per outer combination, so a node costs a few
operations, whatever the number of points. Nodes wholly inside or outside the budget's
sphere are counted by their admissible members; the rest are split. Trailing silent
units (every option adds the same, e.g. dead nodes) make a node one point: a point too
near the sphere is summed exactly, so every verdict is that of the pair-by-pair rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuit_census.circuits.engine import kernels
from circuit_census.circuits.engine.pairs import block_pairs, decisive_first, threaded_if_large
from circuit_census.circuits.engine.plan import Group, Halves, Outer, unit_offsets
from circuit_census.circuits.engine.problem import Problem
from circuit_census.circuits.engine.structures import (
    MSE,
    Block,
    OuterRows,
    OuterTree,
    PairTree,
    RowTree,
)

TREE_SLACK = 1e-9  # relative allowance for rounding in a node's decision (>> float64's)
RADIUS_SLACK = 1e-12  # relative widening of every node's radius


def uses_pair_tree(problem: Problem) -> bool:
    """Whether open rows are decided through half B's tree: mse with an identity output,
    bounds on, on the CPU (the other criteria and outputs bound half B by intervals)."""
    return (
        problem.prune
        and problem.scorer is None
        and problem.criterion_code == MSE
        and problem.network.output_activation == "identity"
    )


def _silent(unit: Group) -> bool:
    """Whether every option of ``unit`` adds exactly the same at every point."""
    return bool(np.all(unit.contrib == unit.contrib[0]))


def _suffix_sizes(radix: np.ndarray) -> np.ndarray:
    """Members of a node at each depth of a mixed-radix tree: the product of the radices
    below it (depth ``n`` last: 1)."""
    return np.cumprod(np.concatenate([radix, [1]])[::-1])[::-1].astype(np.int64)


def _suffix_keys(units_b: list[Group]) -> tuple[np.ndarray, ...]:
    """For each depth ``d``, the distinct (cover, present) of the combinations of units
    ``d..`` of half B with how many share each (depth ``n`` last: the empty combination)."""
    levels = [(np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, np.int64))]
    for u in reversed(units_b):
        cover, present, count = levels[-1]
        c = (u.cover[:, None] | cover[None, :]).reshape(-1)
        p = (u.present[:, None] + present[None, :]).reshape(-1)
        n = np.broadcast_to(count[None, :], (len(u), len(count))).reshape(-1)
        keys, inverse = np.unique(np.stack([c, p], axis=1), axis=0, return_inverse=True)
        merged = np.zeros(len(keys), np.int64)
        np.add.at(merged, inverse.reshape(-1), n)
        levels.append((keys[:, 0].copy(), keys[:, 1].copy(), merged))
    levels = levels[::-1]
    start = np.concatenate([[0], np.cumsum([len(lv[0]) for lv in levels])]).astype(np.int64)
    return (
        np.concatenate([lv[0] for lv in levels]),
        np.concatenate([lv[1] for lv in levels]),
        np.concatenate([lv[2] for lv in levels]),
        start,
    )


@dataclass
class PrefixTree:
    """Half B's tree for one prefix (the kernels' :class:`PairTree`) and the weighted
    options and center that the terms of each outer combination are made from."""

    kernel: PairTree
    rows: RowTree
    alpha: np.ndarray  # (n_opts_a, K) every option of half A's units, weighted
    delta: np.ndarray  # (n_opts_b, K) every option of half B's units minus its unit's mean
    center: np.ndarray  # (K,) the sum of half B's units' means
    delta_a: np.ndarray  # (n_opts_a, K) every option of half A's units minus its unit's mean
    center_a: np.ndarray  # (K,) the sum of half A's units' means

    def for_outer(self, problem: Problem, outer: Outer) -> tuple[OuterTree, OuterRows]:
        """The terms of one outer combination, for half B's tree and for half A's."""
        constant = outer.contrib + problem.network.biases[-1]
        root_w = np.sqrt(problem.weight)[:, None]
        v0 = ((constant - problem.pre_reference) * root_w).reshape(-1) + self.center
        v0_rows = v0 + self.center_a
        pairs = OuterTree(
            n0=float(v0 @ v0),
            t0=np.ascontiguousarray(self.delta @ v0),
            s_a=np.ascontiguousarray(self.alpha @ v0),
            constant=np.ascontiguousarray(constant.reshape(-1)),
        )
        rows = OuterRows(n0=float(v0_rows @ v0_rows), t0=self.delta_a @ v0_rows)
        return pairs, rows


def _ball_levels(delta: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The mixed-radix tree over units with options ``delta`` (deviations from each
    unit's mean): every node's squared norm of its fixed deviations (depth by depth, node
    ``depth_start[d] + i`` for prefix ``i``), the radius of the free deviations below each
    depth (widened by ``RADIUS_SLACK``), and the largest node norm."""
    n_terms = delta[0].shape[1] if delta else 0
    level, norms = np.zeros((1, n_terms)), [np.zeros(1)]
    for d in range(len(delta)):  # nodes of depth d + 1: the sums of the fixed deltas
        level = (level[:, None, :] + delta[d][None, :, :]).reshape(-1, n_terms)
        norms.append(np.einsum("ij,ij->i", level, level))
    del level
    radius = np.zeros(len(delta) + 1)
    suffix = np.zeros((1, n_terms))
    for d in range(len(delta) - 1, -1, -1):  # the free units' deviations below depth d
        suffix = (delta[d][:, None, :] + suffix[None, :, :]).reshape(-1, n_terms)
        radius[d] = np.sqrt(np.einsum("ij,ij->i", suffix, suffix).max())
    depth_start = np.concatenate([[0], np.cumsum([len(n) for n in norms])[:-1]])
    max_delta = float(np.sqrt(max(float(n.max()) for n in norms)))
    return (
        np.concatenate(norms),
        depth_start.astype(np.int64),
        radius * (1.0 + RADIUS_SLACK),
        max_delta,
    )


def make_pair_tree(problem: Problem, halves: Halves) -> PrefixTree:
    """Half B's tree for one prefix, with what every row of half A needs of it."""
    root_w = np.sqrt(problem.weight)[:, None]
    n_terms = problem.n_terms
    units_a, units_b = halves.units_a, halves.units_b
    live = len(units_b)
    while live > 0 and _silent(units_b[live - 1]):
        live -= 1
    beta = [(u.contrib * root_w).reshape(len(u), n_terms) for u in units_b]
    delta = [b - b.mean(axis=0) for b in beta]
    for d in range(live, len(units_b)):
        delta[d] = np.zeros_like(delta[d])
    node_norm, depth_start, radius, max_delta = _ball_levels(delta[:live])
    radix_b = np.array([len(u) for u in units_b], dtype=np.int64)
    radix_a = np.array([len(u) for u in units_a], dtype=np.int64)
    alpha = [(u.contrib * root_w).reshape(len(u), n_terms) for u in units_a]
    delta_all = np.concatenate(delta) if delta else np.zeros((0, n_terms))
    alpha_all = np.concatenate(alpha) if alpha else np.zeros((0, n_terms))
    half_a, half_b = halves.half_a, halves.half_b
    r_a = (half_a.contrib * root_w).reshape(len(half_a), n_terms)
    norm_a = np.einsum("ij,ij->i", r_a, r_a)
    key_cover, key_present, key_count, key_start = _suffix_keys(units_b)
    z_a = np.ascontiguousarray(half_a.contrib.reshape(len(half_a), n_terms))
    z_b = np.ascontiguousarray(half_b.contrib.reshape(len(half_b), n_terms))
    target = np.ascontiguousarray(problem.reference.reshape(-1))
    weight = np.repeat(problem.weight, problem.n_out)
    kernel = PairTree(
        radix=radix_b,
        offset=unit_offsets(radix_b),
        size=_suffix_sizes(radix_b),
        live=live,
        node_norm=node_norm,
        depth_start=depth_start,
        radius=radius,
        max_delta=max_delta,
        opt_cover=np.concatenate([u.cover for u in units_b]).astype(np.int64),
        opt_present=np.concatenate([u.present for u in units_b]).astype(np.int64),
        key_cover=key_cover,
        key_present=key_present,
        key_count=key_count,
        key_start=key_start,
        a_radix=radix_a,
        a_offset=unit_offsets(radix_a),
        cross=np.ascontiguousarray(alpha_all @ delta_all.T),
        norm_a=norm_a,
        root_a=np.sqrt(norm_a),
        z_a=z_a,
        z_b=z_b,
        target=target,
        weight=weight,
        order=decisive_first(problem, z_a, z_b, target, weight),
        slack=TREE_SLACK,
    )
    center = np.zeros(n_terms)
    for b in beta:
        center = center + b.mean(axis=0)
    center_a = np.zeros(n_terms)
    for a in alpha:
        center_a = center_a + a.mean(axis=0)
    delta_a = [a - a.mean(axis=0) for a in alpha]
    a_norm, a_start, a_radius, a_max = _ball_levels(delta_a)
    rows = RowTree(
        radix=radix_a,
        offset=kernel.a_offset,
        size=_suffix_sizes(radix_a),
        node_norm=a_norm,
        depth_start=a_start,
        radius=a_radius + radius[0],
        max_delta=a_max,
        slack=TREE_SLACK,
    )
    delta_a_all = np.concatenate(delta_a) if delta_a else np.zeros((0, n_terms))
    return PrefixTree(kernel, rows, alpha_all, delta_all, center, delta_a_all, center_a)


class PairTreeCache:
    """Half B's tree of one prefix, built the first time a row needs it, and the terms
    of the latest outer combination."""

    def __init__(self, problem: Problem, halves: Halves):
        self.problem, self.halves = problem, halves
        self.tree: PrefixTree | None = None
        self.number: int | None = None
        self.outer: tuple[OuterTree, OuterRows] | None = None

    def get(self, outer: Outer) -> tuple[PrefixTree, OuterTree, OuterRows]:
        if self.tree is None:
            self.tree = make_pair_tree(self.problem, self.halves)
        if self.number != outer.number:
            self.number = outer.number
            self.outer = self.tree.for_outer(self.problem, outer)
        return self.tree, *self.outer

    def row_verdicts(self, outer: Outer, a0: int, a1: int) -> np.ndarray:
        """Verdicts of the rows ``a0 <= a < a1`` of half A, each with all of half B, by
        half A's ball tree: -1 every pair invalid, 1 every pair valid, 0 open."""
        tree, _, rows = self.get(outer)
        verdicts = np.zeros(a1 - a0, dtype=np.int8)
        kernels.row_tree_verdicts(tree.rows, rows, a0, a1, self.problem.budget, verdicts)
        return verdicts


def score_rows_by_tree(
    problem: Problem, halves: Halves, outer: Outer, cache: PairTreeCache, block: Block
) -> tuple[int, int, np.ndarray]:
    """The valid pairs of ``block``'s open rows (with ``outer``), the candidates among
    them decided by a family of pairs at once, and (when collecting) the valid mask."""
    pairs = block_pairs(halves, outer, block)
    tree, outer_tree, _ = cache.get(outer)
    n_pairs = int(np.count_nonzero(block.row_verdict == 0)) * len(halves.half_b)
    kernel = threaded_if_large(kernels.pair_tree_rows, kernels.pair_tree_rows_serial, n_pairs)
    valid, bounded = kernel(tree.kernel, outer_tree, pairs, block, problem.budget)
    return int(valid.sum()), int(bounded.sum()), block.out_valid
