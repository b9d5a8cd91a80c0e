"""Scoring the pairs the bounds leave open: the additive mse terms of a prefix, and the
choice of kernel (threaded or serial Numba, or PyTorch on a device) for a block of pairs.
"""

from __future__ import annotations

import numpy as np

from circuit_census.activations import TABLE, apply_activation
from circuit_census.circuits.engine import kernels
from circuit_census.circuits.engine.plan import Halves, Outer, unit_offsets
from circuit_census.circuits.engine.problem import Problem
from circuit_census.circuits.engine.structures import (
    MSE,
    Admissible,
    Block,
    OuterTerms,
    PairTerms,
)

RECHECK_BAND = 1e-11  # rounding bound (relative) within which the additive path re-sums


def lipschitz_sq(activation: str) -> float:
    """The squared largest slope of an activation (sigmoid: 1/16)."""
    return TABLE[activation].max_slope ** 2


class PrefixPairTerms:
    """The mse scorer's terms for one prefix: the kernels' :class:`PairTerms`, and what
    the terms of each outer combination are made from (weighted residuals ``r``)."""

    def __init__(self, problem: Problem, halves: Halves):
        half_a, half_b = halves.half_a, halves.half_b
        n_a, n_b = len(half_a), len(half_b)
        self.root_w = np.sqrt(problem.weight)[:, None]
        z_a = np.ascontiguousarray(half_a.contrib.reshape(n_a, -1))
        z_b = np.ascontiguousarray(half_b.contrib.reshape(n_b, -1))
        self.r_a = (half_a.contrib * self.root_w).reshape(n_a, -1)
        self.r_b = (half_b.contrib * self.root_w).reshape(n_b, -1)
        norm_b = np.einsum("ij,ij->i", self.r_b, self.r_b)
        units = [(u.contrib * self.root_w).reshape(len(u), -1) for u in halves.units_a]
        cross = np.concatenate([c @ self.r_b.T for c in units]) if units else np.zeros((1, n_b))
        radix = np.array([len(u) for u in halves.units_a], dtype=np.int64)
        scale = np.zeros(1)
        for c in units:
            scale = (scale[:, None] + np.sqrt(np.einsum("ij,ij->i", c, c))[None, :]).reshape(-1)
        self.unit_scale = scale
        target = np.ascontiguousarray(problem.reference.reshape(-1))
        weight = np.repeat(problem.weight, problem.n_out)
        self.order = decisive_first(problem, z_a, z_b, target, weight)
        self.kernel = PairTerms(
            cross=np.ascontiguousarray(cross),
            unit_offset=unit_offsets(radix),
            radix=radix,
            norm_b=norm_b,
            root_b=np.sqrt(norm_b),
            z_a=np.ascontiguousarray(z_a[..., self.order]),
            z_b=np.ascontiguousarray(z_b[..., self.order]),
            target=np.ascontiguousarray(target[..., self.order]),
            weight=np.ascontiguousarray(weight[..., self.order]),
            lipschitz_sq=lipschitz_sq(problem.network.output_activation),
            band=RECHECK_BAND,
        )

    def for_outer(self, problem: Problem, outer_contrib: np.ndarray) -> OuterTerms:
        """Terms that depend on the outer units' combination: the constant part of the
        pre-activation, its products with half B, and half A's squared distances."""
        constant = outer_contrib + problem.network.biases[-1]
        c0 = ((constant - problem.pre_reference) * self.root_w).reshape(-1)
        shifted = self.r_a + c0
        return OuterTerms(
            constant=np.ascontiguousarray(constant.reshape(-1)[self.order]),
            cross_constant=self.r_b @ c0,
            norm_a=np.einsum("ij,ij->i", shifted, shifted),
            scale_a=self.unit_scale + np.sqrt(c0 @ c0),
        )


