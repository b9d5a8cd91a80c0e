"""Numba kernels: interval bounds and branch and bound over families of circuits, and the
scoring of every pair (a, b) of two halves at once, all in float64 on the CPU.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from circuit_census.activations import LEAKY_SLOPE, TABLE
from circuit_census.circuits.engine.structures import (
    ACCURACY,
    ACCURACY_ROUNDED,
    MSE,
    Admissible,
    Block,
    OuterRows,
    OuterTerms,
    OuterTree,
    PairTerms,
    PairTree,
    RowTree,
    Rule,
    Tree,
)

__all__ = ["ACCURACY", "ACCURACY_ROUNDED", "MSE"]  # criterion codes, re-exported

# Activation codes and constants, from the one table. Numba freezes module-level numbers into
# the compiled kernels, and its cache follows this file only: after changing the table,
# clear this package's __pycache__ (or touch this file).
RELU = TABLE["relu"].code
LEAKY_RELU = TABLE["leaky_relu"].code
TANH = TABLE["tanh"].code
SIGMOID = TABLE["sigmoid"].code
IDENTITY = TABLE["identity"].code
TANH_LOWER, TANH_UPPER = TABLE["tanh"].lower, TABLE["tanh"].upper
SIGMOID_LOWER, SIGMOID_UPPER = TABLE["sigmoid"].lower, TABLE["sigmoid"].upper

# Slack of the interval bounds: on each activation value (absolute, per unit of size; far
# above a float64 tanh's error) and on the decision (relative to the budget), so that a
# family decided by bounds is decided the same way pair by pair.
VALUE_SLACK = 1e-12
DECISION_SLACK = 1e-9


@njit(cache=True)
def activate(z: float, act: int) -> float:
    if act == RELU:
        return z if z > 0.0 else 0.0
    if act == LEAKY_RELU:
        return z if z >= 0.0 else LEAKY_SLOPE * z
    if act == TANH:
        return np.tanh(z)
    if act == SIGMOID:
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    return z


# tanh and sigmoid tabulated on a grid of step h = 1/TABLE_STEPS over [-TABLE_HALF,
# TABLE_HALF] and interpolated linearly: the error is at most max|f''| h^2 / 8, with
# max|f''| = 4 / (3 sqrt 3) < 0.77 for tanh and 1 / (6 sqrt 3) < 0.1 for sigmoid, so
# below INTERPOLATION_SLACK (on top of which every value gets VALUE_SLACK).
TABLE_STEPS = 1024
TABLE_HALF = 20
INTERPOLATION_SLACK = 1e-7  # > 0.77 / 8 / 1024^2 = 9.2e-8


@njit(cache=True)
def activation_table(act: int) -> np.ndarray:
    """The activation at every grid point, computed as :func:`activate` computes it."""
    n = 2 * TABLE_HALF * TABLE_STEPS + 1
    table = np.empty(n)
    for i in range(n):
        table[i] = activate((i - TABLE_HALF * TABLE_STEPS) / TABLE_STEPS, act)
    return table


@njit(cache=True)
def activation_bounds(z: float, act: int, table) -> tuple:
    """A lower and an upper bound of ``activate(z, act)``, widened by the value slack:
    interpolated from the table for tanh and sigmoid (no transcendental function; both
    are increasing, so beyond the grid the last grid value and the limit bound them),
    exact otherwise. (``z`` is scaled by a power of two and shifted by an integer, so the
    grid position is exact but for a rounding far below the slack.)"""
    if act == TANH or act == SIGMOID:
        u = z * TABLE_STEPS + TABLE_HALF * TABLE_STEPS
        last = table.shape[0] - 1
        if u < 0.0:
            lo, hi = (TANH_LOWER if act == TANH else SIGMOID_LOWER), table[0]
        elif u >= last:
            lo, hi = table[last], (TANH_UPPER if act == TANH else SIGMOID_UPPER)
        else:
            i = int(u)
            value = table[i] + (table[i + 1] - table[i]) * (u - i)
            lo, hi = value - INTERPOLATION_SLACK, value + INTERPOLATION_SLACK
    else:
        lo = activate(z, act)
        hi = lo
    return lo - VALUE_SLACK * (1.0 + abs(lo)), hi + VALUE_SLACK * (1.0 + abs(hi))


@njit(cache=True)
def squared_error_bounds(f_lo: float, f_hi: float, t: float) -> tuple:
    """Least and largest ``(f - t)^2`` over ``f`` in ``[f_lo, f_hi]`` (without branches)."""
    off = abs(0.5 * (f_lo + f_hi) - t)
    radius = 0.5 * (f_hi - f_lo)
    gap = max(off - radius, 0.0)
    far = off + radius
    return gap * gap, far * far


# ----------------------------------------------------------------------------- accuracy


def _score_pairs_general(u, v, pairs: Admissible, block: Block, rule: Rule):
    """Score the pairs of a block for the accuracy criterion by reading the output bits
    point by point, stopping as soon as the wrong samples' weight passes the budget (it
    only grows).

    ``u``: (rows, P, m) pre-activations of the block's rows of half A, bias included;
    ``v``: (n_b, P, m) half B's contributions. Bits are ``output >= 0.5`` (ACCURACY) or
    rounded half to even (ACCURACY_ROUNDED). Returns per-row (candidates, valid) counts
    and marks ``block.out_valid`` when collecting. Rows with a verdict are skipped
    (counted by the caller), and so are pairs already decided by bounds (``pair_state``,
    see :func:`branch_and_bound`). (The mse criterion takes :func:`score_pairs_additive`.)
    """
    n_a, n_points, n_out = u.shape
    n_b = v.shape[0]
    cover_a, present_a = pairs.cover_a, pairs.present_a
    cover_b, present_b = pairs.cover_b, pairs.present_b
    required, excluded = pairs.required, pairs.excluded
    row_verdict, pair_state, out_valid = block.row_verdict, block.pair_state, block.out_valid
    use_state, collect = block.use_state, block.collect
    act, criterion, max_wrong = rule.activation, rule.criterion, rule.budget
    reference, weight = rule.target.reshape(n_points, n_out), rule.weight
    candidates = np.zeros(n_a, np.int64)
    valid = np.zeros(n_a, np.int64)
    for a in prange(n_a):
        n_cand = 0
        n_valid = 0
        if row_verdict[a] != 0:
            continue
        for b in range(n_b):
            if (cover_a[a] | cover_b[b]) != required:
                continue
            if present_a[a] + present_b[b] == excluded:
                continue
            n_cand += 1
            if use_state and pair_state[a, b] != 0:
                if pair_state[a, b] == 1:
                    n_valid += 1
                    if collect:
                        out_valid[a, b] = 1
                continue
            wrong = 0.0
            for p in range(n_points):
                right = True
                for o in range(n_out):
                    g = activate(u[a, p, o] + v[b, p, o], act)
                    if criterion == ACCURACY:
                        bit = 1.0 if g >= 0.5 else 0.0
                    else:
                        bit = np.rint(g)  # round half to even, like torch.round
                    if bit != reference[p, o]:
                        right = False
                        break
                if not right:
                    wrong += weight[p]
                    if wrong > max_wrong:
                        break
            if wrong <= max_wrong:
                n_valid += 1
                if collect:
                    out_valid[a, b] = 1
        candidates[a] = n_cand
        valid[a] = n_valid
    return candidates, valid


# ----------------------------------------------------------------------------- mse

TILE = 1024  # columns of half B whose partial cross sums one thread keeps


@njit(cache=True)
def squared_error(terms: PairTerms, outer: OuterTerms, a: int, b: int, act: int, budget: float):
    """Weighted squared error of pair (a, b) summed term by term (decisive order),
    stopping once it reaches ``budget``."""
    z_a, z_b, constant = terms.z_a, terms.z_b, outer.constant
    target, weight = terms.target, terms.weight
    total = 0.0
    for k in range(z_b.shape[1]):
        d = activate(z_a[a, k] + constant[k] + z_b[b, k], act) - target[k]
        total += weight[k] * d * d
        if total >= budget:
            break
    return total


@njit(cache=True)
def tabulated_verdict(z_row, terms: PairTerms, b: int, act: int, table, budget: float) -> int:
    """Pair (a, b)'s verdict from the tabulated bounds of its outputs, term by term
    (``z_row``: half A's row ``a`` plus the constant terms): -1 invalid (stops as soon as
    the lower bound passes the budget), 1 valid, 0 unsure."""
    z_b, target, weight = terms.z_b, terms.target, terms.weight
    low = 0.0
    high = 0.0
    reject = budget * (1.0 + DECISION_SLACK)
    for k in range(z_b.shape[1]):
        f_lo, f_hi = activation_bounds(z_row[k] + z_b[b, k], act, table)
        gap, far = squared_error_bounds(f_lo, f_hi, target[k])
        low += weight[k] * gap
        high += weight[k] * far
        if low > reject:
            return -1
    return 1 if high < budget * (1.0 - DECISION_SLACK) else 0


def _score_pairs_additive(
    terms: PairTerms, outer: OuterTerms, pairs: Admissible, block: Block, rule: Rule
):
    """Score the pairs of a block for the mse criterion.

    The summed squared distance of pair (a, b)'s output pre-activation to the full
    model's is ``|r_a + r_b|^2 = norm_a + norm_b + 2 x`` where the cross term
    ``x = cross_constant[b] + sum_j cross[unit_offset[j] + o_j(a), b]`` adds one
    precomputed dot product per unit of half A (option ``o_j`` of unit ``j``, mixed radix,
    first unit slowest). Walking ``a`` in order reuses partial sums over the leading
    units, so a pair costs about one addition.

    With an identity output that distance is the error itself: pairs within a rounding
    band of the budget are re-summed directly. Otherwise an output activation with
    Lipschitz constant ``L`` certifies a pair whose ``L^2`` times the distance is below the
    budget. Every other pair is summed term by term with an early stop: first its
    tabulated bounds for tanh and sigmoid, then, if they do not decide, the exact error.
    Rows with a verdict are skipped (counted by the caller), and so are pairs already
    decided by bounds. Returns the valid pairs per tile of half B. (One function on
    purpose: split into helpers, the compiled loop runs measurably slower.)
    """
    cross, unit_offset, radix = terms.cross, terms.unit_offset, terms.radix
    cross_constant, norm_a, scale_a = outer.cross_constant, outer.norm_a, outer.scale_a
    norm_b, root_b = terms.norm_b, terms.root_b
    cover_a, present_a = pairs.cover_a, pairs.present_a
    cover_b, present_b = pairs.cover_b, pairs.present_b
    required, excluded = pairs.required, pairs.excluded
    a0, a1, row_verdict, pair_state = block.a0, block.a1, block.row_verdict, block.pair_state
    use_state, collect, out_valid = block.use_state, block.collect, block.out_valid
    act, table, budget = rule.activation, rule.table, rule.budget
    z_a, constant, band, lipschitz_sq = terms.z_a, outer.constant, terms.band, terms.lipschitz_sq
    n_b = cross.shape[1]
    n_units = radix.shape[0]
    identity = act == IDENTITY
    n_tiles = (n_b + TILE - 1) // TILE
    valid = np.zeros(n_tiles, np.int64)
    max_norm_b = norm_b.max()
    max_root_b = root_b.max()
    for t in prange(n_tiles):
        b0 = t * TILE
        width = min(TILE, n_b - b0)
        partial = np.empty((n_units + 1, width))  # cross sums over units 0..j, per column
        for i in range(width):
            partial[0, i] = cross_constant[b0 + i]
        digits = np.empty(n_units, np.int64)
        previous = np.full(n_units, -1, np.int64)
        z_row = np.empty(z_a.shape[1])  # half A's row plus the constant terms, when needed
        n_valid = 0
        for a in range(a0, a1):
            if row_verdict[a - a0] != 0:
                continue  # the partial sums stay those of ``previous``
            rest = a
            for j in range(n_units - 1, -1, -1):
                digits[j] = rest % radix[j]
                rest //= radix[j]
            first = 0  # units whose option is unchanged keep their partial sums
            while first < n_units and digits[first] == previous[first]:
                first += 1
            for j in range(first, n_units):
                row = unit_offset[j] + digits[j]
                for i in range(width):
                    partial[j + 1, i] = partial[j, i] + cross[row, b0 + i]
                previous[j] = digits[j]
            row_ready = False
            base = norm_a[a]
            tol = band * (norm_a[a] + max_norm_b + scale_a[a] * max_root_b)
            low = budget - tol
            high = budget + tol
            for i in range(width):
                b = b0 + i
                total = base + norm_b[b] + 2.0 * partial[n_units, i]
                if identity and total >= high:
                    continue
                if (cover_a[a - a0] | cover_b[b]) != required:
                    continue
                if present_a[a - a0] + present_b[b] == excluded:
                    continue
                verdict = pair_state[a - a0, b] if use_state else 0
                if verdict == -1:
                    continue
                if verdict == 1:
                    ok = True
                elif identity:
                    ok = total < low
                else:
                    ok = lipschitz_sq * (total + tol) < budget
                    if not ok and (act == TANH or act == SIGMOID):  # exact costs tanh
                        if not row_ready:
                            for k in range(z_row.shape[0]):
                                z_row[k] = z_a[a, k] + constant[k]
                            row_ready = True
                        verdict = tabulated_verdict(z_row, terms, b, act, table, budget)
                        if verdict == -1:
                            continue
                        ok = verdict == 1
                if not ok:
                    ok = squared_error(terms, outer, a, b, act, budget) < budget
                if ok:
                    n_valid += 1
                    if collect:
                        out_valid[a - a0, b] = 1
        valid[t] = n_valid
    return valid


# ----------------------------------------------------------------------------- bounds


@njit(cache=True)
def candidates_per_row(pairs: Admissible, count_b):
    """Admissible pairs of each row of half A with half B, counted through the few
    distinct (cover, present) values of half B (``pairs.cover_b``, ``pairs.present_b``,
    each standing for ``count_b`` combinations) rather than pair by pair."""
    cover_a, present_a = pairs.cover_a, pairs.present_a
    cover_b, present_b = pairs.cover_b, pairs.present_b
    counts = np.zeros(len(cover_a), np.int64)
    for a in range(len(cover_a)):
        for g in range(len(cover_b)):
            if (cover_a[a] | cover_b[g]) == pairs.required and (
                present_a[a] + present_b[g] != pairs.excluded
            ):
                counts[a] += count_b[g]
    return counts


@njit(cache=True)
def _reads_right(f_lo: float, f_hi: float, bit: float, criterion: int) -> tuple:
    """Whether every output in ``[f_lo, f_hi]`` reads as ``bit`` (first), or none does."""
    if criterion == ACCURACY:  # reads 1 when output >= 0.5
        if bit == 1.0:
            return f_lo >= 0.5, f_hi < 0.5
        if bit == 0.0:
            return f_hi < 0.5, f_lo >= 0.5
        return False, True
    # rounded half to even: 1 on (0.5, 1.5), 0 on [-0.5, 0.5]
    if bit == 1.0:
        return f_lo > 0.5 and f_hi < 1.5, f_hi <= 0.5 or f_lo >= 1.5
    if bit == 0.0:
        return f_lo >= -0.5 and f_hi <= 0.5, f_hi < -0.5 or f_lo > 0.5
    return False, False  # another integer could still be read: leave it to the pairs


@njit(cache=True)
def interval_decision(z, lo, hi, pad, rule: Rule) -> int:
    """Decide a whole family of circuits from per-term bounds of its pre-activations.

    Every member's pre-activation at term ``k`` lies in ``[z + lo - pad, z + hi + pad]``;
    every activation here is monotone, so its output lies between the activation's bounds
    (:func:`activation_bounds`) at the two ends. Returns -1 when every member is invalid,
    1 when every member is valid, 0 when the bounds do not decide.
    """
    act, table, target, weight = rule.activation, rule.table, rule.target, rule.weight
    budget, n_out, criterion = rule.budget, rule.n_out, rule.criterion
    n_terms = z.shape[0]
    low = 0.0  # error (or wrong weight) of the most favourable member
    high = 0.0  # of the least favourable one
    if criterion == MSE:
        for k in range(n_terms):
            f_lo = activation_bounds(z[k] + lo[k] - pad[k], act, table)[0]
            f_hi = activation_bounds(z[k] + hi[k] + pad[k], act, table)[1]
            gap, far = squared_error_bounds(f_lo, f_hi, target[k])
            low += weight[k] * gap
            high += weight[k] * far
            if low > budget * (1.0 + DECISION_SLACK):
                return -1
        return 1 if high < budget * (1.0 - DECISION_SLACK) else 0
    for p in range(n_terms // n_out):
        surely_wrong = False
        maybe_wrong = False
        for o in range(n_out):
            k = p * n_out + o
            f_lo = activation_bounds(z[k] + lo[k] - pad[k], act, table)[0]
            f_hi = activation_bounds(z[k] + hi[k] + pad[k], act, table)[1]
            right, wrong = _reads_right(f_lo, f_hi, target[k], criterion)
            surely_wrong |= wrong
            maybe_wrong |= not right
        if surely_wrong:
            low += weight[p]
            if low > budget:
                return -1
        if maybe_wrong:
            high += weight[p]
    return 1 if high <= budget else 0


@njit(cache=True)
def _add_into(out, a, b) -> None:
    """``out[:] = a + b``, element by element: an array expression would compile Numba's
    broadcasting (seconds on a first run) for what is one loop."""
    for k in range(out.shape[0]):
        out[k] = a[k] + b[k]


@njit(cache=True)
def branch_and_bound(tree: Tree, base, lo: int, hi: int, leaf: int, rule: Rule, state):
    """Branch and bound over the combinations ``lo <= c < hi`` of ``tree``.

    Combination ``c`` is one option per unit (mixed radix, first unit slowest), so the
    combinations sharing their first ``d`` options are a contiguous range: a node of the
    tree. A node is scored by :func:`interval_decision`, with its fixed options summed into
    ``base`` and everything else bounded by ``rest_lo[d]`` and ``rest_hi[d]``; decided nodes
    are not split, nor are nodes of at most ``leaf`` combinations. Writes -1 (every
    circuit with that combination invalid), 1 (all valid) or 0 (undecided) to
    ``state[c - lo]``.
    """
    options, offset, radix = tree.options, tree.offset, tree.radix
    n_units = radix.shape[0]
    size = np.ones(n_units + 1, np.int64)  # combinations under a node of depth d
    for d in range(n_units - 1, -1, -1):
        size[d] = size[d + 1] * radix[d]
    z = np.empty((n_units + 1, base.shape[0]))
    for k in range(base.shape[0]):
        z[0, k] = base[k]
    digit = np.zeros(n_units, np.int64)
    depth, start = 0, 0
    while True:
        first, last = max(start, lo), min(start + size[depth], hi)
        if first < last:
            decision = interval_decision(
                z[depth], tree.rest_lo[depth], tree.rest_hi[depth], tree.pad, rule
            )
            if decision != 0 or size[depth] <= leaf:
                for c in range(first - lo, last - lo):
                    state[c] = decision
            else:  # split: first child
                digit[depth] = 0
                _add_into(z[depth + 1], z[depth], options[offset[depth]])
                depth += 1
                continue
        # next sibling, climbing while the last one is done
        while depth > 0:
            d = depth - 1
            digit[d] += 1
            start += size[depth]
            if digit[d] < radix[d] and start < hi:
                _add_into(z[depth], z[d], options[offset[d] + digit[d]])
                break
            start -= digit[d] * size[depth]
            depth -= 1
        else:
            return


@njit(parallel=True, cache=True)
def branch_and_bound_rows(tree: Tree, base, rows, leaf: int, rule: Rule, block: Block):
    """:func:`branch_and_bound` over all of half B (``tree``) for each row ``r`` of the
    block without a verdict, with the row's terms ``rows[r]`` added to ``base``; writes
    ``block.pair_state[r]``. Rows run in parallel."""
    row_verdict, pair_state = block.row_verdict, block.pair_state
    n_b = pair_state.shape[1]
    for r in prange(rows.shape[0]):
        if row_verdict[r] == 0:
            row_base = np.empty(base.shape[0])
            _add_into(row_base, base, rows[r])
            branch_and_bound(tree, row_base, 0, n_b, leaf, rule, pair_state[r])


# ----------------------------------------------------------------------------- pair tree


@njit(cache=True)
def _exact_identity_error(tree: PairTree, outer: OuterTree, a: int, b: int, budget) -> float:
    """Weighted squared error of pair (a, b) with an identity output, summed term by term
    in the pair scorer's order and with its arithmetic (:func:`squared_error`), stopping
    once it reaches ``budget``."""
    z_a, z_b, constant = tree.z_a, tree.z_b, outer.constant
    target, weight = tree.target, tree.weight
    total = 0.0
    for i in range(tree.order.shape[0]):
        k = tree.order[i]
        d = z_a[a, k] + constant[k] + z_b[b, k] - target[k]
        total += weight[k] * d * d
        if total >= budget:
            break
    return total


@njit(cache=True)
def _tree_members(tree: PairTree, depth: int, cover: int, present: int, pairs: Admissible) -> int:
    """Admissible members of a node of depth ``depth`` whose fixed options (and row) cover
    ``cover`` and keep ``present`` nodes, counted through its free units' distinct keys."""
    n = 0
    for g in range(tree.key_start[depth], tree.key_start[depth + 1]):
        if (cover | tree.key_cover[g]) == pairs.required and (
            present + tree.key_present[g] != pairs.excluded
        ):
            n += tree.key_count[g]
    return n


