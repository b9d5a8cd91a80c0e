"""Numba kernels that score every pair (a, b) of two half-circuits at once.

A candidate circuit is the union of a half ``a`` and a half ``b`` whose contributions to
the output's pre-activation add up. ``cover`` bitmasks say which required nodes each half
feeds; a pair is admissible when together they cover all of them. All arithmetic is
float64 on the CPU, so decisions do not depend on thread count or block size.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

ACT_CODES = {"relu": 0, "leaky_relu": 1, "tanh": 2, "sigmoid": 3, "identity": 4}
MSE, ACCURACY, ACCURACY_ROUNDED = 0, 1, 2
# Slack of the interval bounds: on each activation value (absolute, per unit of size; far
# above a float64 tanh's error) and on the decision (relative to the limit), so that a
# family decided by bounds is decided the same way pair by pair.
VALUE_SLACK = 1e-12
DECISION_SLACK = 1e-9


@njit(inline="always", cache=True)
def activate(z: float, act: int) -> float:
    if act == 0:
        return z if z > 0.0 else 0.0
    if act == 1:
        return z if z >= 0.0 else 0.01 * z
    if act == 2:
        return np.tanh(z)
    if act == 3:
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


@njit(inline="always", cache=True)
def activation_bounds(z: float, act: int, table) -> tuple:
    """A lower and an upper bound of ``activate(z, act)``, widened by the value slack:
    interpolated from the table for tanh and sigmoid (no transcendental function; both
    are increasing, so beyond the grid the last grid value and the limit bound them),
    exact otherwise. (``z`` is scaled by a power of two and shifted by an integer, so the
    grid position is exact but for a rounding far below the slack.)"""
    if act == 2 or act == 3:
        u = z * TABLE_STEPS + TABLE_HALF * TABLE_STEPS
        last = table.shape[0] - 1
        if u < 0.0:
            lo, hi = (-1.0 if act == 2 else 0.0), table[0]
        elif u >= last:
            lo, hi = table[last], 1.0
        else:
            i = int(u)
            value = table[i] + (table[i + 1] - table[i]) * (u - i)
            lo, hi = value - INTERPOLATION_SLACK, value + INTERPOLATION_SLACK
    else:
        lo = activate(z, act)
        hi = lo
    return lo - VALUE_SLACK * (1.0 + abs(lo)), hi + VALUE_SLACK * (1.0 + abs(hi))


@njit(inline="always", cache=True)
def squared_error_bounds(f_lo: float, f_hi: float, t: float) -> tuple:
    """Least and largest ``(f - t)^2`` over ``f`` in ``[f_lo, f_hi]`` (without branches)."""
    off = abs(0.5 * (f_lo + f_hi) - t)
    radius = 0.5 * (f_hi - f_lo)
    gap = max(off - radius, 0.0)
    far = off + radius
    return gap * gap, far * far


def _score_pairs_general(
    U, V, cover_a, cover_b, present_a, present_b, required, excluded_present,
    weights, reference, act, criterion, limit, collect, out_valid, row_verdict, use_state,
    pair_state,
):  # fmt: skip
    """Score pairs for the accuracy criterion by reading the output bits point by point,
    stopping as soon as the wrong samples' weight passes the limit (it only grows).

    U: (nA, P, m) pre-activations of half a, bias included; V: (nB, P, m).
    reference: target bits, (P, m). limit: largest allowed wrong weight (inclusive).
    ``criterion``: ACCURACY (bit = output >= 0.5) or ACCURACY_ROUNDED (round half even).
    Returns per-row (candidates, valid) counts; marks out_valid[a, b] when collect.
    Rows with a verdict (``row_verdict[a]`` -1 or 1) are skipped, counted by the caller;
    with ``use_state``, pairs already decided by bounds (``pair_state[a, b]`` -1 or 1, see
    :func:`branch_and_bound`) are not scored again.
    (The mse criterion always takes :func:`score_pairs_additive`.)
    """
    n_a, n_points, n_out = U.shape
    n_b = V.shape[0]
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
            if present_a[a] + present_b[b] == excluded_present:
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
                    g = activate(U[a, p, o] + V[b, p, o], act)
                    if criterion == ACCURACY:
                        bit = 1.0 if g >= 0.5 else 0.0
                    else:
                        bit = np.rint(g)  # round half to even, like torch.round
                    if bit != reference[p, o]:
                        right = False
                        break
                if not right:
                    wrong += weights[p]
                    if wrong > limit:
                        break
            ok = wrong <= limit
            if ok:
                n_valid += 1
                if collect:
                    out_valid[a, b] = 1
        candidates[a] = n_cand
        valid[a] = n_valid
    return candidates, valid


TILE = 1024


@njit(inline="always", cache=True)
def squared_error(Z_a, a, cz, Z_b, b, target, weight, act, limit):
    """Weighted squared error of pair (a, b) summed point by point (flattened points x
    outputs), stopping once it reaches ``limit``."""
    total = 0.0
    for k in range(Z_b.shape[1]):
        d = activate(Z_a[a, k] + cz[k] + Z_b[b, k], act) - target[k]
        total += weight[k] * d * d
        if total >= limit:
            break
    return total


@njit(inline="always", cache=True)
def tabulated_verdict(z_row, Z_b, b, target, weight, act, table, limit) -> int:
    """Pair (a, b)'s verdict from the tabulated bounds of its outputs, point by point
    (``z_row``: half A's row ``a`` plus the constant terms): -1 invalid (stops as soon as
    the lower bound passes the limit), 1 valid, 0 unsure."""
    low = 0.0
    high = 0.0
    reject = limit * (1.0 + DECISION_SLACK)
    for k in range(Z_b.shape[1]):
        f_lo, f_hi = activation_bounds(z_row[k] + Z_b[b, k], act, table)
        gap, far = squared_error_bounds(f_lo, f_hi, target[k])
        low += weight[k] * gap
        high += weight[k] * far
        if low > reject:
            return -1
    return 1 if high < limit * (1.0 - DECISION_SLACK) else 0


def _score_pairs_additive(
    E, E0, unit_offset, radix, a0, a1, norm_a, scale_a, norm_b, root_b,
    cover_a, cover_b, present_a, present_b, required, excluded_present,
    limit, band, Z_a, cz, Z_b, target, weight, act, lipschitz_sq, collect, out_valid,
    table, row_verdict, use_state, pair_state,
):  # fmt: skip
    """Score pairs for the mse criterion.

    The summed squared distance of pair (a, b)'s output pre-activation to the full
    model's is ``|r_a + r_b|^2 = norm_a + norm_b + 2 x`` where the cross term
    ``x = E0[b] + sum_j E[unit_offset[j] + o_j(a), b]`` adds one precomputed dot product
    per unit of half A (option ``o_j`` of unit ``j``, mixed radix, first unit slowest).
    Walking ``a`` in order reuses partial sums over the leading units, so a pair costs
    about one addition.

    With an identity output that distance is the error itself: pairs within a rounding
    bound ``band`` of the limit are re-summed directly. Otherwise an output activation
    with Lipschitz constant ``L`` certifies a pair whose ``L^2`` times the distance is
    below the limit. Every other pair is summed point by point with an early stop: first
    its tabulated bounds for tanh and sigmoid (``table``), then, if they do not decide,
    the exact error.
    Rows with a verdict (``row_verdict[a - a0]`` -1 or 1) are skipped, counted by the
    caller; with ``use_state``, pairs already decided by bounds (``pair_state[a - a0, b]``)
    are not scored again.
    """
    n_b = E.shape[1]
    n_units = radix.shape[0]
    identity = act == 4
    n_tiles = (n_b + TILE - 1) // TILE
    valid = np.zeros(n_tiles, np.int64)
    max_norm_b = norm_b.max()
    max_root_b = root_b.max()
    for t in prange(n_tiles):
        b0 = t * TILE
        width = min(TILE, n_b - b0)
        partial = np.empty((n_units + 1, width))
        for i in range(width):
            partial[0, i] = E0[b0 + i]
        digits = np.empty(n_units, np.int64)
        previous = np.full(n_units, -1, np.int64)
        z_row = np.empty(Z_b.shape[1])  # half A's row plus the constant terms, when needed
        n_valid = 0
        for a in range(a0, a1):
            if row_verdict[a - a0] != 0:
                continue  # the partial sums stay those of ``previous``
            rest = a
            for j in range(n_units - 1, -1, -1):
                digits[j] = rest % radix[j]
                rest //= radix[j]
            first = 0
            while first < n_units and digits[first] == previous[first]:
                first += 1
            for j in range(first, n_units):
                row = unit_offset[j] + digits[j]
                for i in range(width):
                    partial[j + 1, i] = partial[j, i] + E[row, b0 + i]
                previous[j] = digits[j]
            row_ready = False
            base = norm_a[a]
            tol = band * (norm_a[a] + max_norm_b + scale_a[a] * max_root_b)
            low = limit - tol
            high = limit + tol
            for i in range(width):
                b = b0 + i
                total = base + norm_b[b] + 2.0 * partial[n_units, i]
                if identity and total >= high:
                    continue
                if (cover_a[a] | cover_b[b]) != required:
                    continue
                if present_a[a] + present_b[b] == excluded_present:
                    continue
                verdict = pair_state[a - a0, b] if use_state else 0
                if verdict == -1:
                    continue
                if verdict == 1:
                    ok = True
                elif identity:
                    ok = total < low
                else:
                    ok = lipschitz_sq * (total + tol) < limit
                    if not ok and (act == 2 or act == 3):  # worth it where exact costs tanh
                        if not row_ready:
                            for k in range(z_row.shape[0]):
                                z_row[k] = Z_a[a, k] + cz[k]
                            row_ready = True
                        verdict = tabulated_verdict(
                            z_row, Z_b, b, target, weight, act, table, limit
                        )
                        if verdict == -1:
                            continue
                        ok = verdict == 1
                if not ok:
                    ok = squared_error(Z_a, a, cz, Z_b, b, target, weight, act, limit) < limit
                if ok:
                    n_valid += 1
                    if collect:
                        out_valid[a - a0, b] = 1
        valid[t] = n_valid
    return valid


@njit(cache=True)
def count_candidates(cover_a, present_a, ucover, upresent, ucount, required, excluded_present):
    """Admissible pairs of two halves, counted through the few distinct (cover, present)
    values of half B (with their counts) rather than pair by pair."""
    total = 0
    for a in range(len(cover_a)):
        for g in range(len(ucover)):
            if (cover_a[a] | ucover[g]) == required and present_a[a] + upresent[
                g
            ] != excluded_present:
                total += ucount[g]
    return total


@njit(inline="always", cache=True)
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
def interval_decision(
    z, lo, hi, pad, target, weight, n_out, act, table, criterion, limit
) -> int:  # fmt: skip
    """Decide a whole family of circuits from per-term bounds of its pre-activations.

    Every member's pre-activation at term ``k`` (flattened points x outputs) lies in
    ``[z + lo - pad, z + hi + pad]``; every activation here is monotone, so its output lies
    between the activation's bounds (:func:`activation_bounds`) at the two ends. Returns
    -1 when every member is invalid, 1 when every member is valid, 0 when the bounds do
    not decide.
    ``weight``: per term for mse, per point for accuracy; ``target``: per term.
    """
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
            if low > limit * (1.0 + DECISION_SLACK):
                return -1
        return 1 if high < limit * (1.0 - DECISION_SLACK) else 0
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
            if low > limit:
                return -1
        if maybe_wrong:
            high += weight[p]
    return 1 if high <= limit else 0


@njit(cache=True)
def branch_and_bound(
    options, offset, radix, rest_lo, rest_hi, pad, base, lo, hi, leaf,
    target, weight, n_out, act, table, criterion, limit, state,
):  # fmt: skip
    """Branch and bound over the combinations ``lo <= c < hi`` of a group of units.

    Combination ``c`` is one option per unit (mixed radix, first unit slowest), so the
    combinations sharing their first ``d`` options are a contiguous range: a node of a
    tree. A node is scored by :func:`interval_decision`, with its fixed options summed into
    ``base`` and everything else bounded by ``rest_lo[d]`` and ``rest_hi[d]``; decided nodes
    are not split, nor are nodes of at most ``leaf`` combinations. Writes -1 (every
    circuit with that combination invalid), 1 (all valid) or 0 (undecided) to
    ``state[c - lo]``.
    """
    n_units = radix.shape[0]
    size = np.ones(n_units + 1, np.int64)  # combinations under a node of depth d
    for d in range(n_units - 1, -1, -1):
        size[d] = size[d + 1] * radix[d]
    z = np.empty((n_units + 1, base.shape[0]))
    z[0] = base
    digit = np.zeros(n_units, np.int64)
    depth, start = 0, 0
    while True:
        first, last = max(start, lo), min(start + size[depth], hi)
        if first < last:
            decision = interval_decision(
                z[depth], rest_lo[depth], rest_hi[depth], pad, target, weight, n_out, act,
                table, criterion, limit,
            )  # fmt: skip
            if decision != 0 or size[depth] <= leaf:
                state[first - lo : last - lo] = decision
            else:  # split: first child
                digit[depth] = 0
                z[depth + 1] = z[depth] + options[offset[depth]]
                depth += 1
                continue
        # next sibling, climbing while the last one is done
        while depth > 0:
            d = depth - 1
            digit[d] += 1
            start += size[depth]
            if digit[d] < radix[d] and start < hi:
                z[depth] = z[d] + options[offset[d] + digit[d]]
                break
            start -= digit[d] * size[depth]
            depth -= 1
        else:
            return


@njit(parallel=True, cache=True)
def branch_and_bound_rows(
    options, offset, radix, rest_lo, rest_hi, pad, base, rows, leaf,
    target, weight, n_out, act, table, criterion, limit, row_verdict, pair_state,
):  # fmt: skip
    """:func:`branch_and_bound` over all of half B for each row ``r`` of half A without a
    verdict (``row_verdict[r] == 0``), with the row's terms ``rows[r]`` added to ``base``;
    rows run in parallel."""
    n_b = pair_state.shape[1]
    for r in prange(rows.shape[0]):
        if row_verdict[r] == 0:
            branch_and_bound(
                options, offset, radix, rest_lo, rest_hi, pad, base + rows[r], 0, n_b, leaf,
                target, weight, n_out, act, table, criterion, limit, pair_state[r],
            )  # fmt: skip


# Each kernel in a threaded and a serial build: starting threads costs more than small
# blocks of pairs take (and far more on a busy machine).
score_pairs_general = njit(parallel=True, cache=True)(_score_pairs_general)
score_pairs_general_serial = njit(cache=True)(_score_pairs_general)
score_pairs_additive = njit(parallel=True, cache=True)(_score_pairs_additive)
score_pairs_additive_serial = njit(cache=True)(_score_pairs_additive)
PARALLEL_PAIRS = 1 << 20  # fewer pairs than this run on one thread
