"""The named structures the census kernels take (NamedTuples of arrays and scalars, which
Numba accepts), read alike by the Numba kernels and the PyTorch scorer.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# A *term* is one (point, output) entry of the output pre-activation, flattened point-major;
# ``K`` is their number.

# Criterion codes (``Rule.criterion``).
MSE = 0
ACCURACY = 1  # each output read as bit ``output >= 0.5``
ACCURACY_ROUNDED = 2  # each output rounded half to even (the meloux2025 mode)


class Rule(NamedTuple):
    """How a circuit's outputs are judged against the full model's.

    ``budget`` is what the criterion allows over all samples: for mse, the summed weighted
    squared error a valid circuit stays strictly below (threshold x samples x outputs); for
    accuracy, the largest weight of wrong samples it may have (inclusive).
    """

    activation: int  # the output activation's code (activations.TABLE[name].code)
    table: np.ndarray  # that activation tabulated for the bounds (kernels.activation_table)
    criterion: int  # MSE, ACCURACY or ACCURACY_ROUNDED
    budget: float
    n_out: int  # outputs per point
    target: np.ndarray  # (K,) per term: the full model's outputs (mse) or target bits
    weight: np.ndarray  # samples each term (mse) or each point (accuracy) stands for


class Tree(NamedTuple):
    """The combinations of some units (one option each, first unit slowest) as a tree for
    branch and bound: every option's terms, and bounds on what the units from depth ``d``
    on (and whatever else is free) can add."""

    options: np.ndarray  # (sum of radices, K) terms of every option of every unit
    offset: np.ndarray  # (n_units,) first row of each unit in ``options``
    radix: np.ndarray  # (n_units,) options per unit
    rest_lo: np.ndarray  # (n_units + 1, K) least that units d.. and the free ones add
    rest_hi: np.ndarray  # (n_units + 1, K) most
    pad: np.ndarray  # (K,) rounding allowance on every pre-activation interval


class Admissible(NamedTuple):
    """Which pairs of half A's rows (of one block) and half B's combinations are candidate
    circuits: ``(a, b)`` is when ``cover_a[a] | cover_b[b] == required`` and
    ``present_a[a] + present_b[b] != excluded``. For counting, the B side may instead hold
    half B's distinct (cover, present) values (see ``kernels.candidates_per_row``)."""

    cover_a: np.ndarray  # (rows,) int64 bitmask of required nodes each row feeds
    present_a: np.ndarray  # (rows,) int64 last-hidden nodes each row keeps
    cover_b: np.ndarray
    present_b: np.ndarray
    required: int  # every required node (previous layer's kept nodes, outputs)
    excluded: int  # a number of kept last-hidden nodes that is not allowed (-1: none)


class Block(NamedTuple):
    """Rows ``a0 <= a < a1`` of half A against all of half B: what bounds decided already,
    and where the valid pairs are marked."""

    a0: int
    a1: int
    row_verdict: np.ndarray  # (a1 - a0,) int8: -1 / 1 every pair of the row in/valid, 0 open
    pair_state: np.ndarray  # (a1 - a0, n_b) int8 pair verdicts by bounds, or (1, 1) unused
    use_state: bool  # whether ``pair_state`` holds verdicts
    collect: bool  # whether valid pairs are marked in ``out_valid``
    out_valid: np.ndarray  # (a1 - a0, n_b) uint8, or (1, 1) when not collecting


class PairTerms(NamedTuple):
    """The mse pair scorer's terms for one prefix. With weighted residuals ``r`` (the
    distance of a half's pre-activation to the full model's), a pair's summed squared
    distance is ``|r_a + r_b|^2``; the cross term adds one row of ``cross`` per unit of
    half A. Terms of ``z_a``, ``z_b``, ``target`` and ``weight`` are in decisive order."""

    cross: np.ndarray  # (sum of radices, n_b) each option of each unit of A . each r_b
    unit_offset: np.ndarray  # (n_units,) first row of each unit of half A in ``cross``
    radix: np.ndarray  # (n_units,) options per unit of half A
    norm_b: np.ndarray  # (n_b,) |r_b|^2
    root_b: np.ndarray  # (n_b,) |r_b|
    z_a: np.ndarray  # (n_a, K) half A's contributions to the pre-activation
    z_b: np.ndarray  # (n_b, K) half B's
    target: np.ndarray  # (K,) the full model's outputs
    weight: np.ndarray  # (K,) samples per term
    lipschitz_sq: float  # squared largest slope of the output activation
    band: float  # relative rounding bound within which an identity output is re-summed