@njit(cache=True)
def _tree_row(tree: PairTree, outer: OuterTree, r: int, pairs: Admissible, block: Block, budget):
    """Valid pairs of row ``a0 + r`` of half A with half B, by a depth-first walk of half
    B's tree: a node whose ball lies inside the budget's sphere is valid as a whole,
    outside it invalid as a whole (each with ``slack`` to spare), else it is split; a
    node that is one point and too near the sphere is summed exactly. Returns the valid
    pairs and the candidates decided by a family of more than one member."""
    a = block.a0 + r
    n_opts = tree.opt_cover.shape[0]
    t = np.empty(n_opts)  # (v0 + r_a) . each delta of half B
    for q in range(n_opts):
        t[q] = outer.t0[q]
    nv = outer.n0 + tree.norm_a[a]  # |v0 + r_a|^2
    rest = a
    for i in range(tree.a_radix.shape[0] - 1, -1, -1):
        row = tree.a_offset[i] + rest % tree.a_radix[i]
        rest //= tree.a_radix[i]
        nv += 2.0 * outer.s_a[row]
        for q in range(n_opts):
            t[q] += tree.cross[row, q]
    spread = np.sqrt(outer.n0) + tree.root_a[a] + tree.max_delta + tree.radius[0]
    tol = tree.slack * (budget + spread * spread)
    accept, reject = budget - tol, budget + tol
    live, radix, offset = tree.live, tree.radix, tree.offset
    digit = np.zeros(live + 1, np.int64)
    tsum = np.zeros(live + 1)
    cover = np.zeros(live + 1, np.int64)
    present = np.zeros(live + 1, np.int64)
    cover[0] = pairs.cover_a[r]
    present[0] = pairs.present_a[r]
    depth, index, valid, bounded = 0, 0, 0, 0
    while True:
        d2 = nv + 2.0 * tsum[depth] + tree.node_norm[tree.depth_start[depth] + index]
        verdict = 0
        summed = False
        if depth == live:  # one point: every member has the same error
            if d2 < accept:
                verdict = 1
            elif d2 > reject:
                verdict = -1
            else:
                exact = _exact_identity_error(tree, outer, a, index * tree.size[depth], budget)
                verdict = 1 if exact < budget else -1
                summed = True
        else:
            root = np.sqrt(max(d2, 0.0))
            radius = tree.radius[depth]
            if (root + radius) * (root + radius) < accept:
                verdict = 1
            elif root > radius and (root - radius) * (root - radius) > reject:
                verdict = -1
        if verdict == 0:  # split: first child
            q = offset[depth]
            digit[depth] = 0
            tsum[depth + 1] = tsum[depth] + t[q]
            cover[depth + 1] = cover[depth] | tree.opt_cover[q]
            present[depth + 1] = present[depth] + tree.opt_present[q]
            index *= radix[depth]
            depth += 1
            continue
        if not summed and tree.size[depth] > 1:  # a family decided at once
            bounded += _tree_members(tree, depth, cover[depth], present[depth], pairs)
        if verdict == 1:
            valid += _tree_members(tree, depth, cover[depth], present[depth], pairs)
            if block.collect:
                start = index * tree.size[depth]
                for b in range(start, start + tree.size[depth]):
                    if (pairs.cover_a[r] | pairs.cover_b[b]) == pairs.required and (
                        pairs.present_a[r] + pairs.present_b[b] != pairs.excluded
                    ):
                        block.out_valid[r, b] = 1
        while depth > 0:  # next sibling, climbing while the last one is done
            d = depth - 1
            digit[d] += 1
            if digit[d] < radix[d]:
                q = offset[d] + digit[d]
                tsum[depth] = tsum[d] + t[q]
                cover[depth] = cover[d] | tree.opt_cover[q]
                present[depth] = present[d] + tree.opt_present[q]
                index += 1
                break
            index //= radix[d]
            depth -= 1
        else:
            return valid, bounded