def decisive_first(problem: Problem, z_a, z_b, target, weight) -> np.ndarray:
    """An order of the (point, output) terms, largest errors first among a seeded sample of
    pairs, so that term-by-term sums pass the budget early. The order changes no
    decision: partial sums of non-negative terms only grow."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, len(z_a), 512)
    b = rng.integers(0, len(z_b), 512)
    constant = np.broadcast_to(problem.network.biases[-1], problem.reference.shape).reshape(-1)
    out = apply_activation(problem.network.output_activation, z_a[a] + constant + z_b[b])
    error = (weight * (out - target) ** 2).mean(axis=0)
    return np.argsort(-error, kind="stable")


class PairTermsCache:
    """The mse terms of one prefix, built the first time a pair needs them (bounds often
    decide every pair), and those of the latest outer combination."""

    def __init__(self, problem: Problem, halves: Halves):
        self.problem, self.halves = problem, halves
        self.prefix: PrefixPairTerms | None = None
        self.number: int | None = None
        self.outer: OuterTerms | None = None

    def get(self, outer: Outer) -> tuple[PairTerms, OuterTerms]:
        if self.prefix is None:
            self.prefix = PrefixPairTerms(self.problem, self.halves)
        if self.number != outer.number:
            self.number = outer.number
            self.outer = self.prefix.for_outer(self.problem, outer.contrib)
        return self.prefix.kernel, self.outer


def threaded_if_large(threaded, serial, n_pairs: int):
    """The threaded build of a kernel for large blocks, the serial one for small."""
    return threaded if n_pairs >= kernels.PARALLEL_PAIRS else serial


def block_pairs(halves: Halves, outer: Outer, block: Block) -> Admissible:
    """What makes a pair of ``block``'s rows of half A (with ``outer``) and half B a
    candidate: their covers and kept-node counts, and what they must reach."""
    a0, a1 = block.a0, block.a1
    return Admissible(
        outer.cover_a[a0:a1],
        outer.present_a[a0:a1],
        halves.half_b.cover,
        halves.half_b.present,
        halves.required,
        halves.excluded,
    )


def score_pairs(
    problem: Problem, halves: Halves, outer: Outer, terms: PairTermsCache, block: Block
) -> tuple[int, np.ndarray]:
    """Score the pairs of ``block`` (rows of half A, with ``outer``) with half B but those
    it marks as decided: the number of valid pairs and, when collecting, their mask."""
    a0, a1 = block.a0, block.a1
    half_b = halves.half_b
    pairs = block_pairs(halves, outer, block)
    n_pairs = (a1 - a0) * len(half_b)
    if problem.criterion_code == MSE:
        prefix_terms, outer_terms = terms.get(outer)
        if problem.scorer is not None:
            ok = problem.scorer.additive(prefix_terms, outer_terms, pairs, block, problem.rule)
            return _open_rows_only(ok.cpu().numpy(), block.row_verdict)
        kernel = threaded_if_large(
            kernels.score_pairs_additive, kernels.score_pairs_additive_serial, n_pairs
        )
        valid = kernel(prefix_terms, outer_terms, pairs, block, problem.rule)
        return int(valid.sum()), block.out_valid
    u = np.ascontiguousarray(
        halves.half_a.contrib[a0:a1] + outer.contrib + problem.network.biases[-1]
    )
    if problem.scorer is not None:
        ok = problem.scorer.general(u, half_b.contrib, pairs, problem.rule)
        return _open_rows_only(ok.cpu().numpy(), block.row_verdict)
    kernel = threaded_if_large(
        kernels.score_pairs_general, kernels.score_pairs_general_serial, n_pairs
    )
    _, valid = kernel(u, half_b.contrib, pairs, block, problem.rule)
    return int(valid.sum()), block.out_valid


def _open_rows_only(valid_mask: np.ndarray, row_verdict: np.ndarray) -> tuple[int, np.ndarray]:
    """A device's valid mask without the rows already settled by a verdict."""
    valid_mask[row_verdict != 0] = False
    return int(np.count_nonzero(valid_mask)), valid_mask