class OuterTerms(NamedTuple):
    """The mse pair scorer's terms that depend on the outer units' combination."""

    constant: np.ndarray  # (K,) output bias plus the outer contribution, decisive order
    cross_constant: np.ndarray  # (n_b,) the constant's residual . each r_b
    norm_a: np.ndarray  # (n_a,) |r_a + constant's residual|^2
    scale_a: np.ndarray  # (n_a,) a bound on |r_a + constant's residual|, for the band


class PairTree(NamedTuple):
    """Half B as a tree of balls in the weighted residual space, for deciding the pairs of
    an open row by families (mse, identity output). A node at depth ``d`` fixes half B's
    first ``d`` units; its members' residuals lie within ``radius[d]`` of its center
    ``M + sum of the fixed options' deviations delta`` (``M``: the sum of every unit's mean
    option). Units from depth ``live`` on are silent (every option adds the same), so a
    node there is one point. Everything a node needs is a dot product precomputed per
    prefix (``cross``, ``node_norm``) or per outer combination (:class:`OuterTree`)."""

    radix: np.ndarray  # (n_units_b,) options per unit of half B
    offset: np.ndarray  # (n_units_b,) first option of each unit in the option arrays
    size: np.ndarray  # (n_units_b + 1,) combinations of half B under a node of depth d
    live: int  # units of half B before the trailing silent ones
    node_norm: np.ndarray  # |sum of the fixed options' deltas|^2, per node of depth <= live
    depth_start: np.ndarray  # (live + 1,) first node of each depth in ``node_norm``
    radius: np.ndarray  # (live + 1,) largest distance of a node's member from its center
    max_delta: float  # largest |sum of fixed deltas| over all nodes
    opt_cover: np.ndarray  # (n_opts_b,) what each option of half B covers
    opt_present: np.ndarray  # (n_opts_b,) and keeps
    key_cover: np.ndarray  # distinct (cover, present) of the free units below each depth
    key_present: np.ndarray
    key_count: np.ndarray  # combinations with each
    key_start: np.ndarray  # (n_units_b + 2,) first key of each depth
    a_radix: np.ndarray  # (n_units_a,) options per unit of half A
    a_offset: np.ndarray  # (n_units_a,) first option of each unit of half A
    cross: np.ndarray  # (n_opts_a, n_opts_b) each option of half A . each delta of half B
    norm_a: np.ndarray  # (n_a,) |r_a|^2 of every row of half A
    root_a: np.ndarray  # (n_a,) |r_a|
    z_a: np.ndarray  # (n_a, K) half A's contributions, for the exact sum of a doubtful pair
    z_b: np.ndarray  # (n_b, K) half B's
    target: np.ndarray  # (K,) the full model's outputs
    weight: np.ndarray  # (K,) samples per term
    order: np.ndarray  # (K,) the pair scorer's order of terms (``PairTerms``)
    slack: float  # relative rounding allowance of a node's decision


class OuterTree(NamedTuple):
    """The tree's terms that depend on the outer units' combination (``v0``: the constant
    part's residual plus ``M``)."""

    n0: float  # |v0|^2
    t0: np.ndarray  # (n_opts_b,) v0 . each delta of half B
    s_a: np.ndarray  # (n_opts_a,) v0 . each option of half A
    constant: np.ndarray  # (K,) output bias plus the outer contribution


class RowTree(NamedTuple):
    """Half A as a tree of balls with half B free, for giving whole families of rows a
    verdict (mse, identity output): a node at depth ``d`` fixes half A's first ``d`` units,
    and every pair of its rows with half B lies within ``radius[d]`` of its center
    ``v0 + sum of the fixed options' deviations`` (``v0``: :class:`OuterRows`)."""

    radix: np.ndarray  # (n_units_a,) options per unit of half A
    offset: np.ndarray  # (n_units_a,) first option of each unit
    size: np.ndarray  # (n_units_a + 1,) rows under a node of depth d
    node_norm: np.ndarray  # |sum of the fixed options' deltas|^2, per node
    depth_start: np.ndarray  # (n_units_a + 1,) first node of each depth in ``node_norm``
    radius: np.ndarray  # (n_units_a + 1,) half A's free part's radius plus half B's
    max_delta: float  # largest |sum of fixed deltas| over all nodes
    slack: float  # relative rounding allowance of a node's decision


class OuterRows(NamedTuple):
    """The row tree's terms for one outer combination (``v0``: the constant part's
    residual plus the sum of every unit's mean option, in both halves)."""

    n0: float  # |v0|^2
    t0: np.ndarray  # (n_opts_a,) v0 . each delta of half A