def _pair_tree_rows(tree: PairTree, outer: OuterTree, pairs: Admissible, block: Block, budget):
    """Valid pairs of each row of ``block`` without a verdict, and those of them decided
    by a family of more than one member, by :func:`_tree_row` (rows in parallel); marks
    ``block.out_valid`` when collecting."""
    n_rows = block.row_verdict.shape[0]
    valid = np.zeros(n_rows, np.int64)
    bounded = np.zeros(n_rows, np.int64)
    for r in prange(n_rows):
        if block.row_verdict[r] == 0:
            valid[r], bounded[r] = _tree_row(tree, outer, r, pairs, block, budget)
    return valid, bounded


@njit(cache=True)
def row_tree_verdicts(tree: RowTree, outer: OuterRows, lo: int, hi: int, budget, state):
    """Verdicts of the rows ``lo <= a < hi`` of half A by a depth-first walk of half A's
    ball tree (half B free): a node whose ball lies inside the budget's sphere gives every
    pair of its rows valid (1), one outside it invalid (-1), each with ``slack`` to spare;
    other nodes are split, and rows left undecided get 0. Writes ``state[a - lo]``."""
    n_units = tree.radix.shape[0]
    size, radix, offset = tree.size, tree.radix, tree.offset
    spread = np.sqrt(outer.n0) + tree.max_delta + tree.radius[0]
    tol = tree.slack * (budget + spread * spread)
    accept, reject = budget - tol, budget + tol
    digit = np.zeros(n_units + 1, np.int64)
    tsum = np.zeros(n_units + 1)
    depth, index = 0, 0
    while True:
        start = index * size[depth]
        first, last = max(start, lo), min(start + size[depth], hi)
        if first < last:
            d2 = outer.n0 + 2.0 * tsum[depth] + tree.node_norm[tree.depth_start[depth] + index]
            root = np.sqrt(max(d2, 0.0))
            radius = tree.radius[depth]
            verdict = 0
            if (root + radius) * (root + radius) < accept:
                verdict = 1
            elif root > radius and (root - radius) * (root - radius) > reject:
                verdict = -1
            if verdict != 0 or depth == n_units:
                for a in range(first, last):
                    state[a - lo] = verdict
            else:  # split: first child
                digit[depth] = 0
                tsum[depth + 1] = tsum[depth] + outer.t0[offset[depth]]
                index *= radix[depth]
                depth += 1
                continue
        while depth > 0:  # next sibling, climbing while the last one is done
            d = depth - 1
            digit[d] += 1
            if digit[d] < radix[d] and (index + 1) * size[depth] < hi:
                tsum[depth] = tsum[d] + outer.t0[offset[d] + digit[d]]
                index += 1
                break
            index //= radix[d]
            depth -= 1
        else:
            return


# Each pair kernel in a threaded and a serial build: starting threads costs more than
# small blocks of pairs take (and far more on a busy machine).
score_pairs_general = njit(parallel=True, cache=True)(_score_pairs_general)
score_pairs_general_serial = njit(cache=True)(_score_pairs_general)
score_pairs_additive = njit(parallel=True, cache=True)(_score_pairs_additive)
score_pairs_additive_serial = njit(cache=True)(_score_pairs_additive)
pair_tree_rows = njit(parallel=True, cache=True)(_pair_tree_rows)
pair_tree_rows_serial = njit(cache=True)(_pair_tree_rows)
PARALLEL_PAIRS = 1 << 20  # fewer pairs than this run on one thread
