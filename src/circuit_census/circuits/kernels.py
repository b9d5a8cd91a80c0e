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
ACCURACY, ACCURACY_ROUNDED = 1, 2


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


def _score_pairs_general(
    U, V, cover_a, cover_b, present_a, present_b, required, excluded_present,
    weights, reference, act, criterion, limit, collect, out_valid,
):  # fmt: skip
    """Score pairs for the accuracy criterion by reading the output bits point by point,
    stopping as soon as the wrong samples' weight passes the limit (it only grows).

    U: (nA, P, m) pre-activations of half a, bias included; V: (nB, P, m).
    reference: target bits, (P, m). limit: largest allowed wrong weight (inclusive).
    ``criterion``: ACCURACY (bit = output >= 0.5) or ACCURACY_ROUNDED (round half even).
    Returns per-row (candidates, valid) counts; marks out_valid[a, b] when collect.
    (The mse criterion always takes :func:`score_pairs_additive`.)
    """
    n_a, n_points, n_out = U.shape
    n_b = V.shape[0]
    candidates = np.zeros(n_a, np.int64)
    valid = np.zeros(n_a, np.int64)
    for a in prange(n_a):
        n_cand = 0
        n_valid = 0
        for b in range(n_b):
            if (cover_a[a] | cover_b[b]) != required:
                continue
            if present_a[a] + present_b[b] == excluded_present:
                continue
            n_cand += 1
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
def slope_bound(Z_a, a, cz, Z_b, b, pre_target, slope, weight, lipschitz, limit):
    """An upper bound of pair (a, b)'s weighted squared error that needs no transcendental
    function: point by point, the output moves by at most the pre-activation's move times
    the activation's slope, which is at most ``slope[k]`` (the slope at the full model's
    pre-activation) when moving away from 0 and at most ``lipschitz`` otherwise (every
    activation here has a slope that does not grow away from 0). Stops at ``limit``."""
    total = 0.0
    for k in range(Z_b.shape[1]):
        reference = pre_target[k]
        d = Z_a[a, k] + cz[k] + Z_b[b, k] - reference
        s = slope[k] if d * reference >= 0.0 else lipschitz
        total += weight[k] * (s * d) * (s * d)
        if total >= limit:
            break
    return total


def _score_pairs_additive(
    E, E0, unit_offset, radix, a0, a1, norm_a, scale_a, norm_b, root_b,
    cover_a, cover_b, present_a, present_b, required, excluded_present,
    limit, band, Z_a, cz, Z_b, target, weight, act, lipschitz_sq, collect, out_valid,
    pre_target, slope,
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
    below the limit; every other pair is summed point by point with an early stop.
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
        n_valid = 0
        for a in range(a0, a1):
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
                if identity:
                    ok = total < low
                else:
                    ok = lipschitz_sq * (total + tol) < limit
                    if not ok and (act == 2 or act == 3):  # worth it where exact costs tanh
                        bound = slope_bound(
                            Z_a, a, cz, Z_b, b, pre_target, slope, weight,
                            np.sqrt(lipschitz_sq), limit,
                        )  # fmt: skip
                        ok = bound * (1.0 + 1e-9) < limit
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


# Each kernel in a threaded and a serial build: starting threads costs more than small
# blocks of pairs take (and far more on a busy machine).
score_pairs_general = njit(parallel=True, cache=True)(_score_pairs_general)
score_pairs_general_serial = njit(cache=True)(_score_pairs_general)
score_pairs_additive = njit(parallel=True, cache=True)(_score_pairs_additive)
score_pairs_additive_serial = njit(cache=True)(_score_pairs_additive)
PARALLEL_PAIRS = 1 << 20  # fewer pairs than this run on one thread
