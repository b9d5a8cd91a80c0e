"""Interval bounds on families of circuits: branch-and-bound trees over half A (half B
free) and over half B (a row of A fixed), and counting a family's candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuit_census.circuits.engine import kernels
from circuit_census.circuits.engine.plan import Group, Halves, Outer, unit_offsets
from circuit_census.circuits.engine.problem import Problem
from circuit_census.circuits.engine.structures import Admissible, Block, Tree

PAIR_LEAF = 16  # branch and bound over half B stops at families this small


def _tree(units: list[Group], n_terms: int, free_lo, free_hi, pad: np.ndarray) -> Tree:
    """The combinations of ``units`` as a tree (terms flattened over points x outputs),
    with ``free_lo`` and ``free_hi`` bounding what the units outside it add."""
    flat = [u.contrib.reshape(len(u), n_terms) for u in units]
    rest_lo, rest_hi = [free_lo], [free_hi]
    for c in reversed(flat):
        rest_lo.append(rest_lo[-1] + c.min(axis=0))
        rest_hi.append(rest_hi[-1] + c.max(axis=0))
    radix = np.array([len(u) for u in units], dtype=np.int64)
    return Tree(
        options=np.ascontiguousarray(np.concatenate(flat) if flat else np.zeros((1, n_terms))),
        offset=unit_offsets(radix),
        radix=radix,
        rest_lo=np.ascontiguousarray(rest_lo[::-1]),
        rest_hi=np.ascontiguousarray(rest_hi[::-1]),
        pad=pad,
    )


@dataclass
class Bounds:
    """What branch and bound needs for one prefix: half A's tree (half B free), half B's
    tree (a row of A fixed), and the distinct (cover, present) values of half B with how
    many combinations share each, to count a family's candidates."""

    tree_a: Tree
    tree_b: Tree
    cover_b: np.ndarray  # distinct covers of half B's combinations
    present_b: np.ndarray  # with their numbers of kept last-hidden nodes
    count_b: np.ndarray  # combinations of half B with each
    key_a: np.ndarray  # (n_a,) which distinct (cover, present) each row of half A has
    first_a: np.ndarray  # a row of half A with each distinct (cover, present)

    def row_candidates(self, halves: Halves, outer: Outer, a0: int, a1: int) -> np.ndarray:
        """Candidates among the pairs of each row ``a0 <= a < a1`` of half A (with
        ``outer``) and every combination of half B, through half A's distinct keys."""
        first = self.first_a
        pairs = Admissible(
            outer.cover_a[first],
            outer.present_a[first],
            self.cover_b,
            self.present_b,
            halves.required,
            halves.excluded,
        )
        per_key = kernels.candidates_per_row(pairs, self.count_b)
        return per_key[self.key_a[a0:a1]]


def make_bounds(problem: Problem, halves: Halves) -> Bounds:
    """The trees of a prefix's halves, with every pre-activation interval widened by the
    rounding allowance ``VALUE_SLACK`` x the magnitudes that make it up."""
    n_terms = problem.n_terms
    bias = np.abs(problem.network.biases[-1]).max()
    scale = 1.0 + bias + np.abs(problem.pre_reference).reshape(-1)
    for u in halves.units:
        scale = scale + np.abs(u.contrib).max(axis=0).reshape(-1)
    pad = kernels.VALUE_SLACK * scale
    zero = np.zeros(n_terms)
    tree_b = _tree(halves.units_b, n_terms, zero, zero, pad)
    tree_a = _tree(halves.units_a, n_terms, tree_b.rest_lo[0], tree_b.rest_hi[0], pad)
    half_b = halves.half_b
    keys, count = np.unique(
        np.stack([half_b.cover, half_b.present], axis=1), axis=0, return_counts=True
    )
    half_a = halves.half_a
    _, first_a, key_a = np.unique(
        np.stack([half_a.cover, half_a.present], axis=1),
        axis=0,
        return_index=True,
        return_inverse=True,
    )
    return Bounds(
        key_a=key_a.reshape(-1).astype(np.int64),
        first_a=first_a.astype(np.int64),
        tree_a=tree_a,
        tree_b=tree_b,
        cover_b=np.ascontiguousarray(keys[:, 0]),
        present_b=np.ascontiguousarray(keys[:, 1]),
        count_b=count.astype(np.int64),
    )


def row_verdicts(problem: Problem, bounds: Bounds, base: np.ndarray, a0: int, a1: int):
    """Verdicts of the rows ``a0 <= a < a1`` of half A, each with all of half B: -1 every
    pair invalid, 1 every pair valid, 0 open (all open without pruning)."""
    verdicts = np.zeros(a1 - a0, dtype=np.int8)
    if problem.prune:
        kernels.branch_and_bound(bounds.tree_a, base, a0, a1, 1, problem.rule, verdicts)
    return verdicts


def pair_verdicts(
    problem: Problem, bounds: Bounds, base: np.ndarray, rows: np.ndarray, block: Block
) -> None:
    """Decide the pairs of each open row of ``block`` by branch and bound over half B, as
    far as it goes (families of ``PAIR_LEAF``); ``rows``: the block's rows of half A as
    terms. Writes ``block.pair_state``."""
    kernels.branch_and_bound_rows(bounds.tree_b, base, rows, PAIR_LEAF, problem.rule, block)
